"""Tests for ssmbook.s4: every fast path against a float64 loop oracle, on awkward sizes."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmbook import s4
from ssmbook.discretize import zoh

SETTINGS = settings(max_examples=25, deadline=None)


def rand_system(rng, N, complex_=False, scale=0.4):
    Ab = rng.normal(size=(N, N)) * scale / np.sqrt(N)
    Bb = rng.normal(size=N)
    C = rng.normal(size=N)
    if complex_:
        Ab = Ab + 1j * rng.normal(size=(N, N)) * scale / np.sqrt(N)
        Bb = Bb + 1j * rng.normal(size=N)
        C = C + 1j * rng.normal(size=N)
    return Ab, Bb, C


# ----------------------------------------------------------------------------- HiPPO-LegS
@pytest.mark.parametrize("N", [1, 2, 5, 16])
def test_hippo_legs_matches_closed_form_entrywise(N):
    A, B = s4.hippo_legs(N)
    assert A.shape == (N, N) and B.shape == (N,) and A.dtype == B.dtype == np.float64
    for n in range(N):
        assert B[n] == pytest.approx(np.sqrt(2 * n + 1), rel=1e-15)
        for k in range(N):
            want = -np.sqrt((2 * n + 1) * (2 * k + 1)) if n > k else (-(n + 1.0) if n == k else 0.0)
            assert A[n, k] == pytest.approx(want, rel=1e-15, abs=0)


@pytest.mark.parametrize("N", [1, 3, 8, 17])
def test_hippo_legs_nplr_and_spectrum(N):
    A, _ = s4.hippo_legs(N)
    S, P = s4.hippo_legs_nplr(N)
    np.testing.assert_allclose(S - np.outer(P, P), A, rtol=0, atol=1e-12)
    W = S + 0.5 * np.eye(N)
    np.testing.assert_allclose(W, -W.T, rtol=0, atol=1e-12)          # S = -I/2 + skew-symmetric
    # A is lower triangular: its eigenvalues are -(1, ..., N)
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(A).real), -np.arange(N, 0, -1.0), atol=1e-6)


@pytest.mark.parametrize("N", [1, 4, 9])
def test_hippo_legs_diagonal_is_half_the_normal_spectrum(N):
    lam = s4.hippo_legs_diagonal(N)
    assert lam.shape == (N,) and lam.dtype == np.complex128
    np.testing.assert_allclose(lam.real, -0.5, atol=1e-12)
    S, _ = s4.hippo_legs_nplr(2 * N)
    ev = np.linalg.eigvals(S)
    ev = np.sort(ev[ev.imag > 0].imag)
    np.testing.assert_allclose(lam.imag, ev, rtol=1e-9, atol=1e-9)


def test_legs_project_is_exact_for_polynomials():
    rng = np.random.default_rng(1)
    coef = rng.normal(size=5)                        # degree-4 polynomial on [0, t]
    t = 3.7
    f = lambda s: np.polyval(coef, s)                # noqa: E731
    c = s4.legs_project(f, t, N=8)
    s = np.linspace(0, 1, 41)
    np.testing.assert_allclose(s4.legendre_reconstruct(c, s), f(s * t), rtol=0, atol=1e-10)
    np.testing.assert_allclose(c[5:], 0, atol=1e-9)  # degree 4: nothing beyond P_4


def test_legs_online_converges_to_projection_at_second_order():
    f = lambda s: np.sin(6 * s) + 0.5 * np.cos(17 * s)    # noqa: E731
    errs = []
    for T in (250, 500, 1000):
        t = np.arange(1, T + 1.0) / T
        c = s4.legs_online(f(t), 12)
        assert c.shape == (T, 12)
        errs.append(np.abs(c[-1] - s4.legs_project(f, 1.0, 12)).max())
        # the state at an intermediate time projects the history up to that time
        k = T // 3
        np.testing.assert_allclose(c[k - 1], s4.legs_project(f, k / T, 12), atol=5e-3)
    assert errs[-1] < 1e-4
    assert errs[0] / errs[1] > 3.0 and errs[1] / errs[2] > 3.0   # ~4 for a second-order rule


def test_legs_online_of_a_constant_is_exact():
    c = s4.legs_online(np.full(50, 2.5), 6)
    np.testing.assert_allclose(c, np.tile([2.5, 0, 0, 0, 0, 0], (50, 1)), atol=1e-12)


@pytest.mark.parametrize("delta", [0.3, 0.02])
def test_zoh_legs_kernel_integrates_the_warped_legendre_kernel(delta):
    """ZOH makes K_j the integral of the continuous impulse response over [jΔ, (j+1)Δ]."""
    N, L = 6, 40
    A, B = s4.hippo_legs(N)
    Ab, Bb = zoh(A, B, delta)
    x, w = np.polynomial.legendre.leggauss(24)
    r = ((np.arange(L)[:, None] + (x + 1) / 2) * delta).ravel()
    k = s4.legs_lti_kernel(r, N).reshape(N, L, -1)
    want = (k * w).sum(-1) * delta / 2                              # (N, L)
    for n in range(N):
        np.testing.assert_allclose(s4.kernel(Ab, Bb, np.eye(N)[n], L), want[n], rtol=0, atol=1e-12)


def test_hippo_errors():
    for bad in (0, -3, 2.0, True):
        with pytest.raises(ValueError, match="N must be a positive int"):
            s4.hippo_legs(bad)
    with pytest.raises(ValueError, match="f must have dtype float64"):
        s4.legs_online(np.zeros(5, dtype=np.float32), 3)
    with pytest.raises(ValueError, match="f must have 1 dimension"):
        s4.legs_online(np.zeros((5, 2)), 3)
    with pytest.raises(ValueError, match="s must lie in"):
        s4.legendre_reconstruct(np.ones(3), np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match="t must be a positive"):
        s4.legs_project(np.sin, -1.0, 3)


# ----------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("N,L", [(1, 1), (3, 7), (5, 33)])
def test_kernel_is_the_impulse_response(N, L, complex_):
    rng = np.random.default_rng(N * 100 + L)
    Ab, Bb, C = rand_system(rng, N, complex_)
    K = s4.kernel(Ab, Bb, C, L)
    impulse = np.zeros(L)
    impulse[0] = 1.0
    np.testing.assert_allclose(s4.recurrent(Ab, Bb, C, impulse), K, rtol=0, atol=1e-12)
    # and the explicit powers
    want = [C @ np.linalg.matrix_power(Ab, j) @ Bb for j in range(L)]
    np.testing.assert_allclose(K, want, rtol=1e-10, atol=1e-12)


@SETTINGS
@given(N=st.integers(1, 9), L=st.integers(1, 70), seed=st.integers(0, 2**31 - 1))
def test_kernel_diag_equals_naive_kernel(N, L, seed):
    rng = np.random.default_rng(seed)
    a = -rng.uniform(0.05, 2, size=N) + 1j * rng.normal(size=N) * 3
    B = rng.normal(size=N) + 1j * rng.normal(size=N)
    C = rng.normal(size=N) + 1j * rng.normal(size=N)
    dA = np.exp(0.1 * a)
    dB = (dA - 1) / a * B
    fast = s4.kernel_diag(dA, dB, C, L)
    slow = s4.kernel(np.diag(dA), dB, C, L)
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12)


def test_kernel_diag_real_zero_and_negative_modes():
    dA = np.array([0.0, -0.5, 0.9, 1.0])
    dB, C = np.array([1.0, 2.0, -1.0, 0.5]), np.array([0.3, 1.0, 2.0, -1.0])
    K = s4.kernel_diag(dA, dB, C, 9)
    assert K.dtype == np.float64                      # real in, real out
    np.testing.assert_allclose(K, s4.kernel(np.diag(dA), dB, C, 9), rtol=1e-12, atol=1e-14)


def test_kernel_diag_batched_rows_are_independent():
    rng = np.random.default_rng(3)
    dA = rng.uniform(-0.9, 0.9, size=(4, 3))
    dB, C = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    K = s4.kernel_diag(dA, dB, C, 11)
    assert K.shape == (4, 11)
    for h in range(4):
        np.testing.assert_allclose(K[h], s4.kernel(np.diag(dA[h]), dB[h], C[h], 11), atol=1e-12)


def test_zoh_hippo_kernel_via_recurrence():
    A, B = s4.hippo_legs(7)
    Ab, Bb = zoh(A, B, 0.05)
    C = np.random.default_rng(0).normal(size=7)
    K = s4.kernel(Ab, Bb, C, 50)
    u = np.random.default_rng(1).normal(size=(2, 50))
    np.testing.assert_allclose(s4.causal_conv(u, K), s4.recurrent(Ab, Bb, C, u), rtol=0, atol=1e-10)


def test_kernel_errors():
    Ab, Bb, C = rand_system(np.random.default_rng(0), 3)
    with pytest.raises(ValueError, match=r"Ab must be square \(N, N\)"):
        s4.kernel(Ab[:, :2], Bb, C, 4)
    with pytest.raises(ValueError, match=r"Bb must have shape \(3,\) or \(3, 1\)"):
        s4.kernel(Ab, Bb[:2], C, 4)
    with pytest.raises(ValueError, match=r"C must have shape \(3,\) or \(1, 3\)"):
        s4.kernel(Ab, Bb, C[None, :2], 4)
    with pytest.raises(ValueError, match="Ab must have dtype float64 or complex128, got float32"):
        s4.kernel(Ab.astype(np.float32), Bb, C, 4)
    with pytest.raises(ValueError, match="L must be a positive int"):
        s4.kernel(Ab, Bb, C, 0)
    with pytest.raises(ValueError, match=r"dB must have the shape of dA \(3,\)"):
        s4.kernel_diag(np.ones(3), np.ones(4), np.ones(3), 5)
    with pytest.raises(ValueError, match="Ab must be a NumPy array"):
        s4.kernel(torch.zeros(3, 3), Bb, C, 4)
    # a column B and a row C are accepted (unambiguous), and give the same kernel
    np.testing.assert_allclose(s4.kernel(Ab, Bb[:, None], C[None, :], 6), s4.kernel(Ab, Bb, C, 6))


# ----------------------------------------------------------------------------- convolution
@SETTINGS
@given(L=st.integers(1, 80), Lk=st.integers(1, 100), H=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_causal_conv_fft_equals_direct(L, Lk, H, seed):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(2, H, L))
    K = rng.normal(size=(H, Lk))
    want = s4.causal_conv_direct(u, K)
    np.testing.assert_allclose(s4.causal_conv(u, K), want, rtol=0, atol=1e-10)
    got_t = s4.causal_conv(torch.tensor(u), torch.tensor(K))
    assert got_t.dtype == torch.float64
    np.testing.assert_allclose(got_t.numpy(), want, rtol=0, atol=1e-10)
    # one shared kernel for every row
    np.testing.assert_allclose(s4.causal_conv(u, K[0]), s4.causal_conv_direct(u, K[0]), atol=1e-10)


@pytest.mark.parametrize("L", [1, 2, 31, 64, 129])
def test_conv_equals_recurrence_and_toeplitz_matrix(L):
    rng = np.random.default_rng(L)
    Ab, Bb, C = rand_system(rng, 5)
    u = rng.normal(size=(3, L))
    K = s4.kernel(Ab, Bb, C, L)
    y_rec = s4.recurrent(Ab, Bb, C, u)
    np.testing.assert_allclose(s4.causal_conv(u, K), y_rec, rtol=0, atol=1e-10)
    np.testing.assert_allclose(s4.causal_conv_direct(u, K), y_rec, rtol=0, atol=1e-10)
    np.testing.assert_allclose(u @ s4.conv_matrix(K).T, y_rec, rtol=0, atol=1e-10)


def test_causal_conv_complex_and_no_wraparound():
    rng = np.random.default_rng(7)
    u = rng.normal(size=16) + 1j * rng.normal(size=16)
    K = rng.normal(size=16) + 1j * rng.normal(size=16)
    np.testing.assert_allclose(s4.causal_conv(u, K), s4.causal_conv_direct(u, K), atol=1e-10)
    # an impulse at the end must not leak back to the start (a circular FFT would wrap it)
    u = np.zeros(10)
    u[-1] = 1.0
    y = s4.causal_conv(u, np.ones(10))
    np.testing.assert_allclose(y, u, atol=1e-12)


def test_recurrent_state_carries_over():
    rng = np.random.default_rng(11)
    Ab, Bb, C = rand_system(rng, 4)
    u = rng.normal(size=(2, 23))
    y, h = s4.recurrent(Ab, Bb, C, u, return_state=True)
    y1, h1 = s4.recurrent(Ab, Bb, C, u[:, :10], return_state=True)
    y2, h2 = s4.recurrent(Ab, Bb, C, u[:, 10:], h0=h1, return_state=True)
    np.testing.assert_allclose(np.concatenate([y1, y2], -1), y, atol=1e-12)
    np.testing.assert_allclose(h2, h, atol=1e-12)


def test_conv_errors():
    u = np.zeros((2, 3, 8))
    with pytest.raises(ValueError, match=r"K must have shape \(Lk,\) or \(\.\.\., Lk\)"):
        s4.causal_conv(u, np.zeros((4, 8)))
    with pytest.raises(ValueError, match=r"K must have shape \(Lk,\) or \(\.\.\., Lk\)"):
        s4.causal_conv(u[0, 0], np.zeros((3, 8)))
    with pytest.raises(ValueError, match="both be NumPy arrays or both be torch tensors"):
        s4.causal_conv(torch.zeros(8), np.zeros(8))
    with pytest.raises(ValueError, match="u must have shape"):
        s4.causal_conv(np.zeros((3, 0)), np.zeros(4))
    with pytest.raises(ValueError, match="u must be a floating-point or complex tensor"):
        s4.causal_conv(torch.zeros(8, dtype=torch.long), torch.zeros(8))
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 3\)"):
        s4.recurrent(np.eye(3), np.ones(3), np.ones(3), np.zeros((2, 5)), h0=np.zeros(3))


# ----------------------------------------------------------------------------- S4Layer
@pytest.mark.parametrize("init", ["lin", "legs"])
@pytest.mark.parametrize("L", [1, 37])
def test_layer_conv_mode_equals_recurrent_mode(init, L):
    torch.manual_seed(L)
    layer = s4.S4Layer(3, 5, dt_min=1e-2, dt_max=0.5, init=init).double()
    u = torch.randn(2, 3, L, dtype=torch.float64)
    y_conv = layer(u)
    y_rec = layer.forward_recurrent(u)
    assert y_conv.shape == (2, 3, L)
    torch.testing.assert_close(y_conv, y_rec, rtol=0, atol=1e-10)
    # continuing from a state: two halves give the whole
    if L > 1:
        ya, h = layer.forward_recurrent(u[..., :L // 2], return_state=True)
        yb = layer.forward_recurrent(u[..., L // 2:], state=h)
        torch.testing.assert_close(torch.cat([ya, yb], -1), y_conv, rtol=0, atol=1e-10)


@pytest.mark.parametrize("L", [1, 2, 16, 19, 101])
def test_layer_kernel_equals_real_state_space_oracle(L):
    """The layer's kernel is the impulse response of a real SSM of size 2N (conjugate pairs)."""
    torch.manual_seed(L)
    layer = s4.S4Layer(2, 3, dt_min=0.05, dt_max=0.3).double()
    with torch.no_grad():
        K, dA, dB = layer.kernel(L)
        C = torch.view_as_complex(layer.C.detach())
    for h in range(2):
        a = dA[h].numpy()
        b = dB[h].numpy()
        c = C[h].numpy()
        full_A = np.diag(np.concatenate([a, a.conj()]))
        full_B = np.concatenate([b, b.conj()])
        full_C = np.concatenate([c, c.conj()])
        naive = s4.kernel(full_A, full_B, full_C, L)
        np.testing.assert_allclose(naive.imag, 0, atol=1e-12)
        np.testing.assert_allclose(K[h].numpy(), naive.real, rtol=0, atol=1e-10)
        np.testing.assert_allclose(K[h].numpy(), 2 * s4.kernel_diag(a, b, c, L).real, atol=1e-10)
        # ZOH check: Ā = exp(ΔA), B̄ = (Ā - 1)/A for B = 1
        Acont = -np.exp(layer.log_A_real[h].detach().numpy()) + 1j * layer.A_imag[h].detach().numpy()
        dt = np.exp(layer.log_dt[h].item())
        np.testing.assert_allclose(a, np.exp(dt * Acont), atol=1e-12)
        np.testing.assert_allclose(b, (np.exp(dt * Acont) - 1) / Acont, atol=1e-12)


def test_layer_init_and_parameters():
    layer = s4.S4Layer(4, 6, dt_min=1e-3, dt_max=1e-1, init="legs")
    dt = layer.log_dt.exp()
    assert torch.all((dt >= 1e-3 * (1 - 1e-6)) & (dt <= 1e-1 * (1 + 1e-6)))
    A_re = -layer.log_A_real.exp()
    torch.testing.assert_close(A_re, torch.full((4, 6), -0.5))
    torch.testing.assert_close(layer.A_imag[0].double(), torch.tensor(s4.hippo_legs_diagonal(6).imag),
                               rtol=1e-6, atol=1e-5)
    lin = s4.S4Layer(2, 4, init="lin")
    torch.testing.assert_close(lin.A_imag[1], torch.pi * torch.arange(4.0))
    names = {n for n, _ in layer.named_parameters()}
    assert names == {"log_dt", "log_A_real", "A_imag", "C", "D"}


def test_gradcheck_s4d_kernel_and_conv():
    torch.manual_seed(1)
    H, N, L = 2, 3, 6
    dd = dict(dtype=torch.float64, requires_grad=True)
    u = torch.randn(2, H, L, **dd)
    log_dt = (torch.rand(H, dtype=torch.float64) * 2 - 3).requires_grad_()
    log_A_real = torch.randn(H, N, **dd)
    A_imag = torch.randn(H, N, **dd)
    C = torch.randn(H, N, 2, **dd)

    def f(u, log_dt, log_A_real, A_imag, C):
        K, _, _ = s4.s4d_kernel(log_dt, log_A_real, A_imag, torch.view_as_complex(C), L)
        return s4.causal_conv(u, K)

    assert torch.autograd.gradcheck(f, (u, log_dt, log_A_real, A_imag, C))


class _Recurrent(torch.nn.Module):
    """Wraps a layer so that functional_call runs its recurrent mode."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, u):
        return self.inner.forward_recurrent(u)


@pytest.mark.parametrize("mode", ["conv", "recurrent"])
def test_gradcheck_layer_parameters_and_input(mode):
    torch.manual_seed(2)
    layer = s4.S4Layer(2, 2, dt_min=0.05, dt_max=0.2).double()
    module, prefix = (layer, "") if mode == "conv" else (_Recurrent(layer), "inner.")
    names = [prefix + n for n, _ in layer.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in layer.parameters())
    u = torch.randn(1, 2, 5, dtype=torch.float64, requires_grad=True)

    def f(u, *ps):
        return torch.func.functional_call(module, dict(zip(names, ps)), (u,))

    assert torch.autograd.gradcheck(f, (u,) + params)


def test_s4d_kernel_errors():
    H, N = 2, 3
    ok = dict(log_dt=torch.zeros(H), log_A_real=torch.zeros(H, N), A_imag=torch.zeros(H, N),
              C=torch.zeros(H, N, dtype=torch.complex64))
    assert s4.s4d_kernel(L=5, **ok)[0].shape == (H, 5)
    with pytest.raises(ValueError, match=r"log_dt must be a real tensor of shape \(H,\)"):
        s4.s4d_kernel(L=5, **{**ok, "log_dt": torch.zeros(H, 1)})
    with pytest.raises(ValueError, match=r"A_imag must have shape \(H, N\) with H = 2"):
        s4.s4d_kernel(L=5, **{**ok, "A_imag": torch.zeros(3, N)})
    with pytest.raises(ValueError, match="must share one shape"):
        s4.s4d_kernel(L=5, **{**ok, "C": torch.zeros(H, N + 1, dtype=torch.complex64)})
    with pytest.raises(ValueError, match="C must be a complex tensor"):
        s4.s4d_kernel(L=5, **{**ok, "C": torch.zeros(H, N)})


def test_layer_errors():
    layer = s4.S4Layer(3, 4)
    with pytest.raises(ValueError, match=r"u must have shape \(batch, H, L\) with H = 3"):
        layer(torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match=r"u must have shape \(batch, H, L\)"):
        layer(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="u must have the layer's dtype torch.float32"):
        layer(torch.zeros(1, 3, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"state must have shape \(batch, H, N\) = \(2, 3, 4\)"):
        layer.step(torch.zeros(2, 3), torch.zeros(2, 3, 5, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"u_t must have shape \(batch, H\)"):
        layer.step(torch.zeros(2, 3, 1), layer.initial_state(2))
    with pytest.raises(ValueError, match="init must be 'lin' or 'legs'"):
        s4.S4Layer(3, 4, init="random")
    with pytest.raises(ValueError, match="need 0 < dt_min <= dt_max"):
        s4.S4Layer(3, 4, dt_min=0.1, dt_max=0.01)


# ----------------------------------------------------------------------------- toy tasks