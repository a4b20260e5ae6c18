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

import numpy as np
import scipy.linalg

from . import _checks

__all__ = [
    "zoh", "bilinear", "euler",
    "zoh_diag", "bilinear_diag", "euler_diag",
    "zoh_diag_torch", "bilinear_diag_torch",
    "phi1",
]


# ----------------------------------------------------------------------------- validation
def _check_AB(A, B):
    """A square ``A (N, N)`` and an input matrix ``B (N,)`` or ``(N, M)``, float64."""
    A = _checks.square_matrix(A, "A")
    return A, _checks.vector_or_matrix(B, "B", A.shape[0])


def _check_aB(a, B):
    """The diagonal ``a (N,)`` of A and an input matrix ``B (N,)`` or ``(N, M)``, real or complex."""
    a = _checks.array(a, "a", ndim=1, shape_doc="(N,) (the diagonal of A)", complex_ok=True)
    return a, _checks.vector_or_matrix(B, "B", a.shape[0], complex_ok=True)


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
    delta = _checks.positive_scalar(delta, "delta")
    N = A.shape[0]
    B2 = B.reshape(N, -1)
    M = B2.shape[1]
    big = np.zeros((N + M, N + M))
    big[:N, :N] = A * delta
    big[:N, N:] = B2 * delta
    if _triangular_with_close_eigenvalues(big):
        # scipy's expm forms the superdiagonal of a triangular matrix from differences of
        # exponentials, which cancel when two eigenvalues nearly coincide (a tiny nonzero a next
        # to the zero block gave Bb = 0 instead of delta * B).  A 2x2 rotation generator added on
        # the diagonal leaves both blocks unchanged and sends expm down its general Padé path.
        big = np.pad(big, ((0, 2), (0, 2)))
        big[-2, -1], big[-1, -2] = 1.0, -1.0
    with np.errstate(over="ignore", invalid="ignore"):
        E = scipy.linalg.expm(big)[:N + M, :N + M]
    if not np.all(np.isfinite(E)):
        raise ValueError(
            f"zoh: exp(delta * A) overflows float64 for delta = {delta} (the largest real part of "
            f"delta * eig(A) is {np.max(np.linalg.eigvals(A).real) * delta:.4g}; exp overflows "
            "above ~709): use a smaller delta or a stable A")
    return E[:N, :N].copy(), E[:N, N:].reshape(B.shape).copy()


def _triangular_with_close_eigenvalues(X, gap: float = 1e-3) -> bool:
    """True when ``X`` is triangular and two distinct diagonal entries lie within ``gap`` (relative)."""
    if np.any(np.tril(X, -1)) and np.any(np.triu(X, 1)):
        return False
    d = np.unique(np.diag(X))
    if d.size < 2:
        return False
    scale = np.maximum(1.0, np.maximum(np.abs(d[1:]), np.abs(d[:-1])))
    return bool(np.any(np.diff(d) <= gap * scale))                # sorted: neighbours suffice


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
    delta = _checks.positive_scalar(delta, "delta")
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
    delta = _checks.positive_scalar(delta, "delta")
    return np.eye(A.shape[0]) + delta * A, delta * B


# ----------------------------------------------------------------------------- diagonal, numpy
def phi1(z):
    """φ₁(z) = (eᶻ − 1)/z, elementwise, with φ₁(0) = 1; accurate for tiny |z| (real or complex).

    For complex z, ``eᶻ − 1`` is computed as ``expm1(x)cos(y) − 2 sin²(y/2) + i eˣ sin(y)``
    (z = x + iy), which has no cancellation for small |z|.
    """
    z = _checks.array(z, "z", complex_ok=True, finite=False, min_size=0)
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
    delta = _checks.positive_scalar(delta, "delta")
    z = delta * a
    scale = delta * phi1(z)
    Bb = scale * B if B.ndim == 1 else scale[:, None] * B
    return np.exp(z), Bb


def bilinear_diag(a, B, delta):
    """Bilinear rule for ``A = diag(a)``: ``Ab = (1 + Δa/2)/(1 − Δa/2)``, ``Bb = ΔB/(1 − Δa/2)``."""
    a, B = _check_aB(a, B)
    delta = _checks.positive_scalar(delta, "delta")
    den = 1.0 - delta * a / 2
    if np.any(np.abs(den) < 1e-14):
        raise ValueError(f"bilinear_diag: 1 - delta*a/2 vanishes for delta = {delta}")
    Bb = delta * B / (den if B.ndim == 1 else den[:, None])
    return (1.0 + delta * a / 2) / den, Bb


def euler_diag(a, B, delta):
    """Forward Euler for ``A = diag(a)``: ``Ab = 1 + Δa`` (shape (N,)), ``Bb = ΔB``."""
    a, B = _check_aB(a, B)
    delta = _checks.positive_scalar(delta, "delta")
    return 1.0 + delta * a, delta * B


# ----------------------------------------------------------------------------- diagonal, torch
def _check_torch(a, b, delta):
    """``a``, ``b`` tensors of one shape ``(..., N)`` on one device; ``delta`` a positive scalar or
    a tensor of shape ``()`` or ``a.shape[:-1]``.  Returns delta as a float or broadcastable tensor."""
    import torch

    _checks.tensor(a, "a", ndim=tuple(range(1, 64)), shape_doc="(..., N)", complex_ok=True)
    _checks.tensor(b, "b", shape=a.shape, shape_doc=f"a.shape = {tuple(a.shape)}", complex_ok=True)
    _checks.same_device(b, "b", a, "a")
    if not isinstance(delta, torch.Tensor):
        return _checks.positive_scalar(delta, "delta")
    _checks.tensor(delta, "delta", shape_doc=f"() or a.shape[:-1] = {tuple(a.shape[:-1])}")
    _checks.same_device(delta, "delta", a, "a")
    if delta.ndim != 0 and delta.shape != a.shape[:-1]:
        raise ValueError(f"delta must be 0-dim or have shape a.shape[:-1] = "
                         f"{tuple(a.shape[:-1])}, got {tuple(delta.shape)}")
    _checks.positive_entries(delta, "delta", "a step size")
    return delta if delta.ndim == 0 else delta[..., None]


#: Below this |z|, φ₁(z) is summed from its Taylor series (terms up to z⁹, error < 3e-18
#: relative); above it, expm1(z)/z.  The series keeps the autograd derivative exact near 0,
#: where the derivative of expm1(z)/z, e^z/z − expm1(z)/z², cancels (error ≈ eps/|z|).
_PHI1_SERIES_RADIUS = 0.1


def _zoh_b_torch(a, d):
    """B̄/b = Δ φ₁(Δa) = (e^{Δa} − 1)/a, with values and autograd derivatives accurate everywhere.

    Near 0 (``|Δa| < 0.1``) it is ``Δ`` times the Taylor series of φ₁ (whose derivative is exact
    where that of expm1(z)/z, e^z/z − expm1(z)/z², cancels); elsewhere ``expm1(Δa)/a`` (or
    ``(e^{Δa} − 1)/a`` for ``Re Δa < −1``), whose derivative in Δ is ``e^{Δa}`` to rounding.
    """
    import torch

    z = d * a
    small = z.abs() < _PHI1_SERIES_RADIUS
    zs = torch.where(small, z, torch.zeros_like(z))             # series input, bounded
    series = torch.ones_like(z)
    for k in range(10, 1, -1):                                  # Horner: Σ_{k<10} z^k/(k+1)!
        series = 1 + zs * series / k
    a_safe = torch.where(small, torch.ones_like(a), a)          # never 0 in the division
    z_safe = torch.where(small, torch.zeros_like(z), z)
    # torch differentiates expm1 from its output (e^z = expm1(z) + 1), which cancels when
    # e^z is tiny; below Re z = -1, e^z - 1 itself has no cancellation (|e^z - 1| > 0.63)
    far_left = (z_safe.real if z_safe.is_complex() else z_safe) < -1
    num = torch.where(far_left, torch.exp(z_safe) - 1, torch.expm1(z_safe))
    return torch.where(small, d * series, num / a_safe)


def zoh_diag_torch(a, b, delta):
    """ZOH for diagonal A in torch: ``Ab = exp(Δa)``, ``Bb = Δ φ₁(Δa) b = (exp(Δa) − 1)/a · b``.

    a: (..., N) real or complex tensor (the diagonal of A; e.g. (H, N) for H channels);
    b: tensor of a's shape; delta: positive float, 0-dim tensor, or tensor of shape a.shape[:-1].
    Returns ``(Ab, Bb)``, both of a's shape.  φ₁ is summed from its series for ``|Δa| < 0.1`` and
    from ``torch.expm1`` elsewhere, so values and gradients are accurate for tiny ``|Δa|`` and
    ``Bb = Δ b`` where ``a = 0``.  Differentiable; respects a's device.
    """
    import torch

    d = _check_torch(a, b, delta)
    return torch.exp(d * a), _zoh_b_torch(a, d) * b


def bilinear_diag_torch(a, b, delta):
    """Bilinear rule for diagonal A in torch: ``Ab = (1 + Δa/2)/(1 − Δa/2)``, ``Bb = Δb/(1 − Δa/2)``.

    Same shapes as :func:`zoh_diag_torch`.
    """
    d = _check_torch(a, b, delta)
    den = 1 - d * a / 2
    return (1 + d * a / 2) / den, d * b / den
