"""Parallel prefix scans over any associative operator (chapter 6).

An *inclusive scan* of ``x_0, x_1, …, x_{L-1}`` under an associative operator ``∘`` returns the
prefixes ``s_t = x_0 ∘ x_1 ∘ … ∘ x_t``.  Here ``∘`` is written left to right in time: ``p ∘ q`` means
"first ``p``, then ``q``", and ``op(p, q)`` computes it.  The book's recurrence
``h_t = a_t h_{t-1} + b_t`` is such a scan over the pairs ``(a_t, b_t)`` with the first-order operator

    (a₁, b₁) ∘ (a₂, b₂) = (a₂ a₁, a₂ b₁ + b₂),

so everything here applies to every model of the book (HMM forward pass, S4, Mamba, RWKV).

Three algorithms compute the same prefixes:

* :func:`sequential`: ``L − 1`` combines, one after the other (depth ``L − 1``).
* :func:`hillis_steele`: at step ``k = 1, 2, 4, …`` every position ``t ≥ k`` combines with
  position ``t − k``; ``⌈log₂ L⌉`` steps, ``Σ_k (L − k)`` combines (``O(L log L)`` work).
* :func:`blelloch`: an up-sweep that combines neighbours pairwise into a tree of block totals,
  then a down-sweep that fills in the prefixes the tree is missing (the inclusive,
  identity-free form of Blelloch's work-efficient scan, also known as Brent–Kung): fewer than
  ``2L`` combines in about ``2 log₂ L`` steps.

Elements are a tensor, or a tuple of tensors, whose axis ``axis`` indexes time; every other axis is
part of the element (or a batch of independent scans).  ``op`` must be *vectorised*: it receives two
such structures whose time axis has been moved to the front, of equal length, and combines them
position by position.  Any length ``L ≥ 1`` works, not only powers of two.

Pass ``stats=ScanStats()`` to count combine operations and depth (the instrumented mode), and
``ScanStats(keep=True)`` to also keep the partial results after every level (for drawing them).
"""
from __future__ import annotations

import dataclasses

import torch

from . import _checks

__all__ = [
    "ScanStats", "sequential", "hillis_steele", "blelloch", "scan", "linear_recurrence",
    "linear_recurrence_ref", "affine_op", "add_op", "matmul_op", "maxplus_op", "interval_op",
    "trace_intervals", "work_closed_form", "depth_closed_form", "METHODS",
]


# --------------------------------------------------------------------------------------------------
# Instrumentation
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class ScanStats:
    """Counts of one scan: ``combines`` (element-wise applications of ``op``) and ``depth`` (levels of
    combines that depend on each other; every level is one vectorised call of ``op``).

    ``levels`` lists, for each level, ``(phase, positions written)``; with ``keep=True`` also the
    elements after that level (``states``, each with time at axis 0).
    """

    keep: bool = False
    combines: int = 0
    depth: int = 0
    levels: list = dataclasses.field(default_factory=list)
    states: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        for name in ("combines", "depth"):
            _checks.positive_int(getattr(self, name), name, minimum=0)

    def _record(self, phase, positions, state):
        self.combines += len(positions)
        self.depth += 1
        self.levels.append((phase, list(positions)))
        if self.keep:
            self.states.append(tuple(t.detach().clone() for t in state))


def work_closed_form(method: str, L: int) -> int:
    """Number of combines each algorithm performs on ``L`` elements (derived in chapter 6).

    * sequential: ``L − 1``;
    * Hillis–Steele: ``Σ_{k=1,2,4,…<L} (L − k) = L·⌈log₂ L⌉ − (2^⌈log₂ L⌉ − 1)``;
    * Blelloch: up-sweep ``L − popcount(L)``, down-sweep ``L − 1 − ⌊log₂ L⌋``
      (``2L − 2 − log₂ L`` when ``L`` is a power of two).
    """
    L = _checks.positive_int(L, "L")
    if method == "sequential":
        return L - 1
    if method == "hillis_steele":
        c = (L - 1).bit_length()  # ⌈log₂ L⌉
        return L * c - (2 ** c - 1)
    if method == "blelloch":
        return (L - bin(L).count("1")) + (L - 1 - (L.bit_length() - 1))
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def depth_closed_form(method: str, L: int) -> int:
    """Number of dependent levels: ``L − 1``; ``⌈log₂ L⌉``; ``⌊log₂ L⌋ + ⌊log₂(L/3)⌋ + 1`` (``L ≥ 3``)."""
    L = _checks.positive_int(L, "L")
    if method == "sequential":
        return L - 1
    if method == "hillis_steele":
        return (L - 1).bit_length()
    if method == "blelloch":
        up = L.bit_length() - 1                       # ⌊log₂ L⌋ levels of pairwise combines
        down = (L // 3).bit_length() if L >= 3 else 0  # levels with some 3·2^(j−1) ≤ L
        return up + down
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


# --------------------------------------------------------------------------------------------------
# Element handling
# --------------------------------------------------------------------------------------------------
def _as_tuple(xs, axis, op=None):
    """Validate ``xs`` (tensor or tuple of tensors); return (tuple with time at axis 0, was_tensor)."""
    if not callable(op):
        raise ValueError(f"op must be a callable combine (p, q) -> p ∘ q, got {type(op).__name__}")
    single = isinstance(xs, torch.Tensor)
    parts = (xs,) if single else xs
    if not isinstance(parts, (tuple, list)) or len(parts) == 0:
        raise ValueError(f"xs must be a tensor or a non-empty tuple of tensors, got {type(xs).__name__}")
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise ValueError(f"axis must be an int, got {axis!r}")
    out = []
    L = None
    for i, t in enumerate(parts):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"xs[{i}] must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() == 0 or not -t.dim() <= axis < t.dim():
            raise ValueError(f"axis must be in [-{t.dim()}, {t.dim()}) (xs[{i}] has shape {tuple(t.shape)}), "
                             f"got {axis}")
        t = t.movedim(axis, 0)
        if L is None:
            L = t.shape[0]
        elif t.shape[0] != L:
            raise ValueError(f"every tensor of xs must have the same length L={L} along axis {axis}, "
                             f"xs[{i}] has {t.shape[0]}")
        out.append(t)
    if L == 0:
        raise ValueError("xs must have length L >= 1 along the scan axis, got 0")
    return tuple(out), single, L


def _from_tuple(parts, single, axis):
    parts = tuple(t.movedim(0, axis) for t in parts)
    return parts[0] if single else parts


def _apply(op, p, q, single):
    """Call ``op`` on tuples (or bare tensors for single-tensor scans); return a tuple."""
    r = op(p[0], q[0]) if single else op(p, q)
    r = (r,) if single else tuple(r)
    if len(r) != len(p) or any(a.shape != b.shape for a, b in zip(r, q)):
        raise ValueError("op must return elements of the shape it was given "
                         f"(got {[tuple(a.shape) for a in r]}, expected {[tuple(b.shape) for b in q]})")
    return r


def _write(state, index, values):
    """Out-of-place ``state[index] = values`` (keeps autograd happy)."""
    new = []
    for t, v in zip(state, values):
        t = t.clone()
        t[index] = v.to(t.dtype)
        new.append(t)
    return tuple(new)


# --------------------------------------------------------------------------------------------------
# The three scans
# --------------------------------------------------------------------------------------------------
def sequential(op, xs, axis=0, stats: ScanStats | None = None):
    """The oracle: ``s_0 = x_0``, ``s_t = op(s_{t−1}, x_t)``; ``L − 1`` combines in ``L − 1`` levels."""
    parts, single, L = _as_tuple(xs, axis, op)
    prefix = tuple(t[0:1] for t in parts)
    out = [prefix]
    for t in range(1, L):
        prefix = _apply(op, prefix, tuple(x[t:t + 1] for x in parts), single)
        out.append(prefix)
        if stats is not None:
            state = ()
            if stats.keep:  # prefixes up to t, untouched inputs after it
                state = tuple(torch.cat(list(c) + [x[t + 1:]], 0) for c, x in zip(zip(*out), parts))
            stats._record("sequential", [t], state)
    result = tuple(torch.cat(c, 0) for c in zip(*out))
    return _from_tuple(result, single, axis)


def hillis_steele(op, xs, axis=0, stats: ScanStats | None = None):
    """Hillis–Steele: for ``k = 1, 2, 4, … < L``, every ``t ≥ k`` becomes ``op(s_{t−k}, s_t)``."""
    parts, single, L = _as_tuple(xs, axis, op)
    k = 1
    while k < L:
        earlier = tuple(t[:L - k] for t in parts)
        later = tuple(t[k:] for t in parts)
        combined = _apply(op, earlier, later, single)
        parts = tuple(torch.cat([t[:k], c.to(t.dtype)], 0) for t, c in zip(parts, combined))
        if stats is not None:
            stats._record(f"k={k}", range(k, L), parts)
        k *= 2
    return _from_tuple(parts, single, axis)


def blelloch(op, xs, axis=0, stats: ScanStats | None = None):
    """Work-efficient inclusive scan: up-sweep (pairwise block totals), then down-sweep (fill in).

    Up-sweep, ``h = 1, 2, 4, …``: position ``i`` with ``i + 1`` a multiple of ``2h`` becomes
    ``op(x_{i−h}, x_i)``; afterwards it holds the total of the ``2h`` elements ending at ``i``.
    Down-sweep, ``h`` from large to ``1``: position ``i`` with ``i + 1`` an odd multiple of ``h``
    (beyond the first) becomes ``op(x_{i−h}, x_i)``, where ``x_{i−h}`` is already a full prefix.
    """
    parts, single, L = _as_tuple(xs, axis, op)
    h = 1
    while 2 * h <= L:                                  # up-sweep
        idx = slice(2 * h - 1, L, 2 * h)
        src = slice(h - 1, L - h, 2 * h)
        n = len(range(*idx.indices(L)))
        earlier = tuple(t[src][:n] for t in parts)
        later = tuple(t[idx] for t in parts)
        parts = _write(parts, idx, _apply(op, earlier, later, single))
        if stats is not None:
            stats._record(f"up h={h}", range(*idx.indices(L)), parts)
        h *= 2
    h //= 2
    while h >= 1:                                      # down-sweep
        idx = slice(3 * h - 1, L, 2 * h)
        positions = range(*idx.indices(L))
        if len(positions) > 0:
            src = slice(2 * h - 1, L - h, 2 * h)
            earlier = tuple(t[src][:len(positions)] for t in parts)
            later = tuple(t[idx] for t in parts)
            parts = _write(parts, idx, _apply(op, earlier, later, single))
            if stats is not None:
                stats._record(f"down h={h}", positions, parts)
        h //= 2
    return _from_tuple(parts, single, axis)


METHODS = {"sequential": sequential, "hillis_steele": hillis_steele, "blelloch": blelloch}


def scan(op, xs, axis=0, method="blelloch", stats: ScanStats | None = None):
    """Inclusive scan of ``xs`` under ``op`` with one of :data:`METHODS`."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    return METHODS[method](op, xs, axis=axis, stats=stats)


# --------------------------------------------------------------------------------------------------
# Operators
# --------------------------------------------------------------------------------------------------
def _operand(x, name):
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor (an element of the scan), got {type(x).__name__}")
    return x


def _pair(x, name, what):
    if not (isinstance(x, (tuple, list)) and len(x) == 2):
        raise ValueError(f"{name} must be a pair of tensors {what}, got {type(x).__name__}")
    return x


def _matrices(p, q):
    for name, x in (("p", p), ("q", q)):
        if _operand(x, name).dim() < 2:
            raise ValueError(f"{name} must be a (batch of) matrices (..., n, m), got shape {tuple(x.shape)}")
    if q.shape[-1] != p.shape[-2]:
        raise ValueError(f"q must have as many columns as p has rows (q @ p: q (..., n, k), p (..., k, m)), "
                         f"got q {tuple(q.shape)} and p {tuple(p.shape)}")


def add_op(p, q):
    """Prefix sums: ``p ∘ q = p + q``."""
    _operand(p, "p"), _operand(q, "q")
    return p + q


def affine_op(p, q):
    """The first-order operator ``(a₁, b₁) ∘ (a₂, b₂) = (a₂ a₁, a₂ b₁ + b₂)``.

    ``(a, b)`` is the affine map ``h ↦ a h + b``; ``∘`` applies the first map, then the second.
    """
    a1, b1 = _pair(p, "p", "(a, b)")
    a2, b2 = _pair(q, "q", "(a, b)")
    return a2 * a1, a2 * b1 + b2


def matmul_op(p, q):
    """Matrices acting on column vectors, first ``p`` then ``q``: ``p ∘ q = q @ p``."""
    _matrices(p, q)
    return q @ p


def maxplus_op(p, q):
    """Max-plus (tropical) matrix product, first ``p`` then ``q``: ``(p ∘ q)[i, j] = max_k q[i, k] + p[k, j]``.

    The Viterbi recursion is this scan, as the HMM forward pass is the (sum, product) one.
    """
    _matrices(p, q)
    return (q[..., :, :, None] + p[..., None, :, :]).amax(dim=-2)


def interval_op(p, q):
    """Symbolic operator on index intervals ``[lo, hi]``: ``[l₁, h₁] ∘ [l₂, h₂] = [l₁, h₂]``.

    Associative, and it raises if the two intervals are not adjacent (``h₁ + 1 = l₂``): a scan that
    combined anything out of order would be caught.  The drawings of which partial results exist use it.
    """
    lo1, hi1 = _pair(p, "p", "(lo, hi)")
    lo2, hi2 = _pair(q, "q", "(lo, hi)")
    if not bool(torch.all(hi1 + 1 == lo2)):
        raise ValueError("interval_op combined intervals that are not adjacent")
    return lo1, hi2


def trace_intervals(L: int, method: str = "blelloch"):
    """Run ``method`` on the intervals ``[t, t]`` and return, level by level, what each position holds.

    Returns a list of ``(phase, positions written, lo, hi)`` (``lo``, ``hi``: int lists of length L),
    starting with the input (phase ``"input"``).
    """
    L = _checks.positive_int(L, "L")
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    t = torch.arange(L)
    stats = ScanStats(keep=True)
    METHODS[method](interval_op, (t.clone(), t.clone()), stats=stats)
    out = [("input", [], t.tolist(), t.tolist())]
    for (phase, pos), (lo, hi) in zip(stats.levels, stats.states):
        out.append((phase, pos, lo.tolist(), hi.tolist()))
    return out


# --------------------------------------------------------------------------------------------------
# The linear recurrence h_t = a_t h_{t-1} + b_t
# --------------------------------------------------------------------------------------------------
def _check_recurrence(a, b, h0):
    """``a``, ``b``: floating tensors of one shape ``(..., L)`` (L >= 1), dtype and device; ``h0``
    (optional): a tensor of shape ``a.shape[:-1]`` with a's dtype and device."""
    _checks.tensor(a, "a", shape_doc="(..., L)", complex_ok=True)
    if a.dim() == 0 or a.shape[-1] == 0:
        raise ValueError(f"a must have shape (..., L) with L >= 1, got {tuple(a.shape)}")
    _checks.same_layout(b, "b", a, "a", shape_doc="(..., L)")
    if h0 is not None:
        _checks.tensor(h0, "h0", shape=a.shape[:-1], shape_doc=f"a.shape[:-1] = {tuple(a.shape[:-1])}",
                       complex_ok=True)
        _checks.same_dtype_device(h0, "h0", a, what="a")


def linear_recurrence(a, b, h0=None, method="hillis_steele", stats: ScanStats | None = None):
    """``h_t = a_t h_{t−1} + b_t`` along the last axis (``h_{−1} = h0``, zero by default), by a scan.

    ``a``, ``b``: ``(..., L)`` of one floating dtype; ``h0``: ``(...)``.  Returns ``h`` ``(..., L)``.
    The initial state folds into the first element: ``b_0 ← a_0 h0 + b_0``.
    """
    _check_recurrence(a, b, h0)
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    if h0 is not None:
        b = torch.cat([(a[..., :1] * h0[..., None] + b[..., :1]), b[..., 1:]], dim=-1)
    _, h = METHODS[method](affine_op, (a, b), axis=-1, stats=stats)
    return h


def linear_recurrence_ref(a, b, h0=None):
    """The loop oracle for :func:`linear_recurrence`, computed in float64 (complex128 for complex input)."""
    _check_recurrence(a, b, h0)
    wide = torch.complex128 if a.is_complex() else torch.float64
    a64, b64 = a.to(wide), b.to(wide)
    h = torch.zeros(a.shape[:-1], dtype=wide, device=a.device) if h0 is None else h0.to(wide)
    out = []
    for t in range(a.shape[-1]):
        h = a64[..., t] * h + b64[..., t]
        out.append(h)
    return torch.stack(out, dim=-1)
