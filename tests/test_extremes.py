"""Extreme-but-legal inputs and misuses that could pass silently, one test each, entry by entry."""
import math

import mpmath
import numpy as np
import pytest
import torch

from ssmbook import discretize as D
from ssmbook import hmm as H
from ssmbook import measure as ME
from ssmbook import rwkv as R
from ssmbook import s4 as S4
from ssmbook import scan as SC


# ------------------------------------------------------------------------------ discretize
def _phi1_prime(z):
    """d/dz (e^z - 1)/z in 50-digit arithmetic (1/2 at z = 0)."""
    with mpmath.workdps(50):
        z = mpmath.mpf(z)
        if z == 0:
            return mpmath.mpf(1) / 2
        return (mpmath.exp(z) * (z - 1) + 1) / z**2


A_NEAR_ZERO = [0.0] + [-(10.0**e) for e in np.linspace(-8, -1, 29)] + [-1.2e-7, -3e-1, -2.0, -30.0]


@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 2e-6), (torch.float64, 1e-13)])
@pytest.mark.parametrize("delta", [1.0, 0.5, 0.03125])
def test_zoh_diag_torch_gradient_near_zero_matches_mpmath(dtype, rtol, delta):
    a = torch.tensor(A_NEAR_ZERO, dtype=dtype, requires_grad=True)
    b = torch.ones_like(a)
    d = torch.tensor(delta, dtype=dtype, requires_grad=True)
    _, Bb = D.zoh_diag_torch(a, b, d)
    ga, gd = torch.autograd.grad(Bb.sum(), (a, d))
    assert torch.isfinite(ga).all()
    for ai, gi in zip(a.detach().tolist(), ga.tolist()):
        want = float(delta**2 * _phi1_prime(mpmath.mpf(ai) * delta))  # dBb/da = Δ² φ₁'(Δa) b
        assert abs(gi - want) <= rtol * abs(want), (ai, gi, want)
    # dBb/dΔ = e^{Δa} b, summed over the entries
    want_d = float(sum(mpmath.exp(mpmath.mpf(ai) * delta) for ai in a.detach().tolist()))
    assert abs(gd.item() - want_d) <= rtol * abs(want_d) * 4


def test_zoh_diag_torch_complex_near_zero_gradient():
    # complex a (S4D): the gradient of Re(Bb) along the real axis at a = 0 and a = -1e-7 + 1e-7i
    for a0 in (0j, -1e-7 + 1e-7j, -3e-3 + 2e-3j):
        ar = torch.tensor([a0.real], dtype=torch.float64, requires_grad=True)
        ai = torch.tensor([a0.imag], dtype=torch.float64)
        a = torch.complex(ar, ai)
        _, Bb = D.zoh_diag_torch(a, torch.ones_like(a), 1.0)
        (g,) = torch.autograd.grad(Bb.real.sum(), ar)
        with mpmath.workdps(50):
            z = mpmath.mpc(a0.real, a0.imag)
            want = mpmath.mpf(1) / 2 if z == 0 else (mpmath.exp(z) * (z - 1) + 1) / z**2
        assert abs(g.item() - float(mpmath.re(want))) < 1e-12


def test_zoh_diag_torch_rejects_non_positive_tensor_step():
    a = torch.tensor([-1.0, -2.0])
    for bad in (torch.tensor(-0.1), torch.tensor(0.0),
                torch.tensor(float("nan"))):
        with pytest.raises(ValueError, match="delta"):
            D.zoh_diag_torch(a, torch.ones_like(a), bad)
    a2 = torch.full((2, 3), -1.0)
    with pytest.raises(ValueError, match="delta"):
        D.zoh_diag_torch(a2, torch.ones_like(a2), torch.tensor([0.1, -0.2]))


def test_zoh_overflow_raises_instead_of_nan():
    A = np.diag([800.0, -1.0])
    with pytest.raises(ValueError, match="overflow"):
        D.zoh(A, np.ones(2), 1.0)


# ------------------------------------------------------------------------------ hmm
@pytest.mark.parametrize("T", [160, 200, 500, 2000])
def test_scan_log_likelihood_long_near_deterministic_chain(T):
    # identity transitions: the chain stays in state 0, whose emission of symbol 0 has p = 0.01,
    # while state 1 emits it with 0.99: the scaled products' state-0 entries fall below 1e-308
    hmm = H.HMM([1.0, 0.0], np.eye(2), [[0.01, 0.99], [0.99, 0.01]])
    obs = np.zeros(T, dtype=np.int64)
    exact = T * math.log(0.01)
    got = hmm.log_likelihood(obs, method="scan")
    assert math.isfinite(got)
    assert got == pytest.approx(exact, rel=1e-12)
    lp = hmm.forward_as_scan(obs)[1]
    np.testing.assert_allclose(lp, hmm.log_forward(obs).max(axis=1), rtol=1e-12)


def test_scan_forward_matches_log_forward_on_random_near_deterministic_chains():
    rng = np.random.default_rng(0)
    eps = 1e-9
    A = np.array([[1 - eps, eps], [eps, 1 - eps]])
    hmm = H.HMM([1 - 1e-12, 1e-12], A, [[0.02, 0.98], [0.97, 0.03]])
    obs = rng.integers(0, 2, 2000)
    ref = H._logsumexp(hmm.log_forward(obs), axis=1)
    lp = hmm.forward_as_scan(obs)[1]
    np.testing.assert_allclose(lp, ref, rtol=1e-10)
    alpha = hmm.forward_as_scan(obs)[0]
    la = hmm.log_forward(obs)
    np.testing.assert_allclose(alpha, np.exp(la - ref[:, None]), rtol=1e-8, atol=1e-300)


def test_log_matmul_rejects_mismatched_inner_dims():
    with pytest.raises(ValueError, match="X must have as many columns as Y has rows"):
        H.log_matmul(np.zeros((2, 3)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="X"):
        H.log_matmul(np.zeros(3), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        H.log_matmul(np.full((2, 2), np.nan), np.zeros((2, 2)))
    out = H.log_matmul(np.full((2, 2), -np.inf), np.zeros((2, 2)))     # -inf = log 0 is legal
    assert np.all(np.isneginf(out))


# ------------------------------------------------------------------------------ rwkv
def _wkv6_inputs(B=1, T=11, H=2, K=3, V=2, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    r, k = torch.randn(B, T, H, K, generator=g), torch.randn(B, T, H, K, generator=g)
    v = torch.randn(B, T, H, V, generator=g)
    u = torch.randn(H, K, generator=g)
    log_w = -torch.rand(B, T, H, K, generator=g)
    return [x.to(dtype) for x in (r, log_w, k, v, u)]


@pytest.mark.parametrize("form", ["parallel", "chunked"])
def test_wkv6_exact_zero_decay_is_not_nan(form):
    r, log_w, k, v, u = _wkv6_inputs()
    log_w[0, 3, 0, 1] = -math.inf
    log_w[0, 7, 1, :] = -math.inf
    fn = R.wkv6_parallel if form == "parallel" else (lambda *a, **kw: R.wkv6_chunked(*a, chunk=4, **kw))
    S0 = torch.randn(1, 2, 3, 2, dtype=torch.float64)
    y, S = fn(r, log_w, k, v, u, state=S0, return_state=True)
    y_ref, S_ref = R.wkv6_recurrent(r, log_w, k, v, u, state=S0, return_state=True)
    assert torch.isfinite(y).all() and torch.isfinite(S).all()
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(S, S_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("form", ["parallel", "chunked"])
@pytest.mark.parametrize("scale", [1e3, 1e4])
def test_wkv6_huge_decays_match_recurrent_per_entry(form, scale):
    # a few huge decays among ordinary ones: the cumulative sums are huge, their differences not
    r, log_w, k, v, u = _wkv6_inputs(T=13, dtype=torch.float32, seed=1)
    log_w[0, 2] = -scale
    log_w[0, 9, 0] = -scale * 0.7
    fn = R.wkv6_parallel if form == "parallel" else (lambda *a, **kw: R.wkv6_chunked(*a, chunk=8, **kw))
    y, S = fn(r, log_w, k, v, u, return_state=True)
    y_ref, S_ref = R.wkv6_recurrent(*(x.double() for x in (r, log_w, k, v, u)), return_state=True)
    # entry by entry, against each entry's own size (floor 1e-6)
    assert ((y.double() - y_ref).abs() <= 1e-5 * y_ref.abs() + 1e-6).all()
    assert ((S.double() - S_ref).abs() <= 1e-5 * S_ref.abs() + 1e-6).all()


def test_wkv6_parallel_gradient_with_zero_decay_is_finite():
    r, log_w, k, v, u = _wkv6_inputs(T=6)
    log_w[0, 2, 1, 0] = -math.inf
    leaves = [x.clone().requires_grad_() for x in (r, k, v, u)]
    y = R.wkv6_parallel(leaves[0], log_w, leaves[1], leaves[2], leaves[3])
    y_ref = R.wkv6_recurrent(leaves[0], log_w, leaves[1], leaves[2], leaves[3])
    g = torch.autograd.grad(y.square().sum(), leaves)
    g_ref = torch.autograd.grad(y_ref.square().sum(), leaves)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)


# ------------------------------------------------------------------------------ s4
def test_recurrent_real_system_complex_h0_keeps_imaginary_part():
    Ab = np.array([[0.9, 0.1], [0.0, 0.5]])
    Bb, C = np.array([1.0, 0.5]), np.array([1.0, -1.0])
    u = np.array([[1.0, 0.0, 2.0]])
    h0 = np.array([[1.0 + 2.0j, -1.0j]])
    y, h = S4.recurrent(Ab, Bb, C, u, h0=h0, return_state=True)
    yr, hr = S4.recurrent(Ab, Bb, C, u, h0=h0.real, return_state=True)
    yi, hi = S4.recurrent(Ab, Bb, C, np.zeros_like(u), h0=h0.imag, return_state=True)
    np.testing.assert_allclose(y, yr + 1j * yi, rtol=1e-14)       # linearity in h0
    np.testing.assert_allclose(h, hr + 1j * hi, rtol=1e-14)


@pytest.mark.parametrize("call", [
    lambda: S4.kernel(np.eye(2) * np.nan, np.ones(2), np.ones(2), 3),
    lambda: S4.recurrent(np.eye(2), np.ones(2), np.ones(2), np.array([1.0, np.nan])),
    lambda: S4.causal_conv(np.array([1.0, np.nan]), np.ones(2)),
    lambda: S4.conv_matrix(np.array([np.nan, 1.0])),
    lambda: S4.legendre_reconstruct(np.array([np.nan, 1.0]), np.array([0.5])),
])
def test_numpy_functions_reject_nan(call):
    with pytest.raises(ValueError, match="NaN"):
        call()


# ------------------------------------------------------------------------------ sizes
@pytest.mark.parametrize("call, name", [
    (lambda: ME.transformer_block_flops(-5, 8), "L"),
    (lambda: ME.transformer_block_flops(5, -8), "D"),
    (lambda: ME.kv_cache_floats(-3, 8), "t"),
    (lambda: ME.kv_cache_floats(np.array([1, -3]), 8), "t"),
    (lambda: ME.kv_cache_floats(3, -8), "D"),
    (lambda: ME.mamba_state_floats(-4), "D"),
    (lambda: ME.mamba_state_floats(4, d_state=-16), "d_state"),
    (lambda: SC.work_closed_form("blelloch", -8), "L"),
    (lambda: SC.depth_closed_form("sequential", -8), "L"),
])
def test_size_helpers_reject_negative_sizes(call, name):
    with pytest.raises((ValueError, TypeError), match=name):
        call()


def test_zoh_upper_triangular_with_a_tiny_eigenvalue():
    # scipy's triangular expm path gave Bb = 0 here (exact: delta * phi1(delta * 1e-30) = 2)
    Ab, Bb = D.zoh(np.diag([3.0, 1e-30]), np.array([-1.0, 1.0]), 2.0)
    assert Bb[1] == pytest.approx(2.0, rel=1e-14)
    assert Bb[0] == pytest.approx(-(math.exp(6.0) - 1) / 3.0, rel=1e-12)
