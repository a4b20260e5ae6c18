"""ssmbook.ssm: impulse response, simulation (exact ZOH steps vs ODE integration), stability,
the three views (continuous, recurrent, convolutional) agreeing, the transfer function against
the Laplace transform of the impulse response, and the Kalman filter against batch Gaussian
conditioning."""
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
from hypothesis import given, settings, strategies as st

from ssmbook import discretize as dz
from ssmbook.ssm import (ContinuousSSM, causal_convolve, diagonal_ssm, is_stable, kalman_filter, kernel,
                         recurrence, recurrence_diag, spring_mass_damper, transfer_function)


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


def random_stable(rng, N, M=1, P=1):
    V = np.eye(N) + 0.3 * rng.standard_normal((N, N))
    rates = rng.uniform(0.5, 2.0, N)
    A = V @ np.diag(-rates) @ np.linalg.inv(V)
    B = rng.standard_normal(N) if M == 1 else rng.standard_normal((N, M))
    C = rng.standard_normal(N) if P == 1 else rng.standard_normal((P, N))
    return ContinuousSSM(A, B, C)


@pytest.mark.parametrize("N", [1, 2, 3, 5])
def test_transfer_function_is_laplace_transform_of_impulse_response(N):
    rng = np.random.default_rng(N)
    ssm = random_stable(rng, N)
    for s in (0.3, 1.7, 0.5 + 2.0j):
        K = lambda t: ssm.impulse_response(np.array([t]))[0]
        re = scipy.integrate.quad(lambda t: K(t) * np.exp(-s * t).real, 0, 60, limit=400)[0]
        im = scipy.integrate.quad(lambda t: K(t) * np.exp(-s * t).imag, 0, 60, limit=400)[0]
        np.testing.assert_allclose(transfer_function(ssm, s), re + 1j * im, atol=1e-8)


def test_transfer_function_closed_form_spring_and_shapes():
    # m p'' + c p' + k p = x  =>  H(s) = 1 / (m s² + c s + k)
    spring = spring_mass_damper(m=2.0, k=3.0, c=0.5)
    s = np.array([0.1, 1j, -0.2 + 3j, 5.0])
    np.testing.assert_allclose(transfer_function(spring, s), 1 / (2 * s**2 + 0.5 * s + 3), rtol=1e-13)
    assert np.ndim(transfer_function(spring, 1.0)) == 0
    mimo = random_stable(np.random.default_rng(0), 3, M=2, P=4)
    H = transfer_function(mimo, np.array([1.0, 2.0j, 3.0]))
    assert H.shape == (3, 4, 2)
    np.testing.assert_allclose(H[1], mimo.C @ np.linalg.solve(2j * np.eye(3) - mimo.A, mimo.B))


def test_transfer_function_errors():
    spring = spring_mass_damper(c=0.0)           # poles at ±2i
    with pytest.raises(ValueError, match="eigenvalue"):
        transfer_function(spring, 2j)
    with pytest.raises(TypeError, match="ContinuousSSM"):
        transfer_function(np.eye(2), 1.0)
    with pytest.raises(ValueError, match="1-D"):
        transfer_function(spring, np.ones((2, 2)))


def batch_gaussian_filter(F, H, Q, R, obs, m0, P0):
    """p(z_t | o_{1:t}) by conditioning the joint Gaussian of (z_1..z_T, o_1..o_T) directly."""
    T, p = obs.shape
    n = F.shape[0]
    # z_t = F^t z_0 + Σ_{s<=t} F^{t-s} w_s with z_0 ~ N(m0, P0): build the map from (z_0, w_1..w_T)
    G = np.zeros((T * n, (T + 1) * n))
    for t in range(1, T + 1):
        for s in range(0, t + 1):
            G[(t - 1) * n:t * n, s * n:(s + 1) * n] = np.linalg.matrix_power(F, t - s)
    noise_cov = np.zeros(((T + 1) * n, (T + 1) * n))
    noise_cov[:n, :n] = P0
    for s in range(1, T + 1):
        noise_cov[s * n:(s + 1) * n, s * n:(s + 1) * n] = Q
    mean_z = G[:, :n] @ m0
    cov_z = G @ noise_cov @ G.T
    Hb = np.kron(np.eye(T), H)
    cov_o = Hb @ cov_z @ Hb.T + np.kron(np.eye(T), R)
    means, covs = [], []
    for t in range(1, T + 1):
        zi, oi = slice((t - 1) * n, t * n), slice(0, t * p)
        gain = np.linalg.solve(cov_o[oi, oi], (cov_z @ Hb.T)[zi, oi].T).T
        means.append(mean_z[zi] + gain @ (obs[:t].ravel() - (Hb @ mean_z)[oi]))
        covs.append(cov_z[zi, zi] - gain @ (Hb @ cov_z)[oi, zi])
    loglik = -0.5 * (T * p * np.log(2 * np.pi) + np.linalg.slogdet(cov_o)[1]
                     + (obs.ravel() - Hb @ mean_z) @ np.linalg.solve(cov_o, obs.ravel() - Hb @ mean_z))
    return np.array(means), np.array(covs), loglik


@pytest.mark.parametrize("n,p,T", [(1, 1, 1), (1, 1, 7), (2, 1, 5), (3, 2, 6)])
def test_kalman_filter_matches_batch_gaussian_conditioning(n, p, T):
    rng = np.random.default_rng(10 * n + p + T)
    F = 0.8 * np.eye(n) + 0.2 * rng.standard_normal((n, n))
    H = rng.standard_normal((p, n))
    G = rng.standard_normal((n, n))
    Q = G @ G.T / n + 0.1 * np.eye(n)
    R = np.diag(rng.uniform(0.2, 1.0, p))
    m0, P0 = rng.standard_normal(n), np.eye(n) * 0.5
    obs = rng.standard_normal((T, p))
    means, covs, gains, ll = kalman_filter(F, H, Q, R, obs, m0, P0)
    ref_m, ref_P, ref_ll = batch_gaussian_filter(F, H, Q, R, obs, m0, P0)
    np.testing.assert_allclose(means, ref_m, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(covs, ref_P, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(ll, ref_ll, rtol=1e-11)
    # the mean is the linear recurrence m_t = (I - K_t H) F m_{t-1} + K_t o_t
    prev = m0
    for t in range(T):
        np.testing.assert_allclose(means[t], (np.eye(n) - gains[t] @ H) @ F @ prev + gains[t] @ obs[t],
                                   rtol=1e-12, atol=1e-12)
        prev = means[t]


def test_kalman_filter_errors():
    eye = np.eye(2)
    with pytest.raises(ValueError, match="F must"):
        kalman_filter(np.ones((2, 3)), np.ones((1, 2)), eye, np.eye(1), np.ones((3, 1)), np.zeros(2), eye)
    with pytest.raises(ValueError, match="R must"):
        kalman_filter(eye, np.ones((1, 2)), eye, eye, np.ones((3, 1)), np.zeros(2), eye)
    with pytest.raises(ValueError, match="obs must"):
        kalman_filter(eye, np.ones((1, 2)), eye, np.eye(1), np.ones((3, 2)), np.zeros(2), eye)
