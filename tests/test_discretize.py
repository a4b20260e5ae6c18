"""ssmbook.discretize against independent references: a 50-digit Taylor series (mpmath), scipy's
ODE integrator at rtol 1e-12, closed forms, limits in Δ, and the diagonal / torch fast paths."""
import mpmath
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import torch
from hypothesis import given, settings, strategies as st

from ssmbook import discretize as dz


# ----------------------------------------------------------------------------- oracles
def zoh_series_mp(A, B, delta, dps=50):
    """Slow, independent ZOH: Ab = Σ (ΔA)^k/k!, Bb = Δ Σ (ΔA)^k/(k+1)! B in 50-digit arithmetic."""
    with mpmath.workdps(dps):
        A = np.asarray(A, dtype=np.float64)
        B2 = np.asarray(B, dtype=np.float64).reshape(A.shape[0], -1)
        N = A.shape[0]
        Z = mpmath.matrix(N, N)
        for i in range(N):
            for j in range(N):
                Z[i, j] = mpmath.mpf(float(A[i, j])) * mpmath.mpf(float(delta))
        term = mpmath.eye(N)                    # (ΔA)^k / k!
        Ab = mpmath.eye(N)
        S = mpmath.eye(N)                       # Σ (ΔA)^k / (k+1)!
        tol = mpmath.mpf(10) ** (-dps + 5)
        k = 0
        while True:
            k += 1
            term = term * Z / k
            Ab += term
            S += term / (k + 1)
            if mpmath.mnorm(term, 1) < tol and k > 5:
                break
        Bm = mpmath.matrix(B2.tolist())
        Bb = S * Bm * mpmath.mpf(float(delta))
        Ab = np.array(Ab.tolist(), dtype=np.float64)
        Bb = np.array(Bb.tolist(), dtype=np.float64).reshape(np.shape(B))
    return Ab, Bb


def zoh_ode(A, B, delta, h0, u):
    """h(Δ) for h' = A h + B u (u held constant), integrated by DOP853 at rtol 1e-12."""
    sol = scipy.integrate.solve_ivp(lambda t, h: A @ h + B @ u, (0.0, delta), h0, method="DOP853",
                                    rtol=1e-12, atol=1e-14)
    assert sol.success
    return sol.y[:, -1]


def close(x, ref, tol):
    scale = max(1.0, np.max(np.abs(ref)))
    np.testing.assert_allclose(x, ref, rtol=0, atol=tol * scale)


def random_A(rng, N, scale=1.0):
    return rng.standard_normal((N, N)) * scale / np.sqrt(N)


# ----------------------------------------------------------------------------- zoh: exactness
@pytest.mark.parametrize("N,M", [(1, 1), (2, 1), (3, 2), (5, 1), (7, 3)])
def test_zoh_matches_series_oracle(N, M):
    rng = np.random.default_rng(N * 10 + M)
    A = random_A(rng, N, 1.5)
    B = rng.standard_normal((N, M)) if M > 1 else rng.standard_normal(N)
    delta = float(rng.uniform(0.05, 2.0))
    Ab, Bb = dz.zoh(A, B, delta)
    Ab_ref, Bb_ref = zoh_series_mp(A, B, delta)
    assert Bb.shape == B.shape and Ab.shape == (N, N)
    close(Ab, Ab_ref, 1e-12)
    close(Bb, Bb_ref, 1e-12)


SINGULAR = {
    "zero": np.zeros((3, 3)),
    "integrator_chain": np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]),
    "rank_one": np.outer([1.0, -2.0, 0.5], [0.3, 0.1, -0.7]),
    "mixed": np.array([[-1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [3.0, 1.0, -0.5]]),
}


@pytest.mark.parametrize("name", sorted(SINGULAR))
def test_zoh_exact_for_singular_A(name):
    A = SINGULAR[name]
    assert abs(np.linalg.det(A)) < 1e-12
    B = np.array([0.7, -1.1, 0.4])
    for delta in (1e-3, 0.37, 2.5):
        Ab, Bb = dz.zoh(A, B, delta)
        Ab_ref, Bb_ref = zoh_series_mp(A, B, delta)
        close(Ab, Ab_ref, 1e-12)
        close(Bb, Bb_ref, 1e-12)


def test_zoh_zero_matrix_is_delta_B_and_integrator_chain_closed_form():
    B = np.array([1.0, 2.0, 3.0])
    Ab, Bb = dz.zoh(np.zeros((3, 3)), B, 0.25)
    np.testing.assert_array_equal(Ab, np.eye(3))
    np.testing.assert_allclose(Bb, 0.25 * B, rtol=1e-15)
    # triple integrator with input into the last state: Bb = (Δ³/6, Δ²/2, Δ)
    d = 0.8
    _, Bb = dz.zoh(SINGULAR["integrator_chain"], np.array([0.0, 0.0, 1.0]), d)
    np.testing.assert_allclose(Bb, [d**3 / 6, d**2 / 2, d], rtol=1e-14)


@pytest.mark.parametrize("N", [1, 2, 3, 6])
def test_zoh_matches_ode_integration(N):
    rng = np.random.default_rng(100 + N)
    A = random_A(rng, N)
    if N == 3:
        A[:, 0] = 0.0  # singular
    B = rng.standard_normal((N, 2))
    h0, u = rng.standard_normal(N), rng.standard_normal(2)
    delta = 0.6
    Ab, Bb = dz.zoh(A, B, delta)
    close(Ab @ h0 + Bb @ u, zoh_ode(A, B, delta, h0, u), 1e-10)


def test_zoh_matches_closed_form_when_invertible():
    rng = np.random.default_rng(7)
    A = random_A(rng, 4) - 2 * np.eye(4)
    B = rng.standard_normal(4)
    for delta in (0.01, 0.5, 3.0):
        Ab, Bb = dz.zoh(A, B, delta)
        E = scipy.linalg.expm(delta * A)
        close(Ab, E, 1e-13)
        close(Bb, np.linalg.solve(A, (E - np.eye(4)) @ B), 1e-12)


def test_zoh_small_and_large_delta_limits():
    rng = np.random.default_rng(3)
    A = -np.diag([0.5, 1.0, 2.0]) + 0.1 * random_A(rng, 3)
    B = rng.standard_normal(3)
    d = 1e-9
    Ab, Bb = dz.zoh(A, B, d)
    np.testing.assert_allclose((Ab - np.eye(3)) / d, A, atol=1e-6)
    np.testing.assert_allclose(Bb / d, B, rtol=1e-8)
    # Δ → ∞ for a stable A: the state is forgotten and Bb → -A⁻¹B (the steady state of a held input)
    Ab, Bb = dz.zoh(A, B, 200.0)
    assert np.max(np.abs(Ab)) < 1e-12   # exact value ~1e-35; roundoff ~1e-16
    np.testing.assert_allclose(Bb, -np.linalg.solve(A, B), rtol=1e-10)


@settings(max_examples=25, deadline=None)
@given(N=st.integers(1, 5), seed=st.integers(0, 10**6), delta=st.floats(1e-4, 5.0))
def test_zoh_random_stable_A(N, seed, delta):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((N, N))
    A = -(G @ G.T) / N - 0.1 * np.eye(N) + 0.5 * (G - G.T)   # negative-definite symmetric part
    B = rng.standard_normal(N)
    Ab, Bb = dz.zoh(A, B, delta)
    Ab_ref, Bb_ref = zoh_series_mp(A, B, delta)
    close(Ab, Ab_ref, 1e-12)
    close(Bb, Bb_ref, 1e-12)
    assert np.max(np.abs(np.linalg.eigvals(Ab))) < 1.0
    assert np.max(np.abs(np.linalg.eigvals(dz.bilinear(A, B, delta)[0]))) < 1.0


# ----------------------------------------------------------------------------- euler / bilinear
def test_euler_and_bilinear_formulas():
    rng = np.random.default_rng(11)
    A, B, d = random_A(rng, 3), rng.standard_normal((3, 2)), 0.3
    Ab, Bb = dz.euler(A, B, d)
    np.testing.assert_allclose(Ab, np.eye(3) + d * A, rtol=1e-15)
    np.testing.assert_allclose(Bb, d * B, rtol=1e-15)
    Ab, Bb = dz.bilinear(A, B, d)
    left = np.eye(3) - d / 2 * A
    np.testing.assert_allclose(left @ Ab, np.eye(3) + d / 2 * A, atol=1e-14)
    np.testing.assert_allclose(left @ Bb, d * B, atol=1e-14)


def test_local_orders_of_accuracy():
    """One step: ‖Ab − exp(ΔA)‖ shrinks like Δ² (Euler) and Δ³ (bilinear)."""
    rng = np.random.default_rng(5)
    A, B = random_A(rng, 4), rng.standard_normal(4)
    deltas = np.array([0.08, 0.04, 0.02, 0.01])
    slopes = {}
    for name, rule in (("euler", dz.euler), ("bilinear", dz.bilinear)):
        errs = [np.linalg.norm(rule(A, B, d)[0] - scipy.linalg.expm(d * A)) for d in deltas]
        slopes[name] = np.polyfit(np.log(deltas), np.log(errs), 1)[0]
    assert 1.9 < slopes["euler"] < 2.1
    assert 2.9 < slopes["bilinear"] < 3.1


def test_euler_unstable_for_large_delta_bilinear_not():
    A, B = -np.diag([1.0, 10.0]), np.ones(2)
    assert np.max(np.abs(np.linalg.eigvals(dz.euler(A, B, 0.3)[0]))) > 1.0    # |1 − 10·0.3| = 2
    assert np.max(np.abs(np.linalg.eigvals(dz.bilinear(A, B, 0.3)[0]))) < 1.0
    assert np.max(np.abs(np.linalg.eigvals(dz.zoh(A, B, 0.3)[0]))) < 1.0


def test_bilinear_singular_left_matrix_raises():
    with pytest.raises(ValueError, match="singular"):
        dz.bilinear(np.array([[2.0]]), np.array([1.0]), 1.0)   # 1 − Δa/2 = 0


# ----------------------------------------------------------------------------- diagonal paths
@pytest.mark.parametrize("N,M", [(1, None), (3, None), (5, 2)])
def test_diag_paths_match_full_matrices(N, M):
    rng = np.random.default_rng(N)
    a = -rng.uniform(0.1, 3.0, N)
    a[0] = 0.0                     # a zero eigenvalue on the diagonal path as well
    B = rng.standard_normal(N) if M is None else rng.standard_normal((N, M))
    d = 0.45
    for diag_rule, full_rule in ((dz.zoh_diag, dz.zoh), (dz.euler_diag, dz.euler),
                                 (dz.bilinear_diag, dz.bilinear)):
        ab, bb = diag_rule(a, B, d)
        Ab, Bb = full_rule(np.diag(a), B, d)
        np.testing.assert_allclose(ab, np.diag(Ab), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(bb, Bb, rtol=1e-13, atol=1e-15)


def _zoh_scalar_mp(a, delta):
    with mpmath.workdps(40):
        z = mpmath.mpc(a.real, a.imag) * mpmath.mpf(delta)
        Ab = mpmath.exp(z)
        phi = mpmath.mpf(1) if z == 0 else mpmath.expm1(z) / z
        return complex(Ab), complex(mpmath.mpf(delta) * phi)


@pytest.mark.parametrize("a", [1e-14, -3e-9, 2e-6 + 1e-7j, -0.5 + 3.14159j, -1e-12 + 1e-12j, 0j, -40.0])
def test_zoh_diag_accurate_for_tiny_and_complex_a(a):
    d = 0.3
    ab, bb = dz.zoh_diag(np.array([a]), np.array([1.0]), d)
    ab_ref, bb_ref = _zoh_scalar_mp(complex(a), d)
    assert abs(ab[0] - ab_ref) <= 1e-15 * max(1, abs(ab_ref))
    assert abs(bb[0] - bb_ref) <= 2e-16 * abs(bb_ref) * 4


def test_phi1_naive_formula_loses_digits_ours_does_not():
    z = np.array([1e-13])
    naive = (np.exp(z) - 1) / z
    assert abs(naive[0] - 1.0) > 1e-5              # catastrophic cancellation in e^z - 1
    assert abs(dz.phi1(z)[0] - (1 + 0.5e-13)) < 1e-16


# ----------------------------------------------------------------------------- torch versions
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("shape", [(1,), (3, 5), (2, 3, 4)])
def test_zoh_diag_torch_matches_numpy(dtype, shape):
    g = torch.Generator().manual_seed(sum(shape))
    a = -torch.rand(shape, generator=g, dtype=torch.float64) * 2
    if dtype.is_complex:
        a = torch.complex(a, torch.randn(shape, generator=g, dtype=torch.float64) * 3)
    a.view(-1)[0] = 0
    b = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    delta = torch.rand(shape[:-1], generator=g, dtype=torch.float64) + 0.05
    for trule, nrule in ((dz.zoh_diag_torch, dz.zoh_diag), (dz.bilinear_diag_torch, dz.bilinear_diag)):
        Ab, Bb = trule(a, b, delta)
        assert Ab.shape == shape and Bb.shape == shape and Ab.dtype == dtype
        an, bn = a.reshape(-1, shape[-1]).numpy(), b.reshape(-1, shape[-1]).numpy()
        dn = delta.reshape(-1).numpy() if delta.ndim else [delta.item()] * an.shape[0]
        for row in range(an.shape[0]):
            ab, bb = nrule(an[row], bn[row], float(dn[row]))
            np.testing.assert_allclose(Ab.reshape(-1, shape[-1])[row].numpy(), ab, rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(Bb.reshape(-1, shape[-1])[row].numpy(), bb, rtol=1e-13, atol=1e-15)


def test_zoh_diag_torch_scalar_delta_and_gradients():
    a = torch.tensor([[-0.5, -1e-10, -2.0]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[1.0, 2.0, -1.0]], dtype=torch.float64, requires_grad=True)
    Ab, Bb = dz.zoh_diag_torch(a, b, 0.1)
    ab, bb = dz.zoh_diag(a.detach().numpy()[0], b.detach().numpy()[0], 0.1)
    np.testing.assert_allclose(Bb.detach().numpy()[0], bb, rtol=1e-14)
    delta = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, d: dz.zoh_diag_torch(a, b, d), (a, b, delta))
    # dBb/dΔ = exp(Δa) b
    Ab, Bb = dz.zoh_diag_torch(a, b, delta)
    (g,) = torch.autograd.grad(Bb.sum(), delta)
    torch.testing.assert_close(g, (torch.exp(0.3 * a) * b).sum(-1).detach())


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("fn", [dz.zoh, dz.bilinear, dz.euler])
def test_full_rules_reject_bad_input(fn):
    with pytest.raises(ValueError, match=r"A must be a square matrix of shape \(N, N\)"):
        fn(np.ones((2, 3)), np.ones(2), 0.1)
    with pytest.raises(ValueError, match=r"B must have shape \(N,\) or \(N, M\) with N = 2"):
        fn(np.eye(2), np.ones(3), 0.1)
    with pytest.raises(ValueError, match=r"B must have shape"):
        fn(np.eye(2), np.ones((2, 1, 1)), 0.1)
    with pytest.raises(ValueError, match="delta must be a positive finite scalar"):
        fn(np.eye(2), np.ones(2), 0.0)
    with pytest.raises(ValueError, match="delta must be a positive finite scalar"):
        fn(np.eye(2), np.ones(2), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match=r"A must be a real \(float64\) array"):
        fn(np.eye(2) * 1j, np.ones(2), 0.1)
    with pytest.raises(ValueError, match="A must contain only finite values"):
        fn(np.array([[np.nan]]), np.ones(1), 0.1)


def test_diag_rules_reject_bad_input():
    with pytest.raises(ValueError, match=r"a must have shape \(N,\)"):
        dz.zoh_diag(np.eye(2), np.ones(2), 0.1)
    with pytest.raises(ValueError, match=r"B must have shape \(N,\) or \(N, M\) with N = 3"):
        dz.zoh_diag(np.ones(3), np.ones(2), 0.1)
    with pytest.raises(ValueError, match="delta must be a positive finite scalar"):
        dz.euler_diag(np.ones(3), np.ones(3), -1.0)


def test_torch_rules_reject_bad_input():
    a = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"b must have shape a.shape = \(2, 3\)"):
        dz.zoh_diag_torch(a, torch.zeros(3), 0.1)
    with pytest.raises(ValueError, match=r"delta must be 0-dim or have shape a.shape\[:-1\] = \(2,\)"):
        dz.zoh_diag_torch(a, torch.zeros(2, 3), torch.ones(3))
    with pytest.raises(ValueError, match="delta must be a positive finite scalar"):
        dz.bilinear_diag_torch(a, torch.zeros(2, 3), 0.0)
    with pytest.raises(ValueError, match=r"a must be a torch.Tensor of shape \(\.\.\., N\)"):
        dz.zoh_diag_torch(np.zeros(3), torch.zeros(3), 0.1)


def test_torch_rules_reject_bad_scalar_delta():
    """A 0-dim delta tensor gets the same dtype check as a per-row one; a float delta must be finite."""
    a, b = -torch.ones(2, 3, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64)
    for bad in (torch.tensor(0.1 + 0.2j), torch.tensor(1)):
        with pytest.raises(ValueError, match="delta must be a floating-point tensor"):
            dz.zoh_diag_torch(a, b, bad)
        with pytest.raises(ValueError, match="delta must be a floating-point tensor"):
            dz.bilinear_diag_torch(a, b, bad)
    with pytest.raises(ValueError, match="delta must be a positive finite scalar"):
        dz.zoh_diag_torch(a, b, float("inf"))
    Ab, Bb = dz.zoh_diag_torch(a, b, torch.tensor(0.5, dtype=torch.float64))    # a valid 0-dim delta
    torch.testing.assert_close(Ab, torch.full((2, 3), np.exp(-0.5), dtype=torch.float64))
    torch.testing.assert_close(Bb, torch.full((2, 3), 1 - np.exp(-0.5), dtype=torch.float64))
