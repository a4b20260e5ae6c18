"""Tests for S4's DPLR kernel (ssmbook.s4.kernel_dplr) against matrix powers, entry by entry."""
import numpy as np
import pytest

from ssmbook import s4
from ssmbook.discretize import bilinear


def crandn(rng, *shape):
    return rng.normal(size=shape) + 1j * rng.normal(size=shape)


def bilinear_dense(A, B, delta):
    """The bilinear rule for a complex A, written out (the oracle's discretisation)."""
    N = A.shape[0]
    left = np.eye(N) - (delta / 2) * A
    return np.linalg.solve(left, np.eye(N) + (delta / 2) * A), np.linalg.solve(left, delta * B)


def powers_kernel(Lambda, P, Q, B, C, delta, L):
    """The oracle: build A = diag(Lambda) - P Q*, discretise, take L matrix powers."""
    P2, Q2 = (P[:, None], Q[:, None]) if P.ndim == 1 else (P, Q)
    A = np.diag(Lambda) - P2 @ Q2.conj().T
    Ab, Bb = bilinear_dense(A, B, delta)
    return s4.kernel(Ab, Bb, C, L)


def random_dplr(rng, N, r=None):
    Lambda = -rng.uniform(0.05, 2.0, N) + 1j * rng.normal(size=N) * 4
    shape = (N,) if r is None else (N, r)
    return (Lambda, 0.5 * crandn(rng, *shape), 0.5 * crandn(rng, *shape), crandn(rng, N),
            crandn(rng, N))


@pytest.mark.parametrize("N", [1, 2, 5, 16])
@pytest.mark.parametrize("L", [1, 2, 3, 7, 64, 100, 257])
def test_kernel_dplr_matches_matrix_powers_entrywise(N, L):
    rng = np.random.default_rng(1000 * N + L)
    args = random_dplr(rng, N)
    delta = float(rng.uniform(0.01, 0.5))
    K = s4.kernel_dplr(*args, delta, L)
    K_ref = powers_kernel(*args, delta, L)
    assert K.shape == (L,) and K.dtype == np.complex128
    scale = np.abs(K_ref).max()
    np.testing.assert_allclose(K, K_ref, rtol=0, atol=1e-12 * max(scale, 1.0))


@pytest.mark.parametrize("r", [1, 2, 3])
def test_kernel_dplr_rank_r(r):
    rng = np.random.default_rng(r)
    args = random_dplr(rng, 7, r)
    K = s4.kernel_dplr(*args, 0.2, 33)
    K_ref = powers_kernel(*args, 0.2, 33)
    np.testing.assert_allclose(K, K_ref, rtol=0, atol=1e-12 * max(np.abs(K_ref).max(), 1.0))


@pytest.mark.parametrize("delta", [1e-4, 1.0, 30.0])
def test_kernel_dplr_extreme_steps(delta):
    rng = np.random.default_rng(7)
    args = random_dplr(rng, 5)
    K_ref = powers_kernel(*args, delta, 50)
    np.testing.assert_allclose(s4.kernel_dplr(*args, delta, 50), K_ref, rtol=0,
                               atol=1e-11 * max(np.abs(K_ref).max(), 1.0))


def test_kernel_dplr_real_inputs_and_zero_low_rank_is_diagonal():
    rng = np.random.default_rng(3)
    N, L, delta = 6, 40, 0.1
    Lambda = -rng.uniform(0.1, 1.0, N) + 0j
    B, C = rng.normal(size=N), rng.normal(size=N)   # float64 inputs are accepted
    K = s4.kernel_dplr(Lambda, np.zeros(N), np.zeros(N), B, C, delta, L)
    Ab = (1 + delta * Lambda / 2) / (1 - delta * Lambda / 2)   # diagonal bilinear rule
    Bb = delta * B / (1 - delta * Lambda / 2)
    np.testing.assert_allclose(K, s4.kernel_diag(Ab, Bb, C + 0j, L), rtol=0, atol=1e-13)


@pytest.mark.parametrize("N", [1, 3, 16, 33])
def test_hippo_legs_dplr_is_hippo_in_an_eigenbasis(N):
    Lambda, Pt, Bt, V = s4.hippo_legs_dplr(N)
    A, B = s4.hippo_legs(N)
    np.testing.assert_allclose(V.conj().T @ V, np.eye(N), atol=1e-12)
    np.testing.assert_allclose(V @ (np.diag(Lambda) - np.outer(Pt, Pt.conj())) @ V.conj().T, A,
                               atol=1e-11 * N)
    np.testing.assert_allclose(V @ Bt, B, atol=1e-12 * N)
    np.testing.assert_allclose(Lambda.real, -0.5, atol=1e-12)


@pytest.mark.parametrize("N, L", [(1, 1), (5, 9), (16, 128), (31, 301)])
def test_kernel_dplr_of_hippo_is_the_real_bilinear_kernel(N, L):
    rng = np.random.default_rng(N)
    Lambda, Pt, Bt, V = s4.hippo_legs_dplr(N)
    A, B = s4.hippo_legs(N)
    C = rng.normal(size=N)
    Ab, Bb = bilinear(A, B, 0.05)
    K_ref = s4.kernel(Ab, Bb, C, L)
    K = s4.kernel_dplr(Lambda, Pt, Pt, Bt, C @ V, 0.05, L)
    np.testing.assert_allclose(K.real, K_ref, rtol=0, atol=1e-12 * max(1.0, np.abs(K_ref).max()))
    np.testing.assert_allclose(K.imag, 0.0, atol=1e-12)


def test_kernel_dplr_bad_inputs():
    rng = np.random.default_rng(0)
    Lambda, P, Q, B, C = random_dplr(rng, 4)
    with pytest.raises(ValueError, match="Lambda"):
        s4.kernel_dplr(Lambda.real * -1 + 0j, P, Q, B, C, 0.1, 8)      # unstable: Re > 0
    with pytest.raises(ValueError, match="Lambda"):
        s4.kernel_dplr(np.zeros((2, 2), complex), P, Q, B, C, 0.1, 8)
    with pytest.raises(ValueError, match="P"):
        s4.kernel_dplr(Lambda, P[:3], Q, B, C, 0.1, 8)
    with pytest.raises(ValueError, match="P and Q"):
        s4.kernel_dplr(Lambda, P, np.stack([Q, Q], 1), B, C, 0.1, 8)
    with pytest.raises(ValueError, match="B"):
        s4.kernel_dplr(Lambda, P, Q, B[:2], C, 0.1, 8)
    with pytest.raises(ValueError, match="C"):
        s4.kernel_dplr(Lambda, P, Q, B, C.astype(np.complex64), 0.1, 8)
    for bad in (0.0, -1.0, float("nan"), True, "0.1"):
        with pytest.raises(ValueError, match="delta"):
            s4.kernel_dplr(Lambda, P, Q, B, C, bad, 8)
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="L"):
            s4.kernel_dplr(Lambda, P, Q, B, C, 0.1, bad)
    with pytest.raises(ValueError, match="NumPy"):
        import torch
        s4.kernel_dplr(torch.tensor(Lambda), P, Q, B, C, 0.1, 8)


def test_kernel_dplr_with_c_tilde_given():
    rng = np.random.default_rng(11)
    Lambda, P, Q, B, C = random_dplr(rng, 6)
    delta, L = 0.3, 20
    A = np.diag(Lambda) - np.outer(P, Q.conj())
    Ab, _ = bilinear_dense(A, B, delta)
    Ct = C @ (np.eye(6) - np.linalg.matrix_power(Ab, L))
    np.testing.assert_allclose(s4.kernel_dplr(Lambda, P, Q, B, Ct, delta, L, C_is_tilde=True),
                               s4.kernel_dplr(Lambda, P, Q, B, C, delta, L), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="C_is_tilde"):
        s4.kernel_dplr(Lambda, P, Q, B, C, delta, L, C_is_tilde=1)
