"""Discretization of a continuous state-space model  h'(t) = A h(t) + B x(t).

Every function returns the pair ``(Ab, Bb)`` of the discrete recurrence

    h_k = Ab h_{k-1} + Bb x_k,

obtained by one of three rules with step size ``delta`` (Δ):

``zoh``       zero-order hold (exact when the input is held constant over each step):
              Ab = exp(ΔA),  Bb = (∫_0^Δ exp(sA) ds) B  [= A⁻¹(exp(ΔA) − I) B when A is invertible].
              Computed through the exponential of one augmented block matrix (Van Loan, 1978),
              so it is exact also for singular A (e.g. A = 0 gives Bb = ΔB).
``bilinear``  trapezoidal rule / Tustin: Ab = (I − Δ/2 A)⁻¹ (I + Δ/2 A),  Bb = (I − Δ/2 A)⁻¹ ΔB.
``euler``     forward Euler: Ab = I + ΔA,  Bb = ΔB.

Full-matrix functions (numpy, float64)
    ``zoh(A, B, delta)``, ``bilinear(A, B, delta)``, ``euler(A, B, delta)``:
    A of shape (N, N); B of shape (N,) or (N, M) (the result Bb has B's shape);
    delta a positive finite scalar.

Diagonal fast paths (numpy, float64 or complex128), A = diag(a)
    ``zoh_diag(a, B, delta)``, ``bilinear_diag(a, B, delta)``, ``euler_diag(a, B, delta)``:
    a of shape (N,) (real or complex), B of shape (N,) or (N, M), delta a positive scalar.
    ``zoh_diag`` uses Bb = Δ·φ₁(Δa)·B with φ₁(z) = (eᶻ − 1)/z evaluated through expm1,
    accurate for tiny |aΔ| and equal to ΔB at a = 0.

Diagonal torch versions (used by chapter 4, S4/S4D, and chapter 5, Mamba)
    ``zoh_diag_torch(a, b, delta)`` and ``bilinear_diag_torch(a, b, delta)``:
    a of shape (..., N) (real or complex tensor), b a tensor of the same shape as a,
    delta either a Python float / 0-dim tensor (one step for everything) or a tensor of shape
    ``a.shape[:-1]`` (one step per row, e.g. per channel).  Returns tensors of a's shape on a's
    device; differentiable in a, b and delta.
"""
from __future__ import annotations

import numbers

import numpy as np
import scipy.linalg

__all__ = [
    "zoh", "bilinear", "euler",
    "zoh_diag", "bilinear_diag", "euler_diag",
    "zoh_diag_torch", "bilinear_diag_torch",
    "phi1",
]


# ----------------------------------------------------------------------------- validation
def _check_delta(delta) -> float:
    if isinstance(delta, np.ndarray) and delta.ndim == 0:
        delta = delta.item()
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real):
        raise ValueError(f"delta must be a positive real scalar, got {type(delta).__name__}")
    delta = float(delta)
    if not np.isfinite(delta) or delta <= 0:
        raise ValueError(f"delta must be a positive finite scalar, got {delta}")
    return delta


def _as_float_array(x, name: str, allow_complex: bool = False) -> np.ndarray:
    arr = np.asarray(x)
    kinds = "biuf" + ("c" if allow_complex else "")
    if arr.dtype.kind not in kinds:
        expected = "a real or complex" if allow_complex else "a real (float64)"
        raise ValueError(f"{name} must be {expected} array, got dtype {arr.dtype}")
    if arr.dtype.kind == "c":
        arr = arr.astype(np.complex128)
    else:
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values")
    return arr


def _check_AB(A, B):
    A = _as_float_array(A, "A")
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise ValueError(f"A must be a square matrix of shape (N, N), got shape {A.shape}")
    N = A.shape[0]
    B = _as_float_array(B, "B")
    if B.ndim not in (1, 2) or B.shape[0] != N:
        raise ValueError(f"B must have shape (N,) or (N, M) with N = {N}, got shape {B.shape}")
    return A, B


def _check_aB(a, B):
    a = _as_float_array(a, "a", allow_complex=True)
    if a.ndim != 1 or a.shape[0] == 0:
        raise ValueError(f"a (the diagonal of A) must have shape (N,), got shape {a.shape}")
    N = a.shape[0]
    B = _as_float_array(B, "B", allow_complex=True)
    if B.ndim not in (1, 2) or B.shape[0] != N:
        raise ValueError(f"B must have shape (N,) or (N, M) with N = {N}, got shape {B.shape}")
    return a, B


# ----------------------------------------------------------------------------- full matrices
def zoh(A, B, delta):
    """Zero-order-hold discretization: ``Ab = exp(ΔA)``, ``Bb = ∫_0^Δ exp(sA) ds B``.

    Exact for any square A, singular included: both blocks are read off one matrix exponential,

        exp(Δ [[A, B], [0, 0]]) = [[exp(ΔA), ∫_0^Δ exp(sA) ds B], [0, I]]

    (Van Loan 1978).  When A is invertible, ``Bb = A⁻¹ (exp(ΔA) − I) B``.

    A: (N, N) float64; B: (N,) or (N, M) float64; delta: positive scalar.
    Returns ``(Ab, Bb)`` with Ab (N, N) and Bb of B's shape.
    """
    A, B = _check_AB(A, B)
    delta = _check_delta(delta)
    N = A.shape[0]
    B2 = B.reshape(N, -1)
    M = B2.shape[1]
    big = np.zeros((N + M, N + M))
    big[:N, :N] = A * delta
    big[:N, N:] = B2 * delta
    E = scipy.linalg.expm(big)
    return E[:N, :N].copy(), E[:N, N:].reshape(B.shape).copy()


def _bilinear_solve(A, delta):
    N = A.shape[0]
    left = np.eye(N) - (delta / 2) * A
    if np.linalg.cond(left) > 1e14:
        raise ValueError(
            f"bilinear: I - delta/2 * A is singular for delta = {delta} (A has the eigenvalue 2/delta)")
    return left


def bilinear(A, B, delta):
    """Bilinear (Tustin, trapezoidal) discretization.

    ``Ab = (I − Δ/2 A)⁻¹ (I + Δ/2 A)``, ``Bb = (I − Δ/2 A)⁻¹ Δ B``.  The scalar map
    ``z ↦ (1 + z/2)/(1 − z/2)`` is the [1/1] Padé approximant of ``eᶻ``: second order, and it maps
    the left half-plane onto the unit disk (stable for every Δ > 0).

    A: (N, N) float64; B: (N,) or (N, M) float64; delta: positive scalar.
    """
    A, B = _check_AB(A, B)
    delta = _check_delta(delta)
    N = A.shape[0]
    left = _bilinear_solve(A, delta)
    Ab = np.linalg.solve(left, np.eye(N) + (delta / 2) * A)
    Bb = np.linalg.solve(left, delta * B)
    return Ab, Bb


def euler(A, B, delta):
    """Forward-Euler discretization: ``Ab = I + ΔA``, ``Bb = ΔB`` (first order; the first-order
    Taylor polynomial of ``exp(ΔA)``; stable only when every ``|1 + Δλ| < 1``).

    A: (N, N) float64; B: (N,) or (N, M) float64; delta: positive scalar.
    """
    A, B = _check_AB(A, B)
    delta = _check_delta(delta)
    return np.eye(A.shape[0]) + delta * A, delta * B


# ----------------------------------------------------------------------------- diagonal, numpy
def phi1(z):
    """φ₁(z) = (eᶻ − 1)/z, elementwise, with φ₁(0) = 1; accurate for tiny |z| (real or complex).

    For complex z, ``eᶻ − 1`` is computed as ``expm1(x)cos(y) − 2 sin²(y/2) + i eˣ sin(y)``
    (z = x + iy), which has no cancellation for small |z|.
    """
    z = np.asarray(z)
    if z.dtype.kind == "c":
        x, y = z.real, z.imag
        num = (np.expm1(x) * np.cos(y) - 2.0 * np.sin(y / 2) ** 2) + 1j * (np.exp(x) * np.sin(y))
    else:
        z = z.astype(np.float64)
        num = np.expm1(z)
    zero = z == 0
    safe = np.where(zero, 1.0, z)
    return np.where(zero, 1.0, num / safe)


def zoh_diag(a, B, delta):
    """ZOH for a diagonal ``A = diag(a)``: ``Ab = exp(Δa)`` (shape (N,)), ``Bb = Δ φ₁(Δa) B``.

    a: (N,) real or complex; B: (N,) or (N, M); delta: positive scalar.  Same result as
    ``zoh(np.diag(a), B, delta)`` (with Ab returned as its diagonal), in O(N·M) work and exact at
    ``a = 0`` (Bb = ΔB) and for tiny ``|aΔ|``.
    """
    a, B = _check_aB(a, B)
    delta = _check_delta(delta)
    z = delta * a
    scale = delta * phi1(z)
    Bb = scale * B if B.ndim == 1 else scale[:, None] * B
    return np.exp(z), Bb


def bilinear_diag(a, B, delta):
    """Bilinear rule for ``A = diag(a)``: ``Ab = (1 + Δa/2)/(1 − Δa/2)``, ``Bb = ΔB/(1 − Δa/2)``."""
    a, B = _check_aB(a, B)
    delta = _check_delta(delta)
    den = 1.0 - delta * a / 2
    if np.any(np.abs(den) < 1e-14):
        raise ValueError(f"bilinear_diag: 1 - delta*a/2 vanishes for delta = {delta}")
    Bb = delta * B / (den if B.ndim == 1 else den[:, None])
    return (1.0 + delta * a / 2) / den, Bb


def euler_diag(a, B, delta):
    """Forward Euler for ``A = diag(a)``: ``Ab = 1 + Δa`` (shape (N,)), ``Bb = ΔB``."""
    a, B = _check_aB(a, B)
    delta = _check_delta(delta)
    return 1.0 + delta * a, delta * B


# ----------------------------------------------------------------------------- diagonal, torch
def _check_torch(a, b, delta, fn):
    import torch

    if not isinstance(a, torch.Tensor) or a.ndim < 1:
        raise ValueError(f"{fn}: a must be a tensor of shape (..., N), got {type(a).__name__}"
                         + (f" of shape {tuple(a.shape)}" if isinstance(a, torch.Tensor) else ""))
    if not (a.dtype.is_floating_point or a.dtype.is_complex):
        raise ValueError(f"{fn}: a must be a floating or complex tensor, got dtype {a.dtype}")
    if not isinstance(b, torch.Tensor) or b.shape != a.shape:
        shape = tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
        raise ValueError(f"{fn}: b must be a tensor of a's shape {tuple(a.shape)}, got {shape}")
    if isinstance(delta, numbers.Real) and not isinstance(delta, bool):
        if not (delta > 0 and np.isfinite(delta)):
            raise ValueError(f"{fn}: delta must be positive and finite, got {delta}")
        return delta
    if not isinstance(delta, torch.Tensor):
        raise ValueError(f"{fn}: delta must be a positive float or a tensor of shape "
                         f"{tuple(a.shape[:-1])}, got {type(delta).__name__}")
    if delta.is_complex() or not delta.dtype.is_floating_point:     # also for a 0-dim tensor
        raise ValueError(f"{fn}: delta must be a real floating tensor, got dtype {delta.dtype}")
    if delta.ndim == 0:
        return delta
    if delta.shape != a.shape[:-1]:
        raise ValueError(f"{fn}: delta must be 0-dim or have shape a.shape[:-1] = "
                         f"{tuple(a.shape[:-1])}, got {tuple(delta.shape)}")
    return delta[..., None]


def zoh_diag_torch(a, b, delta):
    """ZOH for diagonal A in torch: ``Ab = exp(Δa)``, ``Bb = Δ φ₁(Δa) b = (exp(Δa) − 1)/a · b``.

    a: (..., N) real or complex tensor (the diagonal of A; e.g. (H, N) for H channels);
    b: tensor of a's shape; delta: positive float, 0-dim tensor, or tensor of shape a.shape[:-1].
    Returns ``(Ab, Bb)``, both of a's shape.  Uses ``torch.expm1``, so it is accurate for tiny
    ``|Δa|`` and equals ``Δ b`` where ``a = 0``.  Differentiable; respects a's device.
    """
    import torch

    d = _check_torch(a, b, delta, "zoh_diag_torch")
    z = d * a
    zero = z == 0
    safe = torch.where(zero, torch.ones_like(z), z)
    phi = torch.where(zero, torch.ones_like(z), torch.expm1(safe) / safe)
    return torch.exp(z), d * phi * b


def bilinear_diag_torch(a, b, delta):
    """Bilinear rule for diagonal A in torch: ``Ab = (1 + Δa/2)/(1 − Δa/2)``, ``Bb = Δb/(1 − Δa/2)``.

    Same shapes as :func:`zoh_diag_torch`.
    """
    d = _check_torch(a, b, delta, "bilinear_diag_torch")
    den = 1 - d * a / 2
    return (1 + d * a / 2) / den, d * b / den
