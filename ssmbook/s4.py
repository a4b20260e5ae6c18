"""S4: a time-invariant linear recurrence unrolled into a convolution kernel.

The recurrence of the whole book, with parameters that do not depend on t,

    h_t = Ā h_{t-1} + B̄ u_t,    y_t = C h_t,    h_{-1} = 0,

unrolls into ``y_t = Σ_{j=0}^{t} K_j u_{t-j}`` with the kernel ``K_j = C Ā^j B̄``.  This module
holds both views and the pieces S4 builds from them:

* HiPPO-LegS (``hippo_legs``), the matrix that makes the state an online Legendre projection of
  the input's history (``legs_online``, ``legs_project``, ``legendre_reconstruct``);
* the kernel by matrix powers (``kernel``) and, for a diagonal Ā, by a Vandermonde product
  (``kernel_diag``);
* the causal convolution by FFT (``causal_conv``) and its direct loop oracle
  (``causal_conv_direct``); the recurrence itself (``recurrent``);
* ``S4Layer``: a diagonal (S4D) layer with ZOH and a learnable log Δ that runs as a convolution
  (training) or step by step with a state (inference), plus a tiny classifier and the toy tasks
  of chapter 4.

NumPy functions take float64 (or complex128) arrays; torch functions take tensors and respect
their device.  Bad input raises ``ValueError`` naming the argument and the expected shape/dtype.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from . import _checks
from .discretize import zoh_diag_torch

__all__ = [
    "hippo_legs", "hippo_legs_nplr", "hippo_legs_diagonal",
    "legs_online", "legs_project", "legendre_reconstruct", "legs_lti_kernel",
    "kernel", "kernel_diag", "conv_matrix", "causal_conv", "causal_conv_direct", "recurrent",
    "s4d_kernel", "S4Layer", "S4Classifier",
]


# --------------------------------------------------------------------------- input checks
def _np_array(x, name, ndim=None, allow_complex=True):
    """Return ``x`` as a float64/complex128 ndarray, or raise ValueError naming ``name``."""
    if isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a NumPy array (float64), got a torch.Tensor")
    x = np.asarray(x)
    ok = (np.float64, np.complex128) if allow_complex else (np.float64,)
    if x.dtype not in ok:
        want = "float64 or complex128" if allow_complex else "float64"
        raise ValueError(f"{name} must have dtype {want}, got {x.dtype}")
    if ndim is not None and x.ndim not in (ndim if isinstance(ndim, tuple) else (ndim,)):
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {x.shape}")
    return _checks.array(x, name, complex_ok=allow_complex, min_size=0)     # NaN and inf rejected


def _system(Ab, Bb, C):
    """Validate a single-input single-output system (Ab (N, N), Bb (N,) or (N, 1), C (N,) or (1, N))."""
    Ab = _np_array(Ab, "Ab", ndim=2)
    N = Ab.shape[0]
    if Ab.shape != (N, N):
        raise ValueError(f"Ab must be square (N, N), got shape {Ab.shape}")
    Bb = _np_array(Bb, "Bb")
    if Bb.shape == (N, 1):
        Bb = Bb[:, 0]
    if Bb.shape != (N,):
        raise ValueError(f"Bb must have shape ({N},) or ({N}, 1) to match Ab {Ab.shape}, got {Bb.shape}")
    C = _np_array(C, "C")
    if C.shape == (1, N):
        C = C[0]
    if C.shape != (N,):
        raise ValueError(f"C must have shape ({N},) or (1, {N}) to match Ab {Ab.shape}, got {C.shape}")
    return Ab, Bb, C


# --------------------------------------------------------------------------- HiPPO-LegS
def hippo_legs(N: int):
    """The HiPPO-LegS matrices (with S4's sign: A is stable), as float64 arrays.

    ``A[n, k] = -sqrt(2n+1) sqrt(2k+1)`` for n > k, ``-(n+1)`` for n = k, 0 for n < k;
    ``B[n] = sqrt(2n+1)``.  With them, ``dc/dt = (A c + B f(t)) / t`` keeps ``c(t)`` equal to the
    coefficients of ``f`` on [0, t] in the scaled Legendre basis (see :func:`legs_online`).
    """
    N = _checks.positive_int(N, "N")
    q = np.sqrt(2.0 * np.arange(N) + 1.0)
    A = -np.tril(np.outer(q, q), -1) - np.diag(np.arange(1.0, N + 1.0)) + 0.0  # + 0.0: no -0.0 entries
    return A, q.copy()


def hippo_legs_nplr(N: int):
    """Normal plus low rank form of HiPPO-LegS: ``A = S - P Pᵀ`` with ``S = -I/2 + skew``.

    Returns ``(S, P)``, ``P[n] = sqrt(n + 1/2)``.  ``S`` is normal, so it is unitarily
    diagonalisable; its eigenvalues all have real part -1/2.
    """
    A, _ = hippo_legs(N)
    P = np.sqrt(np.arange(N) + 0.5)
    return A + np.outer(P, P), P


def hippo_legs_diagonal(N: int):
    """S4D-LegS: ``N`` eigenvalues of the normal part of HiPPO-LegS of size ``2N``, one from each
    complex-conjugate pair (positive imaginary part), sorted by imaginary part; complex128, shape (N,)."""
    N = _checks.positive_int(N, "N")
    S, _ = hippo_legs_nplr(2 * N)
    # S = -I/2 + W with W skew-symmetric; i W is Hermitian, so eigh gives W's spectrum accurately.
    W = S + 0.5 * np.eye(2 * N)
    w = np.linalg.eigvalsh(-1j * W)       # eigenvalues of W are i*w, w real, in ± pairs
    w = np.sort(w[w > 0])
    if w.shape != (N,):  # pragma: no cover - a skew matrix of even size has N positive pairs
        raise RuntimeError("unexpected spectrum of the HiPPO-LegS normal part")
    return -0.5 + 1j * w


def legs_online(f, N: int):
    """Run HiPPO-LegS online over samples ``f[0..T-1]`` (taken at t_k = k+1, any time unit).

    Returns ``c`` of shape (T, N): ``c[k]`` approximates the Legendre coefficients of the whole
    history f(s), 0 ≤ s ≤ t_k (uniform measure).  The ODE ``dc/dt = (A c + B f) / t`` is
    discretised with the trapezoid (bilinear) rule; the first state is the projection of a
    constant, ``c = (f[0], 0, ..., 0)``.  Cost O(T N²); the error against the exact projection
    (:func:`legs_project`) falls like 1/T² for a smooth f.
    """
    f = _np_array(f, "f", ndim=1, allow_complex=False)
    N = _checks.positive_int(N, "N")
    T = f.shape[0]
    if T < 1:
        raise ValueError("f must have at least one sample, got shape (0,)")
    A, B = hippo_legs(N)
    I = np.eye(N)
    out = np.zeros((T, N))
    c = np.zeros(N)
    c[0] = f[0]
    out[0] = c
    for k in range(2, T + 1):
        # trapezoid rule on [t_{k-1}, t_k] for dc/dt = (A c + B f) / t, with t_k = k:
        # c_k - c_{k-1} = (A c_k + B f_k) / (2k) + (A c_{k-1} + B f_{k-1}) / (2(k-1))
        lhs = I - A / (2 * k)          # lower triangular
        rhs = c + (A @ c) / (2 * (k - 1)) + B * (f[k - 1] / (2 * k) + f[k - 2] / (2 * (k - 1)))
        c = np.linalg.solve(lhs, rhs)
        out[k - 1] = c
    return out


def legs_project(fn, t: float, N: int, n_quad: int = 200):
    """Oracle: the first ``N`` coefficients of ``fn`` on [0, t], ``c_n = (1/t) ∫ fn(s) g_n(s) ds``
    with ``g_n(s) = sqrt(2n+1) P_n(2s/t - 1)``, by Gauss-Legendre quadrature (``n_quad`` nodes)."""
    if not callable(fn):
        raise ValueError(f"fn must be callable (an array of times -> the values there), got {type(fn).__name__}")
    N = _checks.positive_int(N, "N")
    n_quad = _checks.positive_int(n_quad, "n_quad")
    if not (np.isfinite(t) and t > 0):
        raise ValueError(f"t must be a positive finite float, got {t!r}")
    x, w = np.polynomial.legendre.leggauss(n_quad)          # nodes on [-1, 1]
    vals = np.asarray(fn((x + 1.0) * t / 2.0), dtype=np.float64)
    if vals.shape != x.shape:
        raise ValueError(f"fn must map an array of shape {x.shape} to the same shape, got {vals.shape}")
    P = np.polynomial.legendre.legvander(x, N - 1)           # (n_quad, N)
    return np.sqrt(2.0 * np.arange(N) + 1.0) * (0.5 * (w * vals) @ P)


def legendre_reconstruct(c, s):
    """Rebuild the history from coefficients: ``Σ_n c[..., n] sqrt(2n+1) P_n(2 s - 1)``.

    ``c``: (..., N); ``s``: (M,) relative times in [0, 1] (0 = the start, 1 = now) → (..., M).
    """
    c = _np_array(c, "c", allow_complex=False)
    s = _np_array(s, "s", ndim=1, allow_complex=False)
    if c.ndim < 1 or c.shape[-1] < 1:
        raise ValueError(f"c must have shape (..., N) with N ≥ 1, got {c.shape}")
    if s.size and (s.min() < 0 or s.max() > 1):
        raise ValueError("s must lie in [0, 1]")
    N = c.shape[-1]
    P = np.polynomial.legendre.legvander(2.0 * s - 1.0, N - 1)   # (M, N)
    return (c * np.sqrt(2.0 * np.arange(N) + 1.0)) @ P.T


def legs_lti_kernel(r, N: int):
    """Impulse responses of the time-invariant system ``x' = A x + B u`` with HiPPO-LegS (A, B):

        k_n(r) = sqrt(2n+1) · e^{-r} · P_n(2 e^{-r} - 1),   r ≥ 0 (the lag), n = 0..N-1.

    Reason: in log-time τ = log t the LegS ODE ``dc/dt = (A c + B f)/t`` becomes the LTI system
    ``dc/dτ = A c + B f``, so the LTI state holds the Legendre coefficients of the history warped
    by s = e^{-r}: the recent past at fine resolution, the distant past squeezed towards s = 0.
    ``r``: (M,) float64, ≥ 0 → (N, M).
    """
    r = _np_array(r, "r", ndim=1, allow_complex=False)
    N = _checks.positive_int(N, "N")
    if r.size and r.min() < 0:
        raise ValueError("r (the lags) must be ≥ 0")
    s = np.exp(-r)
    P = np.polynomial.legendre.legvander(2.0 * s - 1.0, N - 1).T          # (N, M)
    return np.sqrt(2.0 * np.arange(N) + 1.0)[:, None] * P * s


# --------------------------------------------------------------------------- kernels
def kernel(Ab, Bb, C, L: int):
    """The SSM convolution kernel by matrix powers: ``K = (C B̄, C Ā B̄, ..., C Ā^{L-1} B̄)``.

    ``Ab`` (N, N), ``Bb`` (N,) or (N, 1), ``C`` (N,) or (1, N), float64 or complex128 → (L,).
    Cost O(L N²); the slow, obviously-correct reference.
    """
    Ab, Bb, C = _system(Ab, Bb, C)
    L = _checks.positive_int(L, "L")
    K = np.zeros(L, dtype=np.result_type(Ab, Bb, C))
    v = Bb.astype(K.dtype)
    for j in range(L):
        K[j] = C @ v
        v = Ab @ v
    return K


def kernel_diag(dA, dB, C, L: int):
    """Fast kernel for a diagonal Ā (S4D): ``K_j = Σ_n C_n B̄_n Ā_n^j``, a Vandermonde product.

    ``dA``, ``dB``, ``C``: the diagonal of Ā, B̄ and C, all of shape (..., N) (the same shape:
    one independent system per leading index); float64 or complex128 → (..., L).  Cost O(N L).
    """
    dA = _np_array(dA, "dA")
    dB = _np_array(dB, "dB")
    C = _np_array(C, "C")
    if dA.ndim < 1:
        raise ValueError(f"dA must have shape (..., N), got {dA.shape}")
    if dB.shape != dA.shape:
        raise ValueError(f"dB must have the shape of dA {dA.shape}, got {dB.shape}")
    if C.shape != dA.shape:
        raise ValueError(f"C must have the shape of dA {dA.shape}, got {C.shape}")
    L = _checks.positive_int(L, "L")
    # the Vandermonde matrix V[..., n, j] = dA_n^j, as exp(j log dA_n): no loop over j
    with np.errstate(divide="ignore", invalid="ignore"):
        V = np.exp(np.log(dA.astype(np.complex128))[..., None] * np.arange(L))
    V[..., 0] = 1.0                                    # dA^0 = 1, also for dA = 0
    K = np.einsum("...n,...nl->...l", C * dB, V)
    real = not (np.iscomplexobj(dA) or np.iscomplexobj(dB) or np.iscomplexobj(C))
    return K.real.copy() if real else K


def conv_matrix(K, L: int | None = None):
    """The lower-triangular Toeplitz matrix ``T[t, s] = K[t - s]`` (t ≥ s), so that ``y = T u``.

    ``K``: (Lk,) float64/complex128; ``L`` (default ``Lk``) is the sequence length → (L, L).
    """
    K = _np_array(K, "K", ndim=1)
    L = K.shape[0] if L is None else _checks.positive_int(L, "L")
    T = np.zeros((L, L), dtype=K.dtype)
    for d in range(min(L, K.shape[0])):
        T += np.diag(np.full(L - d, K[d]), -d)
    return T


def _check_conv_shapes(u, K):
    if u.ndim < 1 or u.shape[-1] < 1:
        raise ValueError(f"u must have shape (..., L) with L ≥ 1, got {tuple(u.shape)}")
    if K.ndim < 1 or K.shape[-1] < 1:
        raise ValueError(f"K must have shape (Lk,) or (..., Lk) with Lk ≥ 1, got {tuple(K.shape)}")
    lead = tuple(u.shape[u.ndim - K.ndim:-1]) if K.ndim <= u.ndim else None
    if K.ndim > u.ndim or tuple(K.shape[:-1]) != lead:
        raise ValueError(f"K must have shape (Lk,) or (..., Lk) whose leading dims are trailing batch dims "
                         f"of u {tuple(u.shape)} (e.g. u (B, H, L), K (H, Lk)), got {tuple(K.shape)}")


def causal_conv(u, K):
    """Causal convolution ``y_t = Σ_{j=0}^{t} K_j u_{t-j}`` by FFT, for NumPy arrays or torch tensors.

    ``u``: (..., L).  ``K``: (Lk,) — one kernel for every row — or (..., Lk) whose leading dims
    equal the trailing batch dims of ``u`` (e.g. u (B, H, L) with K (H, L): one kernel per
    channel).  Kernel taps beyond L are ignored; a shorter kernel is zero beyond Lk.  Both
    operands are zero-padded to a length ≥ L + Lk - 1, so the FFT's circular convolution never
    wraps around.  Output: (..., L), the promoted dtype of u and K.
    """
    if isinstance(u, torch.Tensor) != isinstance(K, torch.Tensor):
        raise ValueError("u and K must both be NumPy arrays or both be torch tensors")
    if isinstance(u, torch.Tensor):
        if not (u.is_floating_point() or u.is_complex()):
            raise ValueError(f"u must be a floating-point or complex tensor, got {u.dtype}")
        if not (K.is_floating_point() or K.is_complex()):
            raise ValueError(f"K must be a floating-point or complex tensor, got {K.dtype}")
        if u.device != K.device:
            raise ValueError(f"u and K must be on the same device, got {u.device} and {K.device}")
        _check_conv_shapes(u, K)
        L = u.shape[-1]
        K = K[..., :L]
        n = 1 << (L + K.shape[-1] - 2).bit_length()        # smallest power of 2 ≥ L + Lk - 1
        if u.is_complex() or K.is_complex():
            y = torch.fft.ifft(torch.fft.fft(u, n=n) * torch.fft.fft(K, n=n), n=n)
        else:
            y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(K, n=n), n=n)
        return y[..., :L]
    u = _np_array(u, "u")
    K = _np_array(K, "K")
    _check_conv_shapes(u, K)
    L = u.shape[-1]
    K = K[..., :L]
    n = 1 << (L + K.shape[-1] - 2).bit_length()
    if np.iscomplexobj(u) or np.iscomplexobj(K):
        y = np.fft.ifft(np.fft.fft(u, n=n) * np.fft.fft(K, n=n), n=n)
    else:
        y = np.fft.irfft(np.fft.rfft(u, n=n) * np.fft.rfft(K, n=n), n=n)
    return y[..., :L]


def causal_conv_direct(u, K):
    """Oracle for :func:`causal_conv` (NumPy, float64/complex128): the double loop, O(L²)."""
    u = _np_array(u, "u")
    K = _np_array(K, "K")
    _check_conv_shapes(u, K)
    L = u.shape[-1]
    Lk = K.shape[-1]
    y = np.zeros(np.broadcast_shapes(u.shape[:-1], K.shape[:-1]) + (L,), dtype=np.result_type(u, K))
    for t in range(L):
        for j in range(min(t + 1, Lk)):
            y[..., t] += K[..., j] * u[..., t - j]
    return y


def recurrent(Ab, Bb, C, u, h0=None, return_state: bool = False):
    """Run ``h_t = Ā h_{t-1} + B̄ u_t, y_t = C h_t`` step by step (NumPy, float64/complex128).

    ``Ab`` (N, N), ``Bb`` (N,) or (N, 1), ``C`` (N,) or (1, N); ``u`` (..., L); ``h0`` (..., N)
    or None (zero state).  Returns ``y`` (..., L), and the last state (..., N) when
    ``return_state``.  Cost O(L N²), sequential in t.
    """
    Ab, Bb, C = _system(Ab, Bb, C)
    u = _np_array(u, "u")
    if u.ndim < 1 or u.shape[-1] < 1:
        raise ValueError(f"u must have shape (..., L) with L ≥ 1, got {u.shape}")
    N = Ab.shape[0]
    if h0 is not None:
        h0 = _np_array(h0, "h0")
    # a complex h0 makes the whole run complex, even for a real system and input
    dtype = np.result_type(Ab, Bb, C, u, *(() if h0 is None else (h0,)))
    h = np.zeros(u.shape[:-1] + (N,), dtype=dtype)
    if h0 is not None:
        if h0.shape != h.shape:
            raise ValueError(f"h0 must have shape {h.shape} (u's batch dims + (N,)), got {h0.shape}")
        h = h + h0
    y = np.zeros(u.shape, dtype=dtype)
    for t in range(u.shape[-1]):
        h = h @ Ab.T + Bb * u[..., t, None]
        y[..., t] = h @ C
    return (y, h) if return_state else y


# --------------------------------------------------------------------------- S4D layer (torch)
def s4d_kernel(log_dt, log_A_real, A_imag, C, L: int):
    """The real S4D kernel ``K[h, j] = 2 Re Σ_n C[h,n] B̄[h,n] Ā[h,n]^j`` (B = 1, ZOH), torch.

    ``log_dt`` (H,); ``log_A_real``, ``A_imag`` (H, N) with ``A = -exp(log_A_real) + i A_imag``;
    ``C`` (H, N) complex.  Each complex mode stands for a conjugate pair of a real SSM of state
    size 2N, hence the factor 2 and the real part.  Returns (H, L), Ā and B̄.
    """
    L = _checks.positive_int(L, "L")
    if log_dt.ndim != 1 or log_dt.is_complex():
        raise ValueError(f"log_dt must be a real tensor of shape (H,), got {tuple(log_dt.shape)} {log_dt.dtype}")
    H = log_dt.shape[0]
    for name, x in (("log_A_real", log_A_real), ("A_imag", A_imag), ("C", C)):
        if x.ndim != 2 or x.shape[0] != H:
            raise ValueError(f"{name} must have shape (H, N) with H = {H}, got {tuple(x.shape)}")
    if A_imag.shape != log_A_real.shape or C.shape != log_A_real.shape:
        raise ValueError(f"log_A_real, A_imag and C must share one shape (H, N), got "
                         f"{tuple(log_A_real.shape)}, {tuple(A_imag.shape)}, {tuple(C.shape)}")
    if not C.is_complex():
        raise ValueError(f"C must be a complex tensor, got {C.dtype}")
    A = torch.complex(-torch.exp(log_A_real), A_imag)
    delta = torch.exp(log_dt)[:, None]
    dA, dB = zoh_diag_torch(A, torch.ones_like(A), delta[:, 0])
    # The Vandermonde matrix V[h, n, j] = Ā^j = exp(j ΔA).  Write j = a m + b (m = ⌈√L⌉): then
    # exp(j ΔA) = exp(a m ΔA) · exp(b ΔA), so 2m complex exponentials per mode instead of L.
    m = math.isqrt(L - 1) + 1
    steps = torch.arange(m, device=A.device, dtype=log_dt.dtype)
    dtA = (delta * A)[..., None]
    V = (torch.exp(dtA * (steps * m))[..., :, None] * torch.exp(dtA * steps)[..., None, :])
    V = V.reshape(*A.shape, m * m)[..., :L]
    K = 2.0 * (C * dB)[..., None].mul(V).sum(-2).real
    return K, dA, dB


class S4Layer(nn.Module):
    """A diagonal S4 layer (S4D): H independent SSMs, each with N complex modes, ZOH, learnable Δ.

    ``forward(u)``: u (batch, H, L) → y (batch, H, L) by FFT convolution with the kernel (the
    training mode).  ``step(u_t, state)``: u_t (batch, H) → (y_t, new state) (the inference
    mode); ``forward_recurrent(u)`` loops ``step`` and gives the same output as ``forward``.

    Parameters: ``log_dt`` (H,), ``log_A_real`` and ``A_imag`` (H, N), ``C`` (H, N, 2) (real and
    imaginary parts), ``D`` (H,).  ``init``: ``"lin"`` (S4D-Lin, A_n = -1/2 + iπn) or ``"legs"``
    (S4D-LegS, the diagonal part of HiPPO-LegS, :func:`hippo_legs_diagonal`).
    """

    def __init__(self, d_model: int, d_state: int = 16, dt_min: float = 1e-3, dt_max: float = 1e-1,
                 init: str = "legs"):
        super().__init__()
        d_model = _checks.positive_int(d_model, "d_model")
        d_state = _checks.positive_int(d_state, "d_state")
        if not (0 < dt_min <= dt_max):
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        if init == "lin":
            A = -0.5 + 1j * math.pi * np.arange(d_state)
        elif init == "legs":
            A = hippo_legs_diagonal(d_state)
        else:
            raise ValueError(f"init must be 'lin' or 'legs', got {init!r}")
        self.d_model, self.d_state = d_model, d_state
        A = np.broadcast_to(A, (d_model, d_state))
        u = torch.rand(d_model)
        self.log_dt = nn.Parameter(math.log(dt_min) + u * (math.log(dt_max) - math.log(dt_min)))
        self.log_A_real = nn.Parameter(torch.tensor(np.log(-A.real), dtype=torch.float32))
        self.A_imag = nn.Parameter(torch.tensor(A.imag.copy(), dtype=torch.float32))
        self.C = nn.Parameter(torch.randn(d_model, d_state, 2) * math.sqrt(0.5))
        self.D = nn.Parameter(torch.randn(d_model))

    def _check_u(self, u, name, ndim):
        shape = "(batch, H, L)" if ndim == 3 else "(batch, H)"
        _checks.tensor(u, name, shape_doc=shape)
        if u.ndim != ndim or u.shape[1] != self.d_model or u.shape[0] < 1 or (ndim == 3 and u.shape[-1] < 1):
            raise ValueError(f"{name} must have shape {shape} with H = {self.d_model}, got {tuple(u.shape)}")
        if u.dtype != self.log_dt.dtype:
            raise ValueError(f"{name} must have the layer's dtype {self.log_dt.dtype}, got {u.dtype}")

    def kernel(self, L: int):
        """The (H, L) convolution kernel, and the discretised diagonal Ā, B̄ (H, N)."""
        return s4d_kernel(self.log_dt, self.log_A_real, self.A_imag, torch.view_as_complex(self.C), L)

    def forward(self, u):
        self._check_u(u, "u", 3)
        K, _, _ = self.kernel(u.shape[-1])
        return causal_conv(u, K) + self.D[:, None] * u

    def initial_state(self, batch: int):
        """The zero state, complex (batch, H, N)."""
        batch = _checks.positive_int(batch, "batch")
        cdt = torch.complex128 if self.log_dt.dtype == torch.float64 else torch.complex64
        return torch.zeros(batch, self.d_model, self.d_state, dtype=cdt, device=self.log_dt.device)

    def step(self, u_t, state, _discrete=None):
        """One step: ``h = Ā h + B̄ u_t``, ``y_t = 2 Re(C h) + D u_t``; returns (y_t, h)."""
        self._check_u(u_t, "u_t", 2)
        if not isinstance(state, torch.Tensor) or state.shape != (u_t.shape[0], self.d_model, self.d_state):
            got = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
            raise ValueError(f"state must have shape (batch, H, N) = "
                             f"{(u_t.shape[0], self.d_model, self.d_state)}, got {got}")
        if _discrete is None:
            _, dA, dB = self.kernel(1)
        else:
            dA, dB = _discrete
        h = dA * state + dB * u_t[..., None]
        y = 2.0 * (torch.view_as_complex(self.C) * h).sum(-1).real + self.D * u_t
        return y, h

    def forward_recurrent(self, u, state=None, return_state: bool = False):
        """The recurrent mode over a whole sequence (a Python loop over t): same output as ``forward``."""
        self._check_u(u, "u", 3)
        h = self.initial_state(u.shape[0]) if state is None else state
        _, dA, dB = self.kernel(1)
        ys = []
        for t in range(u.shape[-1]):
            y, h = self.step(u[..., t], h, _discrete=(dA, dB))
            ys.append(y)
        y = torch.stack(ys, dim=-1)
        return (y, h) if return_state else y


class S4Classifier(nn.Module):
    """Tokens → embedding → ``n_layers`` × (S4Layer → GELU → linear, residual, LayerNorm) →
    the last position → logits.  With one layer, the features at the last position are a fixed
    (time-invariant) linear filter of the embedded sequence, followed by pointwise maps."""

    def __init__(self, vocab: int, n_classes: int, d_model: int = 32, d_state: int = 16,
                 n_layers: int = 1, **s4_kw):
        super().__init__()
        self.embed = nn.Embedding(_checks.positive_int(vocab, "vocab"), d_model)
        n_layers = _checks.positive_int(n_layers, "n_layers")
        self.layers = nn.ModuleList(S4Layer(d_model, d_state, **s4_kw) for _ in range(n_layers))
        self.mix = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(n_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers))
        self.head = nn.Linear(d_model, _checks.positive_int(n_classes, "n_classes"))

    def forward(self, tokens):
        _checks.token_ids(tokens, "tokens", self.embed.num_embeddings, ndim=2, shape_doc="(batch, L)",
                          device=self.embed.weight.device)
        x = self.embed(tokens)                                   # (B, L, H)
        for s4, mix, norm in zip(self.layers, self.mix, self.norms):
            y = s4(x.transpose(1, 2)).transpose(1, 2)
            x = norm(x + mix(nn.functional.gelu(y)))
        return self.head(x[:, -1])


# --------------------------------------------------------------------------- S4's DPLR kernel
def hippo_legs_dplr(N: int):
    """HiPPO-LegS in S4's diagonal plus low-rank (DPLR) form, in the eigenbasis of its normal part.

    From :func:`hippo_legs_nplr`, ``A = S - P Pᵀ`` with ``S`` normal, ``S = V diag(Lambda) V*``
    (V unitary, computed from the Hermitian matrix ``-i (S + I/2)``, hence stably).  In the basis V
    the system ``(A, B, C)`` becomes ``(diag(Lambda) - P̃ P̃*, V* B, C V)`` with ``P̃ = V* P``: the
    same kernel for every C.  Returns ``(Lambda, Pt, Bt, V)``: Lambda, Pt, Bt complex128 (N,),
    V complex128 (N, N); ``A = V (diag(Lambda) - Pt Pt*) V*``.
    """
    N = _checks.positive_int(N, "N")
    S, P = hippo_legs_nplr(N)
    _, B = hippo_legs(N)
    W = S + 0.5 * np.eye(N)                      # skew-symmetric: -i W is Hermitian
    w, V = np.linalg.eigh(-1j * W)               # W = V diag(i w) V*
    Lambda = -0.5 + 1j * w
    return Lambda, V.conj().T @ P, V.conj().T @ B, V


def _dplr_vector(x, name, N):
    x = _np_array(x, name)
    if x.shape != (N,):
        raise ValueError(f"{name} must have shape ({N},) to match Lambda ({N},), got {x.shape}")
    return x.astype(np.complex128)


def kernel_dplr(Lambda, P, Q, B, C, delta, L: int, C_is_tilde: bool = False):
    """S4's convolution kernel of a diagonal plus low-rank system, computed the way S4 does.

    The continuous system is ``x' = A x + B u``, ``y = C x`` with ``A = diag(Lambda) - P Q*``;
    it is discretised with the bilinear rule, ``Ā = (I - Δ/2 A)⁻¹ (I + Δ/2 A)``,
    ``B̄ = (I - Δ/2 A)⁻¹ Δ B``, and the result is ``K_j = C Ā^j B̄`` for j = 0..L-1, the same as
    ``kernel(Ā, B̄, C, L)`` but without any power of Ā inside the length-L loop:

    1. the truncated generating function ``K̂(z) = Σ_{j<L} K_j z^j = C̃ (I - Ā z)⁻¹ B̄`` with
       ``C̃ = C (I - Ā^L)``, exact at the L roots of unity ``z_k = exp(-2πi k/L)`` (where z^L = 1);
    2. with the bilinear Ā, ``(I - Ā z)⁻¹ B̄ = 2/(1+z) · (g(z) I - A)⁻¹ B``,
       ``g(z) = (2/Δ)(1 - z)/(1 + z)``;
    3. the Woodbury identity turns ``(g I - diag(Lambda) + P Q*)⁻¹`` into the diagonal resolvent
       ``R = (g I - diag(Lambda))⁻¹`` plus a rank-r correction, so that
       ``K̂ = 2/(1+z) · (k_CB - k_CP (I + k_QP)⁻¹ k_QB)`` with the Cauchy sums
       ``k_XY(z) = Σ_n X_n Y_n / (g(z) - Lambda_n)`` (X a row of C̃ or Q*, Y a column of B or P);
    4. ``K = ifft(K̂)`` (numpy's convention: ``K̂_k = Σ_j K_j z_k^j``).

    At z = -1 (k = L/2, L even) g is infinite and the limit ``K̂ = Δ/2 · C̃ B`` is used.  Cost: four
    Cauchy sums of N terms at each of the L frequencies, O(N L) (one (L, N) × (N, 4) product for
    rank 1), plus an FFT.  ``C̃`` is computed here by repeated squaring of Ā, O(N³ log L), unless
    ``C_is_tilde=True``: then ``C`` is taken to be C̃ already, as in S4, which learns C̃ directly.

    ``Lambda`` (N,) complex128 with Re < 0; ``P``, ``Q`` (N,) or (N, r) (rank r); ``B``, ``C`` (N,);
    float64 or complex128; ``delta`` a positive float; ``L`` a positive int.  Returns complex128
    (L,): the kernel is complex in general; when the system is similar to a real one (HiPPO in its
    eigenbasis, :func:`hippo_legs_dplr`) its imaginary part is round-off and ``.real`` is the kernel.
    """
    Lambda = _np_array(Lambda, "Lambda", ndim=1).astype(np.complex128)
    N = Lambda.shape[0]
    if N < 1:
        raise ValueError("Lambda must have shape (N,) with N ≥ 1, got (0,)")
    if not np.all(np.isfinite(Lambda)) or np.any(Lambda.real >= 0):
        raise ValueError("Lambda must be finite with every real part < 0 (a stable diagonal part)")
    lowrank = []
    for name, x in (("P", P), ("Q", Q)):
        x = _np_array(x, name, ndim=(1, 2)).astype(np.complex128)
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[0] != N or x.shape[1] < 1:
            raise ValueError(f"{name} must have shape ({N},) or ({N}, r) to match Lambda ({N},), got {x.shape}")
        lowrank.append(x)
    P, Q = lowrank
    if P.shape != Q.shape:
        raise ValueError(f"P and Q must have the same shape (N, r), got {P.shape} and {Q.shape}")
    B = _dplr_vector(B, "B", N)
    C = _dplr_vector(C, "C", N)
    delta = _checks.positive_scalar(delta, "delta")
    L = _checks.positive_int(L, "L")

    if not isinstance(C_is_tilde, bool):
        raise ValueError(f"C_is_tilde must be a bool, got {C_is_tilde!r}")
    if C_is_tilde:
        Ct = C
    else:  # C̃ = C (I - Ā^L): the dense bilinear Ā once, its L-th power by repeated squaring
        A = np.diag(Lambda) - P @ Q.conj().T
        left = np.eye(N) - (delta / 2) * A
        Ab = np.linalg.solve(left, np.eye(N) + (delta / 2) * A)
        Ct = C - C @ np.linalg.matrix_power(Ab, L)

    z = np.exp(-2j * np.pi * np.arange(L) / L)
    khat = np.empty(L, dtype=np.complex128)
    pole = np.isclose(z, -1.0, rtol=0, atol=1e-12)              # z = -1: the bilinear rule's limit
    khat[pole] = (delta / 2) * (Ct @ B)
    zz = z[~pole]
    g = (2.0 / delta) * (1 - zz) / (1 + zz)                      # (L',)
    R = 1.0 / (g[:, None] - Lambda[None, :])                     # (L', N): the diagonal resolvent
    Qs = Q.conj()                                                # rows of Q*, as (N, r)
    r = P.shape[1]
    # all Cauchy sums in one product: columns C̃B, C̃P (r), Q*B (r), Q*P (r × r)
    cols = np.concatenate([(Ct * B)[:, None], Ct[:, None] * P, Qs * B[:, None],
                           (Qs[:, :, None] * P[:, None, :]).reshape(N, r * r)], axis=1)
    k = R @ cols                                                 # (L', 1 + 2r + r²)
    k_CB, k_CP, k_QB = k[:, 0], k[:, 1:1 + r], k[:, 1 + r:1 + 2 * r]
    k_QP = k[:, 1 + 2 * r:].reshape(-1, r, r)                    # (L', r, r)
    inner = np.eye(r) + k_QP
    corr = np.einsum("lr,lr->l", k_CP, np.linalg.solve(inner, k_QB[..., None])[..., 0])
    khat[~pole] = 2.0 / (1 + zz) * (k_CB - corr)
    return np.fft.ifft(khat)


__all__ += ["hippo_legs_dplr", "kernel_dplr"]
