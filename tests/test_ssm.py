"""ssmbook.ssm: impulse response, simulation (exact ZOH steps vs ODE integration), stability,
and the three views (continuous, recurrent, convolutional) agreeing."""
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings, strategies as st

from ssmbook import discretize as dz
from ssmbook.ssm import (ContinuousSSM, causal_convolve, diagonal_ssm, is_stable, kernel,
                         recurrence, recurrence_diag, spring_mass_damper)


def random_ssm(rng, N, M=None, P=None, shift=0.5):
    A = rng.standard_normal((N, N)) / np.sqrt(N) - shift * np.eye(N)
    B = rng.standard_normal(N) if M is None else rng.standard_normal((N, M))
    C = rng.standard_normal(N) if P is None else rng.standard_normal((P, N))
    return A, B, C


def impulse_loop(sys, t):
    """Oracle: C expm(t A) B, one matrix exponential per time."""
    return np.array([sys.C @ scipy.linalg.expm(tk * sys.A) @ sys.B for tk in t])


@pytest.mark.parametrize("N", [1, 2, 5])
def test_impulse_response_uniform_fast_path_matches_loop(N):
    rng = np.random.default_rng(N)
    sys = ContinuousSSM(*random_ssm(rng, N))
    t = np.linspace(0.3, 7.0, 37)
    K = sys.impulse_response(t)
    assert K.shape == (37,)
    np.testing.assert_allclose(K, impulse_loop(sys, t)[:, 0, 0], rtol=1e-10, atol=1e-12)
    t2 = np.sort(rng.uniform(0, 5, 9))   # non-uniform grid: the per-time path
    np.testing.assert_allclose(sys.impulse_response(t2), impulse_loop(sys, t2)[:, 0, 0], rtol=1e-12, atol=1e-14)


def test_impulse_response_mimo_shape_and_scalar_closed_form():
    rng = np.random.default_rng(0)
    sys = ContinuousSSM(*random_ssm(rng, 3, M=2, P=4))
    t = np.linspace(0, 1, 5)
    K = sys.impulse_response(t)
    assert K.shape == (5, 4, 2)
    np.testing.assert_allclose(K, impulse_loop(sys, t), rtol=1e-10, atol=1e-12)
    one = ContinuousSSM(np.array([[-0.7]]), np.array([2.0]), np.array([3.0]))
    np.testing.assert_allclose(one.impulse_response(np.array([0.0, 1.0, 2.5])),
                               6.0 * np.exp(-0.7 * np.array([0.0, 1.0, 2.5])), rtol=1e-13)


@pytest.mark.parametrize("N,L", [(1, 1), (2, 2), (3, 17), (5, 40)])
def test_simulate_exact_matches_ode_integration(N, L):
    rng = np.random.default_rng(10 * N + L)
    sys = ContinuousSSM(*random_ssm(rng, N), D=0.3)
    t = np.cumsum(rng.uniform(0.05, 0.4, L))       # uneven steps
    x = rng.standard_normal(L)
    h0 = rng.standard_normal(N)
    y, H = sys.simulate(x, t, h0=h0, return_state=True)
    y_ode, H_ode = sys.simulate(x, t, h0=h0, method="ode", return_state=True)
    assert y.shape == (L,) and H.shape == (L, N)
    np.testing.assert_allclose(H, H_ode, rtol=0, atol=1e-10 * max(1, np.abs(H_ode).max()))
    np.testing.assert_allclose(y, y_ode, rtol=0, atol=1e-10 * max(1, np.abs(y_ode).max()))
    np.testing.assert_allclose(y, H @ sys.C[0] + 0.3 * x, atol=1e-14)


def test_simulate_callable_input_matches_closed_form():
    a, w = -0.8, 2.0
    sys = ContinuousSSM(np.array([[a]]), np.array([1.0]), np.array([1.0]))
    t = np.linspace(0, 6, 31)
    y = sys.simulate(lambda s: np.cos(w * s), t)
    # h' = a h + cos(wt), h(0) = 0:  h = (-a cos wt + w sin wt + a e^{at}) / (a² + w²)
    exact = (-a * np.cos(w * t) + w * np.sin(w * t) + a * np.exp(a * t)) / (a**2 + w**2)
    np.testing.assert_allclose(y, exact, atol=1e-9)


def test_simulate_callable_constant_equals_held_samples():
    rng = np.random.default_rng(2)
    sys = ContinuousSSM(*random_ssm(rng, 3))
    t = np.linspace(0, 3, 13)
    y_call = sys.simulate(lambda s: 0.7, t)
    y_held = sys.simulate(np.full(13, 0.7), t)
    np.testing.assert_allclose(y_call, y_held, atol=1e-9)


@settings(max_examples=15, deadline=None)
@given(N=st.integers(1, 6), L=st.integers(1, 30), seed=st.integers(0, 10**6),
       delta=st.floats(0.01, 1.5))
def test_three_views_agree(N, L, seed, delta):
    """continuous (held input) == recurrent == convolutional, with the index shift of ZOH:
    the recurrent state h_k is the continuous state at t_{k+1}, after x_k has been held for Δ."""
    rng = np.random.default_rng(seed)
    A, B, C = random_ssm(rng, N)
    sys = ContinuousSSM(A, B, C)
    x = rng.standard_normal(L)
    Ab, Bb = dz.zoh(A, B, delta)
    y_rec = recurrence(Ab, Bb, C, x)
    y_conv = causal_convolve(kernel(Ab, Bb, C, L), x)
    t = delta * np.arange(L + 1)
    y_cont = sys.simulate(np.append(x, 0.0), t)[1:]
    scale = max(1.0, np.abs(y_rec).max())
    np.testing.assert_allclose(y_conv, y_rec, atol=1e-11 * scale)
    np.testing.assert_allclose(y_cont, y_rec, atol=1e-11 * scale)


def test_kernel_is_sampled_impulse_response_times_bb_and_recurrence_skip():
    rng = np.random.default_rng(4)
    A, B, C = random_ssm(rng, 3)
    Ab, Bb = dz.zoh(A, B, 0.2)
    K = kernel(Ab, Bb, C, 9)
    np.testing.assert_allclose(K, [C @ np.linalg.matrix_power(Ab, k) @ Bb for k in range(9)], atol=1e-14)
    x = rng.standard_normal(9)
    np.testing.assert_allclose(recurrence(Ab, Bb, C, x, D=2.0) - recurrence(Ab, Bb, C, x), 2.0 * x, atol=1e-14)


def test_stability_from_eigenvalues():
    assert spring_mass_damper().is_stable()
    assert not spring_mass_damper(c=0.0).is_stable()           # undamped: eigenvalues ±2i
    assert not is_stable(np.array([[0.1, 0.0], [0.0, -1.0]]))
    sys = diagonal_ssm(4, slowest=0.05, fastest=2.0)
    assert sys.is_stable()
    assert sys.memory_time() == pytest.approx(20.0)
    assert spring_mass_damper(c=0.0).memory_time() == float("inf")
    # stable ⇔ the free response decays
    for A in (spring_mass_damper().A, np.array([[0.05, 1.0], [-1.0, 0.05]])):
        decays = np.linalg.norm(scipy.linalg.expm(60 * A)) < 1e-3
        assert decays == is_stable(A)


def test_diagonal_ssm_impulse_is_mean_of_exponentials():
    sys = diagonal_ssm(3, slowest=0.1, fastest=1.0)
    t = np.linspace(0, 5, 11)
    rates = np.geomspace(1.0, 0.1, 3)
    np.testing.assert_allclose(sys.impulse_response(t), np.exp(-np.outer(t, rates)).mean(1), rtol=1e-12)


def test_bad_input_raises():
    with pytest.raises(ValueError, match=r"A must be a square matrix of shape \(N, N\)"):
        ContinuousSSM(np.ones((2, 3)), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match=r"B must have shape \(N,\) or \(N, M\) with N = 2"):
        ContinuousSSM(np.eye(2), np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match=r"C must have shape \(N,\) or \(P, N\) with N = 2"):
        ContinuousSSM(np.eye(2), np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match=r"D must be a scalar or have shape \(P, M\) = \(1, 1\)"):
        ContinuousSSM(np.eye(2), np.ones(2), np.ones(2), D=np.ones(2))
    sys = ContinuousSSM(np.eye(2), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match=r"x must have shape \(L,\) or \(L, 1\) with L = len\(t\)"):
        sys.simulate(np.ones(4), np.arange(5.0))
    with pytest.raises(ValueError, match="t must be strictly increasing"):
        sys.simulate(np.ones(3), np.array([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"h0 must have shape \(N,\) = \(2,\)"):
        sys.simulate(np.ones(3), np.arange(3.0), h0=np.ones(3))
    with pytest.raises(ValueError, match="method must be 'exact' or 'ode'"):
        sys.simulate(np.ones(3), np.arange(3.0), method="rk4")
    with pytest.raises(ValueError, match=r"t must be a non-empty 1-D array"):
        sys.impulse_response(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"Bb must have shape \(N,\) = \(2,\)"):
        recurrence(np.eye(2), np.ones(3), np.ones(2), np.ones(4))
    with pytest.raises(ValueError, match=r"L must be a positive int"):
        kernel(np.eye(2), np.ones(2), np.ones(2), 0)


@pytest.mark.parametrize("N,L", [(1, 1), (3, 7), (4, 130)])
def test_recurrence_diag_matches_loop_real_and_complex(N, L):
    rng = np.random.default_rng(N + L)
    x = rng.standard_normal(L)
    ab, bb, c = rng.uniform(-0.99, 0.99, N), rng.standard_normal(N), rng.standard_normal(N)
    np.testing.assert_allclose(recurrence_diag(ab, bb, c, x), recurrence(np.diag(ab), bb, c, x), atol=1e-12)
    # conjugate pairs of complex modes = a real 2x2 rotation block per pair
    lam = 0.9 * np.exp(1j * rng.uniform(0, np.pi, N))
    bz, cz = rng.standard_normal(N) + 1j * rng.standard_normal(N), rng.standard_normal(N) + 1j * rng.standard_normal(N)
    y = recurrence_diag(np.r_[lam, lam.conj()], np.r_[bz, bz.conj()], np.r_[cz, cz.conj()], x)
    ref = np.zeros(L)
    for n in range(N):   # oracle: explicit complex loop per mode
        h = 0j
        for k in range(L):
            h = lam[n] * h + bz[n] * x[k]
            ref[k] += 2 * (cz[n] * h).real
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, ref, atol=1e-11)


def test_recurrence_diag_bad_input():
    with pytest.raises(ValueError, match=r"bb must have shape \(N,\) = \(2,\)"):
        recurrence_diag(np.ones(2), np.ones(3), np.ones(2), np.ones(4))
    with pytest.raises(ValueError, match=r"x must have shape \(L,\)"):
        recurrence_diag(np.ones(2), np.ones(2), np.ones(2), np.ones((4, 1)))
