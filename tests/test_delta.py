"""The delta rule: chunked (UT / WY form) against the float64 loop; the gated and RWKV-7 forms."""
import pytest
import torch
import torch.nn.functional as F

from ssmbook.delta import (DeltaNetBlock, delta_rule, delta_rule_flops, delta_rule_ref, linear_attention_ref,
                           rwkv7_ref)
from ssmbook.rwkv import wkv6_recurrent

F64 = torch.float64


def inputs(b, h, L, dk, dv, seed=0, dtype=F64, gate_lo=0.5, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, L, dk, generator=g, dtype=dtype)
    k = F.normalize(torch.randn(b, h, L, dk, generator=g, dtype=dtype), dim=-1)
    v = torch.randn(b, h, L, dv, generator=g, dtype=dtype)
    beta = torch.rand(b, h, L, generator=g, dtype=dtype)
    gate = gate_lo + (1 - gate_lo) * torch.rand(b, h, L, generator=g, dtype=dtype)
    S0 = torch.randn(b, h, dv, dk, generator=g, dtype=dtype)
    ts = [q, k, v, beta, gate, S0]
    if requires_grad:
        for t in ts:
            t.requires_grad_(True)
    return ts


SIZES = [(1, 1, 1, 1, 1, 4), (2, 3, 37, 5, 7, 8), (2, 2, 16, 4, 3, 16), (1, 2, 70, 6, 4, 64),
         (1, 1, 9, 3, 5, 1), (2, 1, 65, 3, 3, 64)]


@pytest.mark.parametrize("b,h,L,dk,dv,chunk", SIZES)
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
def test_chunked_equals_recurrence(b, h, L, dk, dv, chunk, gated, with_state):
    q, k, v, beta, gate, S0 = inputs(b, h, L, dk, dv, seed=L + dk)
    gate = gate if gated else None
    S0 = S0 if with_state else None
    o_ref, s_ref = delta_rule_ref(q, k, v, beta, gate, S0, return_final_state=True)
    o, s = delta_rule(q, k, v, beta, gate, chunk=chunk, initial_state=S0, return_final_state=True)
    torch.testing.assert_close(o, o_ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(s, s_ref, rtol=0, atol=1e-10)


def test_ref_is_one_gradient_step_of_online_regression():
    # S_t = S_{t-1} - β ∇_S ½‖S k - v‖²  with ∇ = (S k - v) kᵀ
    q, k, v, beta, gate, S0 = inputs(1, 1, 1, 4, 3, seed=2)
    S0.requires_grad_(True)
    loss = 0.5 * ((S0[0, 0] @ k[0, 0, 0] - v[0, 0, 0]) ** 2).sum()
    (grad,) = torch.autograd.grad(loss, S0)
    _, S1 = delta_rule_ref(q, k, v, beta, None, S0.detach(), return_final_state=True)
    torch.testing.assert_close(S1, S0.detach() - beta[0, 0, 0] * grad, rtol=0, atol=1e-14)


@pytest.mark.parametrize("gate_lo", [1.0, 1e-30, 1e-300])
def test_extreme_gates(gate_lo):
    q, k, v, beta, gate, S0 = inputs(2, 2, 29, 4, 3, seed=4, gate_lo=gate_lo)
    if gate_lo < 1:
        gate = torch.where(torch.rand(gate.shape, generator=torch.Generator().manual_seed(0),
                                      dtype=F64) < 0.3, torch.full_like(gate, gate_lo), gate)
    ref = delta_rule_ref(q, k, v, beta, gate, S0)
    out = delta_rule(q, k, v, beta, gate, chunk=8, initial_state=S0)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)


def test_beta_one_overwrites_a_stored_key():
    # with β = 1 and a unit key, writing (k, v2) after (k, v1) leaves exactly v2 under k
    k = F.normalize(torch.randn(1, 1, 1, 5, dtype=F64), dim=-1).expand(1, 1, 2, 5)
    v = torch.randn(1, 1, 2, 3, dtype=F64)
    o = delta_rule_ref(k, k, v, torch.ones(1, 1, 2, dtype=F64))
    torch.testing.assert_close(o[0, 0, 1], v[0, 0, 1], rtol=0, atol=1e-14)
    lin = linear_attention_ref(k, k, v)                        # linear attention adds instead
    torch.testing.assert_close(lin[0, 0, 1], v[0, 0, 0] + v[0, 0, 1], rtol=0, atol=1e-14)


def test_rwkv7_generalises_gated_delta_and_rwkv6():
    q, k, v, beta, gate, S0 = inputs(2, 2, 11, 4, 3, seed=6)
    dk = k.shape[-1]
    w = gate[..., None].expand(-1, -1, -1, dk)
    o7 = rwkv7_ref(q, w, beta[..., None] * k, v, -k, (gate * beta)[..., None] * k, initial_state=S0)
    torch.testing.assert_close(o7, delta_rule_ref(q, k, v, beta, gate, S0), rtol=0, atol=1e-12)
    # a = b = 0: RWKV-6's state recurrence (chapter 8), S_t = diag(w_t) S_{t-1} + k_t v_tᵀ, in
    # chapter 8's (K, V) layout; RWKV-7 reads the state after the update, RWKV-6 before (plus its bonus)
    g = torch.Generator().manual_seed(7)
    w6 = torch.rand(2, 2, 11, dk, generator=g, dtype=F64) * 0.9 + 0.05
    zero = torch.zeros_like(k)
    perm = lambda t: t.transpose(1, 2)                         # (b, h, L, d) -> (b, L, h, d)
    u = torch.ones(2, dk, dtype=F64)
    for t in range(1, 12):
        o7, S7 = rwkv7_ref(q[:, :, :t], w6[:, :, :t], k[:, :, :t], v[:, :, :t], zero[:, :, :t], zero[:, :, :t],
                           return_final_state=True)
        _, S6 = wkv6_recurrent(*(perm(x[:, :, :t]) for x in (q, torch.log(w6), k, v)), u, return_state=True)
        torch.testing.assert_close(S7.transpose(-1, -2), S6, rtol=0, atol=1e-12)
        torch.testing.assert_close(o7[:, :, -1], torch.einsum("bhk,bhkv->bhv", q[:, :, t - 1], S6),
                                   rtol=0, atol=1e-12)


@pytest.mark.parametrize("chunk", [4, 7, 64])
def test_gradients_entry_by_entry(chunk):
    ts = inputs(2, 2, 19, 3, 4, seed=9, requires_grad=True)
    g = torch.Generator().manual_seed(10)
    w_o = torch.randn(2, 2, 19, 4, generator=g, dtype=F64)
    w_s = torch.randn(2, 2, 4, 3, generator=g, dtype=F64)
    grads = []
    for fn in (lambda q, k, v, b_, a, s: delta_rule_ref(q, k, v, b_, a, s, return_final_state=True),
               lambda q, k, v, b_, a, s: delta_rule(q, k, v, b_, a, chunk=chunk, initial_state=s,
                                                    return_final_state=True)):
        o, s = fn(*ts)
        grads.append(torch.autograd.grad((o * w_o).sum() + (s * w_s).sum(), ts))
    for name, ga, gb in zip(["q", "k", "v", "beta", "gate", "S0"], *grads):
        torch.testing.assert_close(gb, ga, rtol=1e-9, atol=1e-10, msg=f"gradient of {name}")


def test_float32_close_to_oracle():
    q, k, v, beta, gate, S0 = inputs(2, 2, 50, 8, 8, seed=12, dtype=torch.float32)
    torch.testing.assert_close(delta_rule(q, k, v, beta, gate, chunk=16, initial_state=S0),
                               delta_rule_ref(q, k, v, beta, gate, S0), rtol=1e-4, atol=1e-4)


def test_bad_inputs_name_the_argument():
    q, k, v, beta, gate, S0 = inputs(1, 2, 5, 3, 4)
    with pytest.raises(TypeError, match="q must be a torch.Tensor"):
        delta_rule(q.numpy(), k, v, beta)
    with pytest.raises(ValueError, match="q must have shape"):
        delta_rule(q[0], k, v, beta)
    with pytest.raises(ValueError, match="k must have"):
        delta_rule(q, k[..., :2], v, beta)
    with pytest.raises(ValueError, match="v must have shape"):
        delta_rule(q, k, v[:, :, :4], beta)
    with pytest.raises(ValueError, match="beta must have shape"):
        delta_rule(q, k, v, beta[..., :4])
    with pytest.raises(TypeError, match="beta must have q's dtype"):
        delta_rule(q, k, v, beta.float())
    with pytest.raises(ValueError, match="gate must lie in"):
        delta_rule(q, k, v, beta, gate * 0)
    with pytest.raises(ValueError, match="gate must lie in"):
        delta_rule(q, k, v, beta, gate + 1)
    with pytest.raises(ValueError, match="initial_state must have shape"):
        delta_rule(q, k, v, beta, initial_state=S0[..., :2])
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        delta_rule(q, k, v, beta, chunk=2.0)
    with pytest.raises(ValueError, match="w must lie"):
        rwkv7_ref(q, torch.zeros_like(k), k, v, k, k)
    with pytest.raises(ValueError, match="rule"):
        DeltaNetBlock(8, rule="softmax")


def test_flops():
    f = delta_rule_flops(1024, 64, 64, 64)
    assert f["recurrent"] == 1024 * 6 * 64 * 64
    assert f["chunked_sequential"] == 16 * (6 * 64 * 64 * 64 + 2 * 64 * 64 * 64)
    with pytest.raises(ValueError, match="d_k"):
        delta_rule_flops(8, 0, 4, 4)


@pytest.mark.parametrize("rule", DeltaNetBlock.RULES)
def test_block_runs_and_has_gradients(rule):
    torch.manual_seed(0)
    blk = DeltaNetBlock(8, n_heads=2, head_dim=4, rule=rule, chunk=4)
    x = torch.randn(2, 7, 8)
    assert blk(x).shape == (2, 7, 8)
    with pytest.raises(ValueError, match="x must have shape"):
        blk(torch.randn(2, 7, 9))
    blk(x).sum().backward()
    assert all(p.grad is not None for p in blk.parameters())

