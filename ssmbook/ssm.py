"""Continuous-time linear state-space models (chapter 2).

    h'(t) = A h(t) + B x(t),      y(t) = C h(t) + D x(t)

``ContinuousSSM(A, B, C, D)`` holds the four matrices (numpy float64) and offers
``impulse_response(t)``, ``simulate(x, t)``, and the eigenvalue view of stability
(``eigenvalues()``, ``is_stable()``, ``memory_time()``).

Shapes: A (N, N); B (N,) or (N, M); C (N,) or (P, N); D a scalar or (P, M).  A 1-D B means one
input (M = 1), a 1-D C one output (P = 1); when both are 1-D the model is single-input
single-output (SISO) and inputs/outputs are 1-D arrays over time.

Also here, for the three views of a linear SSM (continuous, recurrent, convolutional):
``recurrence(Ab, Bb, C, x)`` runs h_k = Ab h_{k-1} + Bb x_k, y_k = C h_k (+ D x_k) in a plain loop,
and ``kernel(Ab, Bb, C, L)`` returns K_k = C Ab^k Bb, so that y = K * x (causal convolution).
"""
from __future__ import annotations

import numpy as np
import scipy.integrate
import scipy.linalg

from . import _checks
from .discretize import zoh
from .s4 import kernel as s4_kernel

__all__ = ["ContinuousSSM", "is_stable", "recurrence", "recurrence_diag", "kernel", "causal_convolve",
           "diagonal_ssm", "spring_mass_damper"]


def is_stable(A, margin: float = 0.0) -> bool:
    """True when every eigenvalue of A has real part < -margin (asymptotic stability of h' = Ah)."""
    A = _checks.square_matrix(A, "A", min_size=0)
    margin = _checks.real_scalar(margin, "margin")
    return bool(np.all(np.linalg.eigvals(A).real < -margin))


class ContinuousSSM:
    """The continuous linear time-invariant system h' = A h + B x, y = C h + D x.

    Parameters
    ----------
    A : (N, N) array.  B : (N,) or (N, M).  C : (N,) or (P, N).  D : scalar or (P, M), default 0
    (the skip connection ``D x``; many models drop it).
    """

    def __init__(self, A, B, C, D=0.0):
        A = _checks.square_matrix(A, "A")
        N = A.shape[0]
        B = _checks.vector_or_matrix(B, "B", N)
        C = _checks.vector_or_matrix(C, "C", N, axis=-1)
        self.siso = B.ndim == 1 and C.ndim == 1
        self.A = A
        self.B = B.reshape(N, -1)
        self.C = C.reshape(-1, N)
        self.N, self.M, self.P = N, self.B.shape[1], self.C.shape[0]
        D = _checks.array(D, "D", min_size=0)
        if D.ndim == 0:
            if self.M != self.P and D != 0:
                raise ValueError(f"D must have shape (P, M) = {(self.P, self.M)} when M != P (a scalar "
                                 f"D needs as many inputs as outputs), got the scalar {float(D)!r}")
            D = D * np.eye(self.P, self.M)
        elif D.shape != (self.P, self.M):
            raise ValueError(f"D must be a scalar or have shape (P, M) = {(self.P, self.M)}, "
                             f"got shape {D.shape}")
        self.D = D

    def __repr__(self):
        return f"ContinuousSSM(N={self.N}, M={self.M}, P={self.P})"

    # ------------------------------------------------------------------ stability
    def eigenvalues(self) -> np.ndarray:
        """Eigenvalues of A (the modes e^{λt} of the free response)."""
        return np.linalg.eigvals(self.A)

    def is_stable(self) -> bool:
        """All eigenvalues in the open left half-plane: every free response decays to 0."""
        return is_stable(self.A)

    def memory_time(self) -> float:
        """1 / min |Re λ|: the time constant of the slowest mode (inf when a mode does not decay)."""
        re = self.eigenvalues().real
        if np.any(re >= 0):
            return float("inf")
        return float(1.0 / np.min(-re))

    # ------------------------------------------------------------------ helpers
    def _input_array(self, x, L) -> np.ndarray:
        """The sampled input ``x`` as ``(L, M)`` float64 (``(L,)`` accepted when M = 1)."""
        x = _checks.array(x, "x", min_size=0)
        if self.M == 1 and x.shape == (L,):
            return x.reshape(L, 1)
        if x.shape != (L, self.M):
            expect = "(L,) or (L, 1)" if self.M == 1 else f"(L, M) = {(L, self.M)}"
            raise ValueError(f"x must have shape {expect} with L = len(t), got shape {x.shape}")
        return x

    def _out(self, y):
        return y[:, 0] if self.siso else y

    # ------------------------------------------------------------------ responses
    def impulse_response(self, t) -> np.ndarray:
        """K(t) = C exp(tA) B for each time in ``t`` (the D δ(t) part is left out).

        Returns shape (L,) for a SISO model, else (L, P, M).  Uniformly spaced increasing times
        reuse one matrix exponential, exp(t_k A) = exp(t_0 A) exp(dt A)^k; other grids call
        ``scipy.linalg.expm`` once per time.
        """
        t = _checks.time_grid(t, "t")
        L = t.shape[0]
        out = np.empty((L, self.P, self.M))
        dt = np.diff(t)
        uniform = L > 1 and dt[0] > 0 and np.allclose(dt, dt[0], rtol=1e-12, atol=0)
        if uniform:
            step = scipy.linalg.expm(dt[0] * self.A)
            E = scipy.linalg.expm(t[0] * self.A) @ self.B
            for k in range(L):
                out[k] = self.C @ E
                E = step @ E
        else:
            for k in range(L):
                out[k] = self.C @ scipy.linalg.expm(t[k] * self.A) @ self.B
        return out[:, 0, 0] if self.siso else out

    def simulate(self, x, t, h0=None, method: str = "exact", return_state: bool = False):
        """The output y(t_k) at the times ``t`` (increasing) for the input ``x``, from state h0 at t[0].

        Two kinds of input:

        * an array of samples (shape (L,) or (L, M)): the input is **piecewise constant**, held at
          x[k] on [t[k], t[k+1]) (zero-order hold).  ``method="exact"`` (default) advances the state
          with the exact ZOH step of each interval; ``method="ode"`` integrates the ODE on each
          interval with scipy's DOP853 at rtol 1e-12 (a slow, independent reference).
        * a callable ``x(t)`` returning a scalar (M = 1) or an (M,) array: the ODE is integrated with
          DOP853 at rtol 1e-10 (``method`` is ignored).

        y_k = C h(t_k) + D x(t_k).  Returns y of shape (L,) (SISO) or (L, P); with
        ``return_state=True`` returns ``(y, h)`` with h of shape (L, N).
        """
        t = _checks.time_grid(t, "t", increasing=True)
        L = t.shape[0]
        if h0 is None:
            h = np.zeros(self.N)
        else:
            h = _checks.array(h0, "h0", shape=(self.N,), shape_doc=f"(N,) = ({self.N},)", min_size=0)
        H = np.empty((L, self.N))
        if callable(x):
            def xvec(s):
                v = np.asarray(x(s), dtype=np.float64).reshape(-1)
                if v.shape != (self.M,):
                    raise ValueError(f"x(t) must return {self.M} value(s), got shape {v.shape}")
                return v

            Xs = np.stack([xvec(s) for s in t])
            if L == 1:
                H[0] = h
            else:
                sol = scipy.integrate.solve_ivp(
                    lambda s, z: self.A @ z + self.B @ xvec(s), (t[0], t[-1]), h,
                    method="DOP853", t_eval=t, rtol=1e-10, atol=1e-12)
                if not sol.success:  # pragma: no cover
                    raise RuntimeError(sol.message)
                H[:] = sol.y.T
        else:
            Xs = self._input_array(x, L)
            if method not in ("exact", "ode"):
                raise ValueError(f"method must be 'exact' or 'ode', got {method!r}")
            H[0] = h
            for k in range(L - 1):
                dt = t[k + 1] - t[k]
                if method == "exact":
                    Ab, Bb = zoh(self.A, self.B, dt)
                    h = Ab @ h + Bb @ Xs[k]
                else:
                    u = Xs[k]
                    sol = scipy.integrate.solve_ivp(
                        lambda s, z: self.A @ z + self.B @ u, (0.0, dt), h,
                        method="DOP853", rtol=1e-12, atol=1e-14)
                    if not sol.success:  # pragma: no cover
                        raise RuntimeError(sol.message)
                    h = sol.y[:, -1]
                H[k + 1] = h
        y = H @ self.C.T + Xs @ self.D.T
        y = self._out(y)
        return (y, H) if return_state else y


# ----------------------------------------------------------------------------- discrete views
def _check_discrete(Ab, Bb, C):
    """The matrices of a discrete SISO system: ``Ab (N, N)``, ``Bb (N,)``, ``C (N,)``, float64."""
    Ab = _checks.square_matrix(Ab, "Ab", min_size=0)
    N = Ab.shape[0]
    Bb = _checks.array(Bb, "Bb", shape=(N,), shape_doc=f"(N,) = ({N},) (one input)", min_size=0)
    C = _checks.array(C, "C", shape=(N,), shape_doc=f"(N,) = ({N},) (one output)", min_size=0)
    return Ab, Bb, C


def recurrence(Ab, Bb, C, x, D: float = 0.0, h0=None):
    """The recurrent view (SISO): h_k = Ab h_{k-1} + Bb x_k, y_k = C h_k + D x_k, h_{-1} = h0 (0).

    Ab (N, N), Bb (N,), C (N,), x (L,).  A plain float64 loop; returns y of shape (L,).
    """
    Ab, Bb, C = _check_discrete(Ab, Bb, C)
    x = _checks.array(x, "x", ndim=1, shape_doc="(L,)", min_size=0)
    D = _checks.real_scalar(D, "D")
    N = Ab.shape[0]
    h = np.zeros(N) if h0 is None else _checks.array(h0, "h0", shape=(N,), shape_doc=f"(N,) = ({N},)", min_size=0)
    y = np.empty(x.shape[0])
    for k in range(x.shape[0]):
        h = Ab @ h + Bb * x[k]
        y[k] = C @ h + D * x[k]
    return y


def recurrence_diag(ab, bb, c, x):
    """Fast path of :func:`recurrence` for a diagonal Ab = diag(ab) (SISO, D = 0, h_{-1} = 0).

    ab, bb, c: (N,) real or complex; x: (L,) real.  Each mode is the first-order filter
    h_k = ab h_{k-1} + bb x_k, run by ``scipy.signal.lfilter``; returns y_k = Re(Σ c h_k) when the
    inputs are complex (conjugate-pair modes), else y_k = Σ c h_k.  Shape (L,).
    """
    import scipy.signal

    ab = _checks.array(ab, "ab", ndim=1, shape_doc="(N,)", complex_ok=True)
    N = ab.shape[0]
    bb = _checks.array(bb, "bb", shape=(N,), shape_doc=f"(N,) = ({N},)", complex_ok=True, min_size=0)
    c = _checks.array(c, "c", shape=(N,), shape_doc=f"(N,) = ({N},)", complex_ok=True, min_size=0)
    x = _checks.array(x, "x", ndim=1, shape_doc="(L,)", min_size=0)
    y = np.zeros(x.shape[0], dtype=np.result_type(ab, bb, c, np.float64))
    for n in range(N):
        y = y + c[n] * scipy.signal.lfilter([bb[n]], [1.0, -ab[n]], x)
    return y.real if np.iscomplexobj(y) else y


def kernel(Ab, Bb, C, L: int):
    """The convolutional view (SISO): K_k = C Ab^k Bb for k = 0..L-1, so y = K * x.  Shape (L,)."""
    Ab, Bb, C = _check_discrete(Ab, Bb, C)
    L = _checks.positive_int(L, "L")
    return s4_kernel(Ab, Bb, C, int(L))   # the matrix-power loop of chapter 4 (ssmbook.s4.kernel)


def causal_convolve(K, x):
    """y_k = Σ_{j≤k} K_j x_{k-j} for 1-D K and x of the same length L (direct sum, float64)."""
    K = _checks.array(K, "K", ndim=1, shape_doc="(L,)", min_size=0)
    x = _checks.array(x, "x", shape=K.shape, shape_doc=f"(L,) = {K.shape} (K's shape)", min_size=0)
    return np.convolve(K, x)[: x.shape[0]]


# ----------------------------------------------------------------------------- examples
def spring_mass_damper(m: float = 1.0, k: float = 4.0, c: float = 0.8) -> ContinuousSSM:
    """A mass m on a spring (stiffness k) with damping c, pushed by a force x(t).

    State h = (position, velocity); output y = position.  h' = [[0, 1], [-k/m, -c/m]] h + [0, 1/m] x.
    A negative c pumps energy in (chapter 2's unstable example), so any finite k and c are valid.
    """
    m = _checks.positive_scalar(m, "m")
    k = _checks.real_scalar(k, "k")           # any sign: negative k or c make unstable demos
    c = _checks.real_scalar(c, "c")
    A = np.array([[0.0, 1.0], [-k / m, -c / m]])
    return ContinuousSSM(A, np.array([0.0, 1.0 / m]), np.array([1.0, 0.0]))


def diagonal_ssm(N: int, slowest: float = 0.1, fastest: float = 1.0) -> ContinuousSSM:
    """A SISO model with N decaying modes: A = −diag(rates), rates geometric from ``fastest`` down
    to ``slowest`` (N = 1 keeps only ``slowest``); B = 1, C = 1/N, so K(t) = mean(exp(−rate·t))."""
    N = _checks.positive_int(N, "N")
    slowest = _checks.positive_scalar(slowest, "slowest")
    fastest = _checks.positive_scalar(fastest, "fastest")
    if slowest > fastest:
        raise ValueError(f"slowest must be <= fastest, got slowest={slowest}, fastest={fastest}")
    rates = np.array([slowest]) if N == 1 else np.geomspace(fastest, slowest, N)
    return ContinuousSSM(-np.diag(rates), np.ones(N), np.full(N, 1.0 / N))


# ----------------------------------------------------------------------------- frequency domain
def transfer_function(ssm: ContinuousSSM, s) -> np.ndarray:
    """H(s) = C (sI − A)⁻¹ B + D at the complex frequencies ``s`` (a scalar or a 1-D array).

    For Re s larger than every Re λ(A), H(s) is the Laplace transform ∫₀^∞ K(t) e^{−st} dt of the
    impulse response K(t) = C e^{tA} B (plus D); on the imaginary axis of a stable system,
    H(iω) is the system's frequency response.  Returns complex values of shape ``s.shape`` for a
    SISO model, else ``s.shape + (P, M)``.  Each s is a linear solve (no inverse is formed); an
    s that is an eigenvalue of A raises ValueError.
    """
    if not isinstance(ssm, ContinuousSSM):
        raise TypeError(f"ssm must be a ContinuousSSM, got {type(ssm).__name__}")
    s_arr = _checks.array(s, "s", ndim=(0, 1), shape_doc="() or (K,) (a number or a 1-D array of numbers)",
                          complex_ok=True, min_size=0)
    flat = np.atleast_1d(s_arr).astype(complex)
    eye = np.eye(ssm.N)
    out = np.empty((flat.shape[0], ssm.P, ssm.M), dtype=complex)
    for k, sk in enumerate(flat):
        M = sk * eye - ssm.A
        if np.linalg.cond(M) > 1e14:
            raise ValueError(f"s = {sk} is (numerically) an eigenvalue of A: H(s) has a pole there")
        out[k] = ssm.C @ np.linalg.solve(M, ssm.B) + ssm.D
    if ssm.siso:
        out = out[:, 0, 0]
    return out.reshape(s_arr.shape + out.shape[1:])


# ----------------------------------------------------------------------------- linear-Gaussian SSM
def kalman_filter(F, H, Q, R, obs, m0, P0):
    """The Kalman filter of the linear-Gaussian state-space model

        z_t = F z_{t-1} + w_t,  w_t ~ N(0, Q);     o_t = H z_t + v_t,  v_t ~ N(0, R);
        z_1 ~ N(F m0, F P0 Fᵀ + Q)  (the prior m0, P0 is for a "z_0" before the first step).

    The continuous-state analogue of the HMM forward pass: the filtering distribution
    p(z_t | o_{1:t}) stays Gaussian, N(m_t, P_t), with the predict/update recursion

        m⁻ = F m_{t-1},  P⁻ = F P_{t-1} Fᵀ + Q,  S = H P⁻ Hᵀ + R,  K_t = P⁻ Hᵀ S⁻¹,
        m_t = (I − K_t H) F m_{t-1} + K_t o_t,     P_t = (I − K_t H) P⁻.

    The mean obeys a linear recurrence m_t = Ā_t m_{t-1} + B̄_t o_t with Ā_t = (I − K_t H) F and
    B̄_t = K_t.  Shapes: F, Q (n, n); H (p, n); R (p, p); obs (T, p); m0 (n,); P0 (n, n).
    Returns ``(means (T, n), covs (T, n, n), gains (T, n, p), loglik)`` where ``loglik`` is
    log p(o_{1:T}) = Σ_t log N(o_t; H m⁻, S).
    """
    F = _checks.square_matrix(F, "F", shape_doc="(n, n)")
    n = F.shape[0]
    H = _checks.array(H, "H", ndim=2, shape_doc=f"(p, n) with n = {n}")
    if H.shape[1] != n:
        raise ValueError(f"H must have shape (p, n) with n = {n}, got shape {H.shape}")
    p = H.shape[0]
    Q, R, P0, m0 = (_checks.array(v, name, shape=shape, shape_doc=str(shape))
                    for name, v, shape in (("Q", Q, (n, n)), ("R", R, (p, p)), ("P0", P0, (n, n)), ("m0", m0, (n,))))
    obs = _checks.array(obs, "obs", ndim=2, shape_doc=f"(T, p) with T >= 1 and p = {p}", min_size=0)
    if obs.shape[1] != p or obs.shape[0] < 1:
        raise ValueError(f"obs must have shape (T, p) with T >= 1 and p = {p}, got shape {obs.shape}")
    T = obs.shape[0]
    means, covs, gains = np.empty((T, n)), np.empty((T, n, n)), np.empty((T, n, p))
    m, P, loglik = m0, P0, 0.0
    for t in range(T):
        m_pred, P_pred = F @ m, F @ P @ F.T + Q
        S = H @ P_pred @ H.T + R
        K = np.linalg.solve(S, H @ P_pred).T          # P⁻ Hᵀ S⁻¹ (S and P⁻ symmetric)
        resid = obs[t] - H @ m_pred
        loglik += -0.5 * (p * np.log(2 * np.pi) + np.linalg.slogdet(S)[1]
                          + resid @ np.linalg.solve(S, resid))
        m = m_pred + K @ resid
        P = (np.eye(n) - K @ H) @ P_pred
        means[t], covs[t], gains[t] = m, P, K
    return means, covs, gains, float(loglik)
