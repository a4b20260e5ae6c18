"""Tests of ssmbook.mamba: the Mamba block, its recurrent mode, the tiny LMs and the copying task."""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmbook.mamba import MambaBlock, MambaLM, MambaState, S4LM, dt_bias_init, inverse_softplus, s4d_real_A_log


def _block(d_model=6, d_state=5, d_conv=3, expand=2, selective=True, backend="torch", seed=0,
           dtype=torch.float64, **kw):
    torch.manual_seed(seed)
    blk = MambaBlock(d_model, d_state=d_state, d_conv=d_conv, expand=expand, selective=selective,
                     backend=backend, **kw).to(dtype)
    # move the parameters away from their initial values so that every term matters in the checks
    with torch.no_grad():
        for p in blk.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return blk


def _run_steps(blk, x):
    state = blk.allocate_state(x.shape[0])
    ys = []
    for t in range(x.shape[1]):
        y, state = blk.step(x[:, t], state)
        ys.append(y)
    return torch.stack(ys, dim=1), state


# ---------------------------------------------------------------- recurrent mode == sequence mode
@settings(max_examples=12, deadline=None)
@given(batch=st.integers(1, 3), L=st.sampled_from([1, 2, 5, 17, 67]), d_model=st.integers(1, 7),
       d_state=st.integers(1, 9), d_conv=st.integers(1, 5), selective=st.booleans(),
       seed=st.integers(0, 2**16))
def test_step_equals_forward_float64(batch, L, d_model, d_state, d_conv, selective, seed):
    blk = _block(d_model, d_state, d_conv, selective=selective, seed=seed)
    x = torch.randn(batch, L, d_model, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    y_seq = blk(x)
    y_rec, state = _run_steps(blk, x)
    torch.testing.assert_close(y_rec, y_seq, rtol=1e-10, atol=1e-10)
    assert state.ssm.dtype == torch.float64 and state.conv.shape == (batch, blk.d_inner, d_conv)


def test_step_equals_forward_float32():
    blk = _block(8, 16, 4, dtype=torch.float32)
    x = torch.randn(2, 70, 8)
    torch.testing.assert_close(_run_steps(blk, x)[0], blk(x), rtol=1e-4, atol=1e-5)


def test_last_state_matches_scan_last_state():
    """The SSM state after stepping through x equals the last state that the scan returns."""
    from ssmbook.selective import selective_scan_ref

    blk = _block(4, 3, 2)
    x = torch.randn(2, 9, 4, dtype=torch.float64)
    _, state = _run_steps(blk, x)
    xs = F.silu(blk.conv1d(blk.in_proj(x).chunk(2, -1)[0].transpose(1, 2))[..., :9])
    delta, B, C = blk.ssm_params(xs.transpose(1, 2))
    _, last = selective_scan_ref(xs, delta, blk.A, B, C, delta_bias=blk.delta_bias, delta_softplus=True,
                                 return_last_state=True)
    torch.testing.assert_close(state.ssm, last)


def test_step_does_not_modify_the_state_in_place():
    blk = _block()
    s0 = blk.allocate_state(2)
    conv0, ssm0 = s0.conv.clone(), s0.ssm.clone()
    blk.step(torch.randn(2, 6, dtype=torch.float64), s0)
    assert torch.equal(s0.conv, conv0) and torch.equal(s0.ssm, ssm0)


# ---------------------------------------------------------------- backends agree
@pytest.mark.parametrize("selective", [True, False])
def test_torch_backend_equals_ref_backend(selective):
    blk = _block(5, 7, 4, selective=selective)
    x = torch.randn(3, 66, 5, dtype=torch.float64)
    y_torch = blk(x)
    blk.backend = "ref"
    torch.testing.assert_close(y_torch, blk(x), rtol=1e-10, atol=1e-10)


def test_triton_backend_matches_oracle_tiny():
    """Under the Triton interpreter on CPU (conftest sets it), at a tiny size; compiled on a GPU."""
    pytest.importorskip("triton")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    blk = _block(4, 3, 3, dtype=torch.float32, backend="triton").to(dev)
    x = torch.randn(1, 5, 4, device=dev)
    y = blk(x)
    blk.backend = "ref"
    torch.testing.assert_close(y, blk(x), rtol=1e-5, atol=1e-5)


def test_forward_is_causal():
    blk = _block(4, 4, 3)
    x = torch.randn(2, 12, 4, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 7:] = torch.randn(2, 5, 4, dtype=torch.float64)
    y, y2 = blk(x), blk(x2)
    torch.testing.assert_close(y[:, :7], y2[:, :7])
    assert not torch.allclose(y[:, 7:], y2[:, 7:])


# ---------------------------------------------------------------- selective vs LTI
def test_selective_parameters_depend_on_input_and_lti_ones_do_not():
    x = torch.randn(2, 6, 12, dtype=torch.float64)
    sel = _block(6, 4, selective=True)
    d, B, C = sel.ssm_params(x)
    assert d.shape == (2, 12, 6) and B.shape == (2, 4, 6) and C.shape == (2, 4, 6)
    assert B.std(dim=-1).min() > 0 and d.std(dim=-1).min() > 0          # varies along time
    lti = _block(6, 4, selective=False)
    d, B, C = lti.ssm_params(x)
    assert B.shape == (2, 12, 4, 6)
    assert torch.count_nonzero(d) == 0
    torch.testing.assert_close(B, B[..., :1].expand_as(B))
    torch.testing.assert_close(C, C[:1].expand_as(C))
    assert not hasattr(lti, "x_proj")


# ---------------------------------------------------------------- initialisation
def test_s4d_real_init_and_D():
    blk = MambaBlock(8, d_state=5)
    expected = -torch.arange(1, 6, dtype=torch.float32).expand(16, 5)
    torch.testing.assert_close(blk.A, expected)
    torch.testing.assert_close(s4d_real_A_log(2, 3), torch.log(torch.tensor([[1.0, 2, 3], [1, 2, 3]])))
    assert torch.equal(blk.D.detach(), torch.ones(16))
    assert blk.dt_rank == 1 and MambaBlock(33).dt_rank == 3


def test_inverse_softplus_roundtrip():
    y = torch.logspace(-5, 2, 50, dtype=torch.float64)
    torch.testing.assert_close(F.softplus(inverse_softplus(y)), y)


def test_dt_init_is_log_uniform_in_range():
    dt_min, dt_max = 1e-3, 1e-1
    g = torch.Generator().manual_seed(0)
    dt = F.softplus(dt_bias_init(4000, dt_min, dt_max, generator=g, dtype=torch.float64))
    assert dt.min() >= dt_min * (1 - 1e-9) and dt.max() <= dt_max * (1 + 1e-9)
    # log-uniform: log(dt) is uniform on [log dt_min, log dt_max]: mean at the midpoint, quartiles at 1/4, 3/4
    u = (torch.log(dt) - math.log(dt_min)) / (math.log(dt_max) - math.log(dt_min))
    assert abs(u.mean().item() - 0.5) < 0.02
    q = torch.quantile(u, torch.tensor([0.25, 0.75], dtype=torch.float64))
    torch.testing.assert_close(q, torch.tensor([0.25, 0.75], dtype=torch.float64), atol=0.03, rtol=0)
    blk = MambaBlock(64, dt_min=0.01, dt_max=0.02)
    sp = F.softplus(blk.dt_proj.bias.detach())
    assert sp.min() >= 0.01 * (1 - 1e-5) and sp.max() <= 0.02 * (1 + 1e-5)


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("selective", [True, False])
def test_gradients_reach_every_parameter(selective):
    blk = _block(6, 4, 3, selective=selective, dtype=torch.float32)
    x = torch.randn(2, 11, 6, requires_grad=True)
    blk(x).pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in blk.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_gradcheck_tiny_block():
    blk = _block(2, 2, 2)
    x = torch.randn(1, 4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(blk, (x,))


# ---------------------------------------------------------------- language models
def test_mamba_lm_shapes_tied_head_and_step_mode():
    torch.manual_seed(0)
    lm = MambaLM(11, 8, 2, d_state=3, d_conv=3).double()
    assert lm.lm_head.weight is lm.embedding.weight
    tokens = torch.randint(0, 11, (2, 13))
    logits = lm(tokens)
    assert logits.shape == (2, 13, 11)
    state = lm.allocate_state(2)
    steps = []
    for t in range(13):
        lt, state = lm.step(tokens[:, t], state)
        steps.append(lt)
    torch.testing.assert_close(torch.stack(steps, 1), logits)
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in lm.parameters())


def test_s4_lm_shapes_and_gradients():
    lm = S4LM(10, 8, 2, d_state=4)
    out = lm(torch.randint(0, 10, (2, 9)))
    assert out.shape == (2, 9, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in lm.parameters())


# ---------------------------------------------------------------- errors
def test_forward_input_errors():
    blk = MambaBlock(6, d_state=4)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, L, d_model=6\)"):
        blk(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, L, d_model=6\)"):
        blk(torch.randn(5, 6))
    with pytest.raises(ValueError, match="x must have shape .* L >= 1"):
        blk(torch.randn(2, 0, 6))
    with pytest.raises(ValueError, match="x must be a floating-point tensor"):
        blk(torch.ones(2, 5, 6, dtype=torch.int64))
    with pytest.raises(ValueError, match="x must be a torch.Tensor"):
        blk([[0.0] * 6])


def test_step_input_errors():
    blk = MambaBlock(6, d_state=4, d_conv=3)
    s = blk.allocate_state(2)
    with pytest.raises(ValueError, match=r"x_t must have shape \(batch, d_model=6\)"):
        blk.step(torch.randn(2, 1, 6), s)
    with pytest.raises(ValueError, match=r"state \(state.conv\) must have shape \(3, 12, 3\)"):
        blk.step(torch.randn(3, 6), s)
    bad = MambaState(conv=s.conv, ssm=torch.zeros(2, 12, 5))
    with pytest.raises(ValueError, match=r"state \(state.ssm\) must have shape \(2, 12, 4\)"):
        blk.step(torch.randn(2, 6), bad)
    with pytest.raises(ValueError, match="state must be a MambaState"):
        blk.step(torch.randn(2, 6), (s.conv, s.ssm))
    with pytest.raises(ValueError, match="batch must be a positive int"):
        blk.allocate_state(0)


def test_constructor_errors():
    with pytest.raises(ValueError, match="d_model must be a positive int"):
        MambaBlock(0)
    with pytest.raises(ValueError, match="d_state must be a positive int"):
        MambaBlock(4, d_state=2.5)
    with pytest.raises(ValueError, match="dt_rank must be a positive int"):
        MambaBlock(4, dt_rank=0)
    with pytest.raises(ValueError, match="backend must be one of"):
        MambaBlock(4, backend="cuda")
    with pytest.raises(ValueError, match="dt_min must be <= dt_max"):
        MambaBlock(4, dt_min=0.1, dt_max=0.01)
    with pytest.raises(ValueError, match="n_layer must be a positive int"):
        MambaLM(10, 4, 0)


def test_lm_token_errors():
    lm = MambaLM(10, 4, 1, d_state=2)
    with pytest.raises(ValueError, match=r"tokens must be an int64 tensor of shape \(batch, L\)"):
        lm(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"tokens must have shape \(batch, L\)"):
        lm(torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"tokens must hold token ids in \[0, vocab_size=10\)"):
        lm(torch.full((1, 3), 10, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"token_t must have shape \(batch,\)"):
        lm.step(torch.zeros(2, 1, dtype=torch.int64), lm.allocate_state(2))
    with pytest.raises(ValueError, match="state must be a list of 1 block states"):
        lm.step(torch.zeros(2, dtype=torch.int64), [])

