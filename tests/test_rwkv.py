"""Tests for ssmbook.rwkv: every fast WKV form against the float64 definition, streaming, gradients."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from ssmbook import rwkv

F64 = torch.float64
SETTINGS = settings(max_examples=15, deadline=None)


def wkv_inputs(B, T, C, seed, dtype=F64, key_scale=3.0):
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(C, generator=g, dtype=dtype) * 2 + 0.01  # decay rates > 0
    u = torch.randn(C, generator=g, dtype=dtype)
    k = torch.randn(B, T, C, generator=g, dtype=dtype) * key_scale
    v = torch.randn(B, T, C, generator=g, dtype=dtype)
    return w, u, k, v


def wkv6_inputs(B, T, H, K, V, seed, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(B, T, H, K, generator=g, dtype=dtype)
    log_w = -torch.rand(B, T, H, K, generator=g, dtype=dtype) * 3  # decays in (e^-3, 1)
    k = torch.randn(B, T, H, K, generator=g, dtype=dtype)
    v = torch.randn(B, T, H, V, generator=g, dtype=dtype)
    u = torch.randn(H, K, generator=g, dtype=dtype)
    return r, log_w, k, v, u


sizes = st.tuples(st.integers(1, 2), st.integers(1, 13), st.sampled_from([1, 3, 5]), st.integers(0, 10_000))


# ---------------------------------------------------------------------------------------------- oracle
def test_reference_matches_hand_computed_two_steps():
    # T = 2, one channel: wkv_0 = v_0; wkv_1 = (e^{k0} v0 + e^{u+k1} v1) / (e^{k0} + e^{u+k1})
    w, u = torch.tensor([0.7], dtype=F64), torch.tensor([0.3], dtype=F64)
    k = torch.tensor([[[1.0], [-0.5]]], dtype=F64)
    v = torch.tensor([[[2.0], [-3.0]]], dtype=F64)
    a, b = math.exp(1.0), math.exp(0.3 - 0.5)
    expected = [2.0, (a * 2.0 + b * -3.0) / (a + b)]
    np.testing.assert_allclose(rwkv.wkv_reference(w, u, k, v)[0, :, 0].numpy(), expected, rtol=1e-14)
    # T = 3: the first key has decayed once by the third step
    k3 = torch.tensor([[[1.0], [-0.5], [0.2]]], dtype=F64)
    v3 = torch.tensor([[[2.0], [-3.0], [1.5]]], dtype=F64)
    e = [math.exp(1.0 - 0.7), math.exp(-0.5), math.exp(0.3 + 0.2)]
    exp3 = (e[0] * 2.0 + e[1] * -3.0 + e[2] * 1.5) / sum(e)
    assert rwkv.wkv_reference(w, u, k3, v3)[0, 2, 0].item() == pytest.approx(exp3, rel=1e-14)


def test_wkv6_reference_hand_computed():
    # one head, K = V = 1: y_0 = r0 u k0 v0; y_1 = r1 k0 v0 + r1 u k1 v1; y_2 = r2 w1 k0 v0 + r2 k1 v1 + r2 u k2 v2
    r = torch.tensor([1.5, -0.5, 2.0], dtype=F64).view(1, 3, 1, 1)
    log_w = torch.log(torch.tensor([0.9, 0.4, 0.7], dtype=F64)).view(1, 3, 1, 1)
    k = torch.tensor([0.3, 1.2, -0.8], dtype=F64).view(1, 3, 1, 1)
    v = torch.tensor([2.0, -1.0, 0.5], dtype=F64).view(1, 3, 1, 1)
    u = torch.tensor([[0.6]], dtype=F64)
    expected = [1.5 * 0.6 * 0.3 * 2.0,
                -0.5 * 0.3 * 2.0 + -0.5 * 0.6 * 1.2 * -1.0,
                2.0 * 0.4 * 0.3 * 2.0 + 2.0 * 1.2 * -1.0 + 2.0 * 0.6 * -0.8 * 0.5]
    np.testing.assert_allclose(rwkv.wkv6_reference(r, log_w, k, v, u).flatten().numpy(), expected, rtol=1e-14)


# ---------------------------------------------------------------------------------------------- WKV-4
@SETTINGS
@given(sizes, st.integers(1, 7))
def test_wkv4_fast_forms_match_reference(size, chunk):
    B, T, C, seed = size
    w, u, k, v = wkv_inputs(B, T, C, seed)
    ref = rwkv.wkv_reference(w, u, k, v)
    for name, y in (("recurrent", rwkv.wkv_recurrent(w, u, k, v)),
                    ("parallel", rwkv.wkv_parallel(w, u, k, v)),
                    ("chunked", rwkv.wkv_chunked(w, u, k, v, chunk=chunk)),
                    ("naive", rwkv.wkv_naive(w, u, k, v))):
        torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-12, msg=name)


@SETTINGS
@given(sizes)
def test_wkv4_final_states_agree(size):
    B, T, C, seed = size
    w, u, k, v = wkv_inputs(B, T, C, seed)
    _, s_rec = rwkv.wkv_recurrent(w, u, k, v, return_state=True)
    _, s_par = rwkv.wkv_parallel(w, u, k, v, return_state=True)
    for a, b in zip(s_rec, s_par):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # the state means: num e^p = sum_i e^{k_i - (T-1-i) w} v_i
    num, den, p = s_rec
    expo = k - (T - 1 - torch.arange(T, dtype=F64))[None, :, None] * w
    torch.testing.assert_close(num * torch.exp(p), (torch.exp(expo) * v).sum(1), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(den * torch.exp(p), torch.exp(expo).sum(1), rtol=1e-10, atol=1e-12)


@SETTINGS
@given(st.integers(2, 12), st.integers(0, 10_000), st.data())
def test_wkv4_streaming_in_pieces_equals_whole(T, seed, data):
    w, u, k, v = wkv_inputs(2, T, 3, seed)
    cut = data.draw(st.integers(1, T - 1))
    whole = rwkv.wkv_reference(w, u, k, v)
    for fn in (rwkv.wkv_recurrent, rwkv.wkv_parallel):
        y1, s = fn(w, u, k[:, :cut], v[:, :cut], return_state=True)
        y2 = fn(w, u, k[:, cut:], v[:, cut:], state=s)
        torch.testing.assert_close(torch.cat([y1, y2], 1), whole, rtol=1e-10, atol=1e-12)
    # a state made by one form continues correctly in the other
    _, s = rwkv.wkv_recurrent(w, u, k[:, :cut], v[:, :cut], return_state=True)
    torch.testing.assert_close(rwkv.wkv_parallel(w, u, k[:, cut:], v[:, cut:], state=s), whole[:, cut:],
                               rtol=1e-10, atol=1e-12)


def test_naive_overflows_in_float32_while_stable_forms_do_not():
    w, u, k, v = wkv_inputs(2, 9, 5, seed=1, dtype=torch.float32)
    k = k + 100.0  # e^100 > float32 max (3.4e38)
    ref = rwkv.wkv_reference(w, u, k, v)
    assert torch.isfinite(ref).all()
    assert not torch.isfinite(rwkv.wkv_naive(w, u, k, v)).all()
    for fn in (rwkv.wkv_recurrent, rwkv.wkv_parallel, rwkv.wkv_chunked):
        y = fn(w, u, k, v)
        assert y.dtype == torch.float32
        torch.testing.assert_close(y.double(), ref, rtol=1e-4, atol=1e-5)


def test_wkv4_is_shift_invariant_in_keys():
    # adding a constant to every key (per channel) leaves the softmax-weighted average unchanged
    w, u, k, v = wkv_inputs(2, 8, 3, seed=5)
    shift = torch.tensor([-50.0, 0.0, 400.0], dtype=F64)
    torch.testing.assert_close(rwkv.wkv_recurrent(w, u, k + shift, v), rwkv.wkv_recurrent(w, u, k, v))


@pytest.mark.parametrize("fn", [rwkv.wkv_recurrent, rwkv.wkv_parallel,
                                lambda w, u, k, v: rwkv.wkv_chunked(w, u, k, v, chunk=2)])
def test_wkv4_gradcheck(fn):
    w, u, k, v = (x.requires_grad_() for x in wkv_inputs(2, 5, 3, seed=2))
    assert torch.autograd.gradcheck(fn, (w, u, k, v))


# ---------------------------------------------------------------------------------------------- WKV-6
sizes6 = st.tuples(st.integers(1, 2), st.integers(1, 9), st.integers(1, 2), st.sampled_from([1, 3]),
                   st.sampled_from([2, 3]), st.integers(0, 10_000))


@SETTINGS
@given(sizes6, st.integers(1, 4))
def test_wkv6_fast_forms_match_reference(size, chunk):
    B, T, H, K, V, seed = size
    args = wkv6_inputs(B, T, H, K, V, seed)
    ref = rwkv.wkv6_reference(*args)
    y_rec, s_rec = rwkv.wkv6_recurrent(*args, return_state=True)
    y_par, s_par = rwkv.wkv6_parallel(*args, return_state=True)
    y_chk, s_chk = rwkv.wkv6_chunked(*args, chunk=chunk, return_state=True)
    for y in (y_rec, y_par, y_chk):
        torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s_par, s_rec, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s_chk, s_rec, rtol=1e-10, atol=1e-12)


@SETTINGS
@given(st.integers(2, 10), st.integers(0, 10_000), st.data())
def test_wkv6_streaming_in_pieces_equals_whole(T, seed, data):
    r, lw, k, v, u = wkv6_inputs(1, T, 2, 3, 2, seed)
    cut = data.draw(st.integers(1, T - 1))
    whole = rwkv.wkv6_reference(r, lw, k, v, u)
    for fn in (rwkv.wkv6_recurrent, rwkv.wkv6_parallel):
        a = slice(0, cut)
        b = slice(cut, T)
        y1, S = fn(r[:, a], lw[:, a], k[:, a], v[:, a], u, return_state=True)
        y2 = fn(r[:, b], lw[:, b], k[:, b], v[:, b], u, state=S)
        torch.testing.assert_close(torch.cat([y1, y2], 1), whole, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fn", [rwkv.wkv6_recurrent, rwkv.wkv6_parallel])
def test_wkv6_gradcheck(fn):
    args = tuple(x.requires_grad_() for x in wkv6_inputs(1, 4, 2, 2, 3, seed=3))
    assert torch.autograd.gradcheck(fn, args)


# ---------------------------------------------------------------------------------------------- models
def run_in_pieces(model, tokens, cuts):
    state, outs, start = None, [], 0
    for stop in list(cuts) + [tokens.shape[1]]:
        logits, state = model(tokens[:, start:stop], state=state, return_state=True)
        outs.append(logits)
        start = stop
    return torch.cat(outs, 1)


@pytest.mark.parametrize("version,mode", [(4, "chunked"), (4, "parallel"), (4, "recurrent"), (6, "chunked"),
                                          (6, "recurrent")])
def test_model_whole_equals_pieces_equals_steps(version, mode):
    torch.manual_seed(0)
    model = rwkv.RWKVLM(11, 12, 2, version=version, n_head=3, wkv_mode=mode).double().eval()
    with torch.no_grad():
        for p in model.parameters():  # move off the symmetric initialisation
            p.add_(0.1 * torch.randn_like(p))
        tokens = torch.randint(0, 11, (2, 13))
        whole = model(tokens)
        torch.testing.assert_close(run_in_pieces(model, tokens, [1, 6, 7]), whole)
        state, steps = model.allocate_state(2), []
        for t in range(tokens.shape[1]):
            logits, state = model.step(tokens[:, t], state)
            steps.append(logits)
        torch.testing.assert_close(torch.stack(steps, 1), whole)


def test_model_wkv_modes_agree_and_are_causal():
    torch.manual_seed(1)
    models = [rwkv.RWKVLM(7, 8, 1, wkv_mode=m).double() for m in ("parallel", "recurrent", "chunked")]
    for m in models[1:]:
        m.load_state_dict(models[0].state_dict())
    tokens = torch.randint(0, 7, (1, 9))
    with torch.no_grad():
        outs = [m(tokens) for m in models]
        for o in outs[1:]:
            torch.testing.assert_close(o, outs[0])
        changed = tokens.clone()
        changed[0, 5] = (changed[0, 5] + 1) % 7
        after = models[0](changed)
    torch.testing.assert_close(after[:, :5], outs[0][:, :5])
    assert not torch.allclose(after[:, 5:], outs[0][:, 5:])


def test_model_gradients_reach_decay_and_bonus():
    model = rwkv.RWKVLM(7, 8, 1).double()
    tokens = torch.randint(0, 7, (2, 6))
    model(tokens).logsumexp(-1).sum().backward()
    att = model.blocks[0].att
    assert att.time_decay.grad.abs().sum() > 0 and att.time_first.grad.abs().sum() > 0


def test_timemix6_decay_is_data_dependent_and_below_one():
    tm = rwkv.TimeMix6(8, 2)
    with torch.no_grad():
        tm.decay_A.normal_()
        xw = torch.randn(2, 5, 8)
        log_w = tm.log_decay(xw)
    assert (log_w < 0).all()
    assert log_w.std(dim=1).min() > 0  # changes from token to token


# ---------------------------------------------------------------------------------------------- errors
def test_wkv_errors_name_argument_and_shape():
    w, u, k, v = wkv_inputs(2, 4, 3, seed=0)
    with pytest.raises(ValueError, match=r"w must have shape \(C,\) = \(3,\)"):
        rwkv.wkv_recurrent(w[:2], u, k, v)
    with pytest.raises(ValueError, match=r"v must have the shape of k"):
        rwkv.wkv_parallel(w, u, k, v[:, :3])
    with pytest.raises(ValueError, match=r"k must have shape \(batch, T, C\)"):
        rwkv.wkv_naive(w, u, k[0], v[0])
    with pytest.raises(ValueError, match=r"must have the dtype of k"):
        rwkv.wkv_recurrent(w.float(), u, k, v)
    with pytest.raises(ValueError, match=r"k must be a floating-point tensor"):
        rwkv.wkv_parallel(w, u, k.long(), v)
    with pytest.raises(ValueError, match=r"k must have at least one time step"):
        rwkv.wkv_reference(w, u, k[:, :0], v[:, :0])
    with pytest.raises(ValueError, match=r"state\[den\] must have shape \(batch, C\) = \(2, 3\)"):
        z = torch.zeros(2, 3, dtype=F64)
        rwkv.wkv_recurrent(w, u, k, v, state=(z, z[:1], z))
    with pytest.raises(ValueError, match=r"state must be a tuple"):
        rwkv.wkv_parallel(w, u, k, v, state=torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"chunk must be a positive int"):
        rwkv.wkv_chunked(w, u, k, v, chunk=0)


def test_wkv6_and_model_errors():
    r, lw, k, v, u = wkv6_inputs(1, 4, 2, 3, 2, seed=0)
    with pytest.raises(ValueError, match=r"u must have shape \(H, K\) = \(2, 3\)"):
        rwkv.wkv6_recurrent(r, lw, k, v, u.T)
    with pytest.raises(ValueError, match=r"log_w must have the shape of k"):
        rwkv.wkv6_parallel(r, lw[:, :2], k, v, u)
    with pytest.raises(ValueError, match=r"v must have shape \(batch, T, H, V\)"):
        rwkv.wkv6_parallel(r, lw, k, v[:, :3], u)
    with pytest.raises(ValueError, match=r"state must have shape \(batch, H, K, V\) = \(1, 2, 3, 2\)"):
        rwkv.wkv6_recurrent(r, lw, k, v, u, state=torch.zeros(1, 2, 2, 3, dtype=F64))
    model = rwkv.RWKVLM(5, 8, 1)
    with pytest.raises(ValueError, match=r"tokens must be an int64 tensor of shape \(batch, L\)"):
        model(torch.zeros(2, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"token must have shape \(batch,\)"):
        model.step(torch.zeros(2, 3, dtype=torch.int64), model.allocate_state(2))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, L, d_model=8\)"):
        model.blocks[0].att(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"version must be 4 or 6"):
        rwkv.RWKVBlock(8, version=5)
    with pytest.raises(ValueError, match=r"wkv_mode must be one of"):
        rwkv.TimeMix(8, wkv_mode="fast")
    with pytest.raises(ValueError, match=r"n_head must divide d_model \(10\)"):
        rwkv.TimeMix6(10, 4)
