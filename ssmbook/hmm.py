"""Discrete hidden Markov models: the book's first linear recurrence.

A hidden state ``z_t`` in ``{0, ..., N-1}`` follows a Markov chain and emits a symbol ``o_t`` in
``{0, ..., M-1}``:

* ``pi[i]     = P(z_1 = i)``                  initial distribution, shape ``(N,)``
* ``A[i, j]   = P(z_t = j | z_{t-1} = i)``    transition matrix, shape ``(N, N)``, rows sum to 1
* ``B[i, k]   = P(o_t = k | z_t = i)``        emission matrix, shape ``(N, M)``, rows sum to 1

The forward variable ``alpha_t[i] = P(o_1..o_t, z_t = i)`` obeys the linear, time-varying recurrence

    alpha_1 = diag(b(o_1)) pi,     alpha_t = diag(b(o_t)) A^T alpha_{t-1},

where ``b(k) = B[:, k]``: the transition matrix of this linear system is *selected by the
observation* out of ``M`` possible matrices (:meth:`HMM.observation_operators`), and the whole pass
is a product of matrices, hence an associative scan (:meth:`HMM.forward_as_scan`).

Everything here is float64 numpy.  Time runs along axis 0 (``T`` steps).  Besides the model, the
module has the brute-force enumerators used as oracles in the tests and in chapter 1
(:func:`brute_force_likelihood`, :func:`brute_force_posterior`, :func:`brute_force_viterbi`) and
the "dishonest casino" model of Durbin et al. (:func:`dishonest_casino`).
"""
from __future__ import annotations

import itertools

import numpy as np

from . import _checks

__all__ = [
    "HMM",
    "brute_force_likelihood",
    "brute_force_posterior",
    "brute_force_viterbi",
    "combine_scaled",
    "dishonest_casino",
    "log_matmul",
    "prefix_products",
    "tree_scan",
]

PROB_ATOL = _checks.PROB_ATOL
BRUTE_FORCE_MAX_PATHS = 2_000_000


def _log(x: np.ndarray) -> np.ndarray:
    """log with log(0) = -inf and no warning."""
    with np.errstate(divide="ignore"):
        return np.log(x)


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    """log(sum(exp(x))) along ``axis``, exact for all -inf slices (result -inf), no warnings."""
    m = np.max(x, axis=axis, keepdims=True)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - m_safe), axis=axis, keepdims=True)) + m_safe
    return np.squeeze(out, axis=axis)


# --------------------------------------------------------------------------------------------
# the associative scan of matrix products, in a stable (matrix, log-scale) form
# --------------------------------------------------------------------------------------------
def _normalize(mats: np.ndarray, logs: np.ndarray):
    """Rescale each matrix so its largest entry is 1; move the scale into ``logs``."""
    peak = mats.max(axis=(-2, -1))
    zero = peak <= 0
    peak = np.where(zero, 1.0, peak)
    mats = mats / peak[..., None, None]
    logs = logs + np.log(peak)
    logs = np.where(zero, -np.inf, logs)
    return mats, logs


def _scaled_pair(pair, name: str):
    """``pair`` as ``(mats, logs)``: numpy arrays of shapes ``(..., N, N)`` and ``(...)`` (shapes only)."""
    if not (isinstance(pair, tuple) and len(pair) == 2
            and all(isinstance(v, np.ndarray) for v in pair)):
        raise TypeError(f"{name} must be a pair (mats, logs) of numpy arrays, got {type(pair).__name__}")
    mats, logs = pair
    if mats.ndim < 2 or mats.shape[-1] != mats.shape[-2] or logs.shape != mats.shape[:-2]:
        raise ValueError(f"{name} must be (mats, logs) with shapes (..., N, N) and (...), "
                         f"got {mats.shape} and {logs.shape}")
    return mats, logs


def combine_scaled(earlier, later):
    """The scan operator on scaled matrices: ``(X, r) o (Y, s) = normalize(Y @ X, r + s)``.

    Each argument is a pair ``(mats, logs)`` of batches ``(..., N, N)`` and ``(...)`` standing for
    ``exp(logs) * mats`` with ``max(mats) == 1``; ``later`` is applied after ``earlier`` (the operand
    order of every scan operator in the package: earlier, later).  The result represents the exact
    product ``exp(r + s) * Y @ X`` in the same form, so the operator inherits the associativity of
    matrix multiplication.
    """
    (x, r), (y, s) = _scaled_pair(earlier, "earlier"), _scaled_pair(later, "later")
    if y.shape[:-2] != x.shape[:-2] or y.shape[-1] != x.shape[-2]:
        raise ValueError(f"earlier and later must hold batches of matrices that multiply, "
                         f"got {x.shape} and {y.shape}")
    return _normalize(y @ x, s + r)


def prefix_products(mats: np.ndarray, logs: np.ndarray | None = None):
    """Inclusive prefix products ``P_t = M_t M_{t-1} ... M_0`` by a pairwise (tree) scan.

    Each matrix is carried as ``exp(log_scale) * mat`` with ``max(mat) == 1`` so that products of
    100 000 matrices neither underflow nor overflow.  The scan pairs neighbours
    (``M_1 M_0``, ``M_3 M_2``, ...), recurses on the half-length sequence of pair products, and then
    fills in the even positions: ``O(T)`` matrix products in ``O(log T)`` vectorised rounds.
    Matrix multiplication is associative, which is all the regrouping needs.

    ``mats``: ``(T, N, N)`` non-negative float64; ``logs``: ``(T,)`` (default zeros).
    Returns ``(P, log_scale)`` with the true product equal to ``exp(log_scale[t]) * P[t]``.
    """
    mats = _checks.array(mats, "mats", ndim=3, shape_doc="(T, N, N)", min_size=0)
    if mats.shape[0] < 1 or mats.shape[1] != mats.shape[2]:
        raise ValueError(f"mats must have shape (T, N, N) with T >= 1, got shape {mats.shape}")
    if np.any(mats < 0):
        raise ValueError("mats must be non-negative (the scaled form keeps a positive scale)")
    if logs is None:
        logs = np.zeros(mats.shape[0])
    logs = _checks.array(logs, "logs", finite=False, min_size=0)
    if logs.shape != mats.shape[:1]:
        raise ValueError(f"logs must have shape ({mats.shape[0]},), got shape {logs.shape}")
    mats, logs = _normalize(mats, logs)
    return tree_scan(mats, logs)


def _normalize_log(logmats: np.ndarray, logs: np.ndarray):
    """Log-space twin of :func:`_normalize`: shift each log-matrix so its largest entry is 0."""
    peak = logmats.max(axis=(-2, -1))
    zero = ~np.isfinite(peak)
    peak = np.where(zero, 0.0, peak)
    return logmats - peak[..., None, None], np.where(zero, -np.inf, logs + peak)


def _combine_log(earlier, later):
    """The scan operator on log-matrices: every entry keeps its own exponent, none underflows."""
    (x, r), (y, s) = earlier, later
    return _normalize_log(_log_matmul(y, x), s + r)


def tree_scan(mats, logs, combine=combine_scaled):
    """Inclusive prefix products of ``(mats, logs)`` (already normalised) by the pairwise tree.

    ``combine(earlier, later)`` is the operator (:func:`combine_scaled`, or its log-space twin);
    :func:`prefix_products` checks and normalises its input and then calls this; here only the
    shapes are checked, ``mats`` ``(T, N, N)`` and ``logs`` ``(T,)``, so each level stays cheap.
    """
    if not isinstance(mats, np.ndarray) or mats.ndim != 3 or mats.shape[0] < 1 or mats.shape[1] != mats.shape[2]:
        raise ValueError(f"mats must be a numpy array of shape (T, N, N) with T >= 1, "
                         f"got {_checks.describe(mats)}")
    if not isinstance(logs, np.ndarray) or logs.shape != mats.shape[:1]:
        raise ValueError(f"logs must be a numpy array of shape ({mats.shape[0]},), got {_checks.describe(logs)}")
    if not callable(combine):
        raise TypeError(f"combine must be callable (earlier, later) -> (mats, logs), got {type(combine).__name__}")
    # --- the tree ---
    T = mats.shape[0]
    if T == 1:
        return mats, logs
    half = T // 2
    # pair products: Q_k = M_{2k+1} M_{2k}
    q, ql = combine((mats[0:2 * half:2], logs[0:2 * half:2]), (mats[1:2 * half:2], logs[1:2 * half:2]))
    rq, rql = tree_scan(q, ql, combine)  # rq[k] = prefix product up to index 2k+1
    out = np.empty_like(mats)
    out_l = np.empty_like(logs)
    out[1:2 * half:2], out_l[1:2 * half:2] = rq, rql
    out[0], out_l[0] = mats[0], logs[0]
    if T > 2:
        # even positions 2k (k >= 1): M_{2k} times the prefix up to 2k-1
        idx = np.arange(2, T, 2)
        e, el = combine((rq[(idx // 2) - 1], rql[(idx // 2) - 1]), (mats[idx], logs[idx]))
        out[idx], out_l[idx] = e, el
    return out, out_l


def _log_matmul(X, Y):
    return _logsumexp(X[..., :, :, None] + Y[..., None, :, :], axis=-2)


def log_matmul(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Matrix product in log space: ``log(exp(X) @ exp(Y))``, computed stably (broadcasts batch dims).

    ``X`` (..., n, k) and ``Y`` (..., k, m) float64 log-values (``-inf`` = log 0 allowed, NaN not).
    """
    X = _checks.array(X, "X", shape_doc="(..., n, k)", finite=False, min_size=0)
    Y = _checks.array(Y, "Y", shape_doc="(..., k, m)", finite=False, min_size=0)
    if X.ndim < 2:
        raise ValueError(f"X must have shape (..., n, k) (at least 2 dims), got shape {X.shape}")
    if Y.ndim < 2:
        raise ValueError(f"Y must have shape (..., k, m) (at least 2 dims), got shape {Y.shape}")
    if X.shape[-1] != Y.shape[-2]:
        raise ValueError(f"X must have as many columns as Y has rows (X (..., n, k), Y (..., k, m)), "
                         f"got X {X.shape} and Y {Y.shape}")
    if np.any(np.isposinf(X)) or np.any(np.isposinf(Y)):
        raise ValueError("X and Y must be log-values below +inf (a +inf entry has no finite product)")
    try:
        np.broadcast_shapes(X.shape[:-2], Y.shape[:-2])
    except ValueError:
        raise ValueError(f"X and Y must have broadcastable batch dims, got X {X.shape} and Y {Y.shape}") from None
    return _log_matmul(X, Y)


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------
class HMM:
    """A discrete HMM with ``N`` hidden states and ``M`` observation symbols.

    ``pi`` ``(N,)``, ``A`` ``(N, N)`` with ``A[i, j] = P(z_t=j | z_{t-1}=i)``, ``B`` ``(N, M)`` with
    ``B[i, k] = P(o=k | z=i)``.  Each of ``pi``, the rows of ``A`` and the rows of ``B`` must be a
    probability vector (non-negative, summing to 1 within 1e-8); otherwise ``ValueError``.
    """

    def __init__(self, pi, A, B):
        A = _checks.square_matrix(A, "A")
        N = A.shape[0]
        B = _checks.array(B, "B", ndim=2, shape_doc=f"({N}, M)", min_size=0)
        if B.shape[0] != N or B.shape[1] < 1:
            raise ValueError(f"B must have shape ({N}, M) with M >= 1 (one row per state of A), got shape {B.shape}")
        pi = _checks.probability_vector(pi, "pi", N)
        _checks.probabilities(A, "A", "each row A[i] is P(z_t | z_{t-1}=i)")
        _checks.probabilities(B, "B", "each row B[i] is P(o | z=i)")
        self.pi, self.A, self.B = pi, A, B
        self.N, self.M = N, B.shape[1]
        self.log_pi, self.log_A, self.log_B = _log(pi), _log(A), _log(B)

    def __repr__(self):
        return f"HMM(N={self.N} hidden states, M={self.M} symbols)"

    # -- input checks -------------------------------------------------------------------------
    def check_obs(self, obs) -> np.ndarray:
        """``obs`` as a 1-D int64 array of symbols in ``[0, M)``; ``ValueError`` otherwise."""
        return _checks.index_array(obs, "obs", self.M, what="symbols", bound_doc="M = B.shape[1]")

    def check_states(self, states) -> np.ndarray:
        """``states`` as a 1-D int64 array of hidden states in ``[0, N)``; ``ValueError`` otherwise."""
        return _checks.index_array(states, "states", self.N, what="hidden states", bound_doc="N = A.shape[0]",
                                   min_size=0)

    def _prior(self, prior) -> np.ndarray:
        return self.pi if prior is None else _checks.probability_vector(prior, "prior", self.N)

    # -- generating data ----------------------------------------------------------------------
    def sample(self, T: int, seed=None):
        """Draw ``(states, obs)``, two int64 arrays of length ``T``, with ``numpy.random.default_rng(seed)``."""
        T = _checks.positive_int(T, "T")
        rng = np.random.default_rng(seed)
        u = rng.random(T)
        cum_pi, cum_A = np.cumsum(self.pi), np.cumsum(self.A, axis=1)
        states = np.empty(T, dtype=np.int64)
        # inverse-CDF sampling: the first index whose cumulative probability exceeds u
        z = min(int(np.searchsorted(cum_pi, u[0], side="right")), self.N - 1)
        states[0] = z
        for t in range(1, T):
            z = min(int(np.searchsorted(cum_A[z], u[t], side="right")), self.N - 1)
            states[t] = z
        cum_B = np.cumsum(self.B, axis=1)[states]                   # (T, M)
        v = rng.random(T)
        obs = np.minimum((cum_B <= v[:, None]).sum(axis=1), self.M - 1).astype(np.int64)
        return states, obs

    # -- the forward pass ---------------------------------------------------------------------
    def forward_unscaled(self, obs) -> np.ndarray:
        """The textbook forward pass ``alpha_t[i] = P(o_1..o_t, z_t=i)``, ``(T, N)``, with no scaling.

        Shown in chapter 1 because it underflows: ``alpha_t`` shrinks geometrically and becomes 0.0
        after a few hundred steps.
        """
        obs = self.check_obs(obs)
        alpha = np.empty((obs.shape[0], self.N))
        alpha[0] = self.pi * self.B[:, obs[0]]
        for t in range(1, obs.shape[0]):
            alpha[t] = self.B[:, obs[t]] * (self.A.T @ alpha[t - 1])
        return alpha

    def forward(self, obs, prior=None):
        """Scaled forward pass: ``(alpha_hat, c)``.

        ``alpha_hat[t] = P(z_t | o_1..o_t)`` (rows sum to 1) and ``c[t] = P(o_t | o_1..o_{t-1})``, so
        ``log P(o) = sum(log c)``.  ``prior`` replaces ``pi`` as the distribution of ``z_1`` (so that a
        pass over a long sequence can continue chunk by chunk).  If the sequence is impossible under the
        model (``c[t] == 0``) the pass stops there: ``c[t:] = 0`` and ``alpha_hat[t:] = nan``.
        """
        obs = self.check_obs(obs)
        p = self._prior(prior)
        T = obs.shape[0]
        alpha = np.full((T, self.N), np.nan)
        c = np.zeros(T)
        BT, AT = self.B.T, self.A.T
        a = p * BT[obs[0]]
        for t in range(T):
            if t > 0:
                a = BT[obs[t]] * (AT @ alpha[t - 1])
            s = a.sum()
            if s <= 0.0:
                break
            c[t] = s
            alpha[t] = a / s
        return alpha, c

    def log_forward(self, obs, prior=None) -> np.ndarray:
        """Log-space forward pass: ``log alpha_t[i] = log P(o_1..o_t, z_t=i)``, ``(T, N)`` (-inf allowed)."""
        obs = self.check_obs(obs)
        p = self._prior(prior)
        T = obs.shape[0]
        la = np.empty((T, self.N))
        la[0] = _log(p) + self.log_B[:, obs[0]]
        for t in range(1, T):
            la[t] = _logsumexp(la[t - 1][:, None] + self.log_A, axis=0) + self.log_B[:, obs[t]]
        return la

    def log_likelihood(self, obs, method: str = "scaled", prior=None) -> float:
        """``log P(o_1..o_T)``; ``method`` is ``"scaled"`` (sum of log c_t), ``"log"`` or ``"scan"``.

        Returns ``-inf`` for an impossible sequence.
        """
        if method == "scaled":
            _, c = self.forward(obs, prior=prior)
            return float(np.sum(_log(c)))
        if method == "log":
            return float(_logsumexp(self.log_forward(obs, prior=prior)[-1], axis=0))
        if method == "scan":
            return float(self.forward_as_scan(obs, prior=prior)[1][-1])
        raise ValueError(f"method must be 'scaled', 'log' or 'scan', got {method!r}")

    # -- the backward pass and posteriors -----------------------------------------------------
    def backward(self, obs, c=None) -> np.ndarray:
        """Scaled backward pass ``beta_hat``, ``(T, N)``, with the forward pass's constants ``c``.

        ``beta_t[i] = P(o_{t+1}..o_T | z_t=i)`` and ``beta_hat_t = beta_t / (c_{t+1} ... c_T)``, so that
        ``alpha_hat_t * beta_hat_t = P(z_t | o_1..o_T)``.  ``c`` defaults to ``forward(obs)[1]``.
        """
        obs = self.check_obs(obs)
        T = obs.shape[0]
        if c is None:
            c = self.forward(obs)[1]
        c = np.asarray(c, dtype=np.float64)
        if c.shape != (T,):
            raise ValueError(f"c must have shape ({T},) (one constant per observation), got shape {c.shape}")
        if np.any(c <= 0):
            raise ValueError("obs has probability zero under this model (a scaling constant c_t is 0)")
        beta = np.empty((T, self.N))
        beta[-1] = 1.0
        for t in range(T - 2, -1, -1):
            beta[t] = self.A @ (self.B[:, obs[t + 1]] * beta[t + 1]) / c[t + 1]
        return beta

    def log_backward(self, obs) -> np.ndarray:
        """Log-space backward pass ``log beta_t[i] = log P(o_{t+1}..o_T | z_t=i)``, ``(T, N)``."""
        obs = self.check_obs(obs)
        T = obs.shape[0]
        lb = np.empty((T, self.N))
        lb[-1] = 0.0
        for t in range(T - 2, -1, -1):
            lb[t] = _logsumexp(self.log_A + (self.log_B[:, obs[t + 1]] + lb[t + 1])[None, :], axis=1)
        return lb

    def _forward_backward(self, obs):
        obs = self.check_obs(obs)
        alpha, c = self.forward(obs)
        if np.any(c <= 0):
            raise ValueError("obs has probability zero under this model: its posterior is undefined")
        return obs, alpha, c, self.backward(obs, c)

    def posterior(self, obs) -> np.ndarray:
        """``gamma[t, i] = P(z_t = i | o_1..o_T)``, ``(T, N)``, rows summing to 1."""
        _, alpha, _, beta = self._forward_backward(obs)
        gamma = alpha * beta
        return gamma / gamma.sum(axis=1, keepdims=True)  # already 1 up to rounding

    def pairwise_posterior(self, obs) -> np.ndarray:
        """``xi[t, i, j] = P(z_t = i, z_{t+1} = j | o_1..o_T)``, ``(T-1, N, N)`` (used by Baum-Welch)."""
        obs, alpha, c, beta = self._forward_backward(obs)
        right = (self.B[:, obs[1:]].T * beta[1:]) / c[1:, None]            # (T-1, N)
        return alpha[:-1, :, None] * self.A[None] * right[:, None, :]

    # -- decoding -----------------------------------------------------------------------------
    def log_joint(self, states, obs) -> float:
        """``log P(z_1..z_T = states, o_1..o_T = obs)``."""
        obs = self.check_obs(obs)
        z = self.check_states(states)
        if z.shape != obs.shape:
            raise ValueError(f"states must have the same shape as obs {obs.shape}, got {z.shape}")
        return float(self.log_pi[z[0]] + self.log_A[z[:-1], z[1:]].sum() + self.log_B[z, obs].sum())

    def viterbi(self, obs):
        """Most probable hidden path: ``(path, log P(path, obs))`` by max-product dynamic programming."""
        obs = self.check_obs(obs)
        T = obs.shape[0]
        delta = self.log_pi + self.log_B[:, obs[0]]
        back = np.zeros((T, self.N), dtype=np.int64)
        for t in range(1, T):
            scores = delta[:, None] + self.log_A          # scores[i, j]: best path ending i, then i -> j
            back[t] = np.argmax(scores, axis=0)
            delta = scores[back[t], np.arange(self.N)] + self.log_B[:, obs[t]]
        path = np.empty(T, dtype=np.int64)
        path[-1] = int(np.argmax(delta))
        for t in range(T - 1, 0, -1):
            path[t - 1] = back[t, path[t]]
        return path, float(delta[path[-1]])

    # -- the forward pass as a linear system and as a scan -------------------------------------
    def observation_operators(self) -> np.ndarray:
        """The ``M`` matrices ``M_k = diag(B[:, k]) A^T``, ``(M, N, N)``: ``alpha_t = M_{o_t} alpha_{t-1}``."""
        return self.B.T[:, :, None] * self.A.T[None, :, :]

    def transition_matrices(self, obs) -> np.ndarray:
        """The time-varying transition matrices of the forward recurrence, ``(T-1, N, N)``.

        Entry ``t-1`` is ``diag(b(o_t)) A^T`` for ``t = 2..T`` (0-based: for ``obs[1:]``): the
        observation *selects* one of :meth:`observation_operators`.
        """
        obs = self.check_obs(obs)
        return self.observation_operators()[obs[1:]]

    def forward_as_scan(self, obs, prior=None):
        """The forward pass as an associative scan of matrix products: ``(alpha_hat, log_prefix)``.

        ``alpha_t = P_t alpha_1`` with ``P_t = M_t M_{t-1} ... M_2`` (:meth:`transition_matrices`);
        the prefix products come from the same pairwise tree as :func:`prefix_products`, carried
        in log space (every entry keeps its exponent, so long near-deterministic chains stay exact).
        ``alpha_hat[t] = P(z_t | o_1..o_t)`` as in :meth:`forward` and
        ``log_prefix[t] = log P(o_1..o_t)`` (so ``log_prefix[-1]`` is the log-likelihood).
        """
        obs = self.check_obs(obs)
        p = self._prior(prior)
        T = obs.shape[0]
        a1 = p * self.B[:, obs[0]]
        s1 = a1.sum()
        alpha = np.full((T, self.N), np.nan)
        log_prefix = np.full(T, -np.inf)
        if s1 <= 0:
            return alpha, log_prefix
        alpha[0], log_prefix[0] = a1 / s1, np.log(s1)
        if T > 1:
            # The pairwise tree in log space: each entry of each product keeps its own exponent,
            # so the entries this forward pass uses survive however far they fall below the
            # largest one (a scaled product, max entry 1, would round them to 0 after a few
            # hundred near-deterministic steps).
            log_M = _log(self.transition_matrices(obs))
            lP, lscale = tree_scan(*_normalize_log(log_M, np.zeros(T - 1)), _combine_log)
            la = _logsumexp(lP + _log(alpha[0])[None, None, :], axis=2) + lscale[:, None]  # (T-1, N)
            ls = _logsumexp(la, axis=1)
            ok = np.isfinite(ls)
            alpha[1:][ok] = np.exp(la[ok] - ls[ok, None])
            log_prefix[1:] = np.where(ok, ls + log_prefix[0], -np.inf)
        return alpha, log_prefix


# --------------------------------------------------------------------------------------------
# brute force: sum / maximise over all N**T hidden paths (the oracles)
# --------------------------------------------------------------------------------------------
def _all_paths(hmm: HMM, obs) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(hmm, HMM):
        raise ValueError(f"hmm must be an HMM, got {type(hmm).__name__}")
    obs = hmm.check_obs(obs)
    T = obs.shape[0]
    if hmm.N ** T > BRUTE_FORCE_MAX_PATHS:
        raise ValueError(f"obs is too long for brute force: N**T = {hmm.N}**{T} paths "
                         f"(limit {BRUTE_FORCE_MAX_PATHS})")
    return obs, np.array(list(itertools.product(range(hmm.N), repeat=T)), dtype=np.int64)


def _path_probabilities(hmm: HMM, obs, paths) -> np.ndarray:
    """P(z = path, o = obs) for every path, as plain products of probabilities."""
    p = hmm.pi[paths[:, 0]] * hmm.B[paths[:, 0], obs[0]]
    for t in range(1, obs.shape[0]):
        p = p * hmm.A[paths[:, t - 1], paths[:, t]] * hmm.B[paths[:, t], obs[t]]
    return p


def brute_force_likelihood(hmm: HMM, obs) -> float:
    """``P(o_1..o_T) = sum over all N**T paths z of P(z, o)`` (not the log), by enumeration."""
    obs, paths = _all_paths(hmm, obs)
    return float(_path_probabilities(hmm, obs, paths).sum())


def brute_force_posterior(hmm: HMM, obs) -> np.ndarray:
    """``P(z_t = i | o)``, ``(T, N)``, by enumerating all paths."""
    obs, paths = _all_paths(hmm, obs)
    p = _path_probabilities(hmm, obs, paths)
    total = p.sum()
    if total <= 0:
        raise ValueError("obs has probability zero under this model: its posterior is undefined")
    gamma = np.zeros((obs.shape[0], hmm.N))
    for t in range(obs.shape[0]):
        np.add.at(gamma[t], paths[:, t], p)
    return gamma / total


def brute_force_viterbi(hmm: HMM, obs):
    """The best path by enumeration: ``(path, log P(path, obs))``."""
    obs, paths = _all_paths(hmm, obs)
    p = _path_probabilities(hmm, obs, paths)
    k = int(np.argmax(p))
    return paths[k].copy(), float(_log(p[k]))


# --------------------------------------------------------------------------------------------
# a standard example
# --------------------------------------------------------------------------------------------
def dishonest_casino(p_fair_to_loaded: float = 0.05, p_loaded_to_fair: float = 0.1,
                     p_six_loaded: float = 0.5) -> HMM:
    """The "occasionally dishonest casino" of Durbin et al. (1998, ch. 3): state 0 = fair die,
    state 1 = loaded die; symbols 0..5 stand for faces 1..6.  The loaded die shows a six with
    probability ``p_six_loaded`` and each other face with ``(1 - p_six_loaded) / 5``.
    """
    p_fair_to_loaded = _checks.probability(p_fair_to_loaded, "p_fair_to_loaded")
    p_loaded_to_fair = _checks.probability(p_loaded_to_fair, "p_loaded_to_fair")
    p_six_loaded = _checks.probability(p_six_loaded, "p_six_loaded")
    A = np.array([[1 - p_fair_to_loaded, p_fair_to_loaded],
                  [p_loaded_to_fair, 1 - p_loaded_to_fair]])
    loaded = np.full(6, (1 - p_six_loaded) / 5)
    loaded[5] = p_six_loaded
    B = np.vstack([np.full(6, 1 / 6), loaded])
    return HMM(np.array([0.5, 0.5]), A, B)
