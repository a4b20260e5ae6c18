"""The selective scan of Mamba (chapter 5): a linear recurrence whose Δ, B and C depend on the input.

For every batch element ``b``, channel ``d`` and state index ``n``::

    δ_t     = softplus(delta_t + delta_bias)          (or delta_t + delta_bias without softplus)
    h_t     = exp(δ_t A[d, n]) h_{t-1} + δ_t B_t[n] u_t          (zero-order hold for A, Euler for B)
    y_t     = Σ_n C_t[n] h_t[n] + D[d] u_t
    out_t   = y_t · silu(z_t)                           (only when z is given)

This is the book's recurrence ``h_t = Ā_t h_{t-1} + B̄_t x_t`` with ``Ā_t = exp(δ_t A)`` diagonal and
``B̄_t = δ_t B_t``, and it follows the semantics of the official Mamba ``selective_scan_fn``.

Shapes (the names of the paper: B batch, D channels, L length, N state size):

* ``u``, ``delta``, ``z``: ``(batch, dim, L)``; ``A``: ``(dim, N)`` real, ``N ≤ 256``;
* ``B``, ``C``: ``(batch, N, L)`` (shared by all channels) or ``(batch, groups, N, L)`` (channel ``d``
  uses group ``d // (dim // groups)``);
* ``D``, ``delta_bias``: ``(dim,)``; output ``(batch, dim, L)`` in the dtype of ``u``; the optional last
  state is ``(batch, dim, N)`` in float32 (float64 when ``u`` is float64).

Three implementations compute the same function:

* :func:`selective_scan_ref`: the oracle, a plain loop over ``t``; float64 when its inputs are float64.
* ``selective_scan(..., backend="torch")``: vectorised torch (all steps discretised at once, one fused
  multiply-add per step), differentiable by autograd; the fast path on a CPU.
* ``selective_scan(..., backend="triton")``: the Triton kernels of :mod:`ssmbook.kernels` (forward and
  backward), the default on CUDA; on a CPU they run under the Triton interpreter (slow, for teaching).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["selective_scan", "selective_scan_ref", "check_inputs", "random_inputs", "MAX_STATE"]

#: The largest state size N the kernels accept (the whole state of a channel lives in one program).
MAX_STATE = 256

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_BACKENDS = ("auto", "torch", "triton", "ref")


def _describe(t):
    return f"shape {tuple(t.shape)}, dtype {t.dtype}, device {t.device}"


def check_inputs(u, delta, A, B, C, D=None, z=None, delta_bias=None):
    """Validate the arguments of a selective scan; raise ``ValueError`` naming the culprit.

    Returns ``(batch, dim, L, N, groups)``, with ``groups = 0`` for the shared layout
    ``(batch, N, L)`` of B and C.
    """
    named = dict(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias)
    for name, t in named.items():
        if t is None and name in ("D", "z", "delta_bias"):
            continue
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in _FLOATS:
            raise ValueError(
                f"{name} must have a real floating dtype (float16, bfloat16, float32 or float64), "
                f"got {t.dtype}"
            )
    if u.dim() != 3:
        raise ValueError(f"u must have shape (batch, dim, L), got {_describe(u)}")
    batch, dim, L = u.shape
    if batch < 1 or dim < 1 or L < 1:
        raise ValueError(f"u must have batch, dim and L all ≥ 1, got shape {tuple(u.shape)}")
    # the first argument's layout first: A fixes dim, so u given as (batch, L, dim) is caught
    # here and reported as u's mistake, not as a mismatch of the arguments checked after it
    if A.dim() == 2 and A.shape[0] != dim and u.shape[2] == A.shape[0]:
        raise ValueError(
            f"u must have shape (batch, dim, L) with dim = A.shape[0] = {A.shape[0]}, got shape "
            f"{tuple(u.shape)}: it looks like (batch, L, dim); pass u.transpose(1, 2)")
    for name in ("delta", "z"):
        t = named[name]
        if t is not None and tuple(t.shape) != (batch, dim, L):
            raise ValueError(
                f"{name} must have shape (batch, dim, L) = {(batch, dim, L)}, got {_describe(t)}")
        if t is not None and t.dtype != u.dtype:
            raise ValueError(f"{name} must have the dtype of u ({u.dtype}), got {t.dtype}")
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"A must have shape (dim, N) = ({dim}, N), got {_describe(A)}")
    N = A.shape[1]
    if not 1 <= N <= MAX_STATE:
        raise ValueError(f"A must have shape (dim, N) with 1 ≤ N ≤ {MAX_STATE}, got N = {N}")
    for name in ("B", "C"):
        t = named[name]
        if t.dim() not in (3, 4):
            raise ValueError(f"{name} must have shape (batch, N, L) or (batch, groups, N, L), got {_describe(t)}")
        if t.dim() == 4 and (t.shape[1] < 1 or dim % t.shape[1] != 0):
            raise ValueError(f"{name} must have groups dividing dim = {dim}, got shape {tuple(t.shape)}")
        expected = (batch, N, L) if t.dim() == 3 else (batch, t.shape[1], N, L)
        if tuple(t.shape) != expected:
            layout = "(batch, N, L)" if t.dim() == 3 else "(batch, groups, N, L)"
            hint = ""
            if t.shape[-2:] == (L, N) and L != N:
                hint = f"; it looks like {layout[:-5]}L, N); pass {name}.transpose(-1, -2)"
            raise ValueError(f"{name} must have shape {layout} = {expected}, got {_describe(t)}{hint}")
    if B.shape != C.shape:
        raise ValueError(f"C must have the shape of B {tuple(B.shape)}, got {_describe(C)}")
    groups = 0 if B.dim() == 3 else B.shape[1]
    for name in ("D", "delta_bias"):
        t = named[name]
        if t is not None and tuple(t.shape) != (dim,):
            raise ValueError(f"{name} must have shape (dim,) = ({dim},), got {_describe(t)}")
    for name, t in named.items():
        if t is not None and t.device != u.device:
            raise ValueError(f"{name} must be on the device of u ({u.device}), got {t.device}")
    return batch, dim, L, N, groups


def _expand_bc(X, dim):
    """(batch, N, L) or (batch, G, N, L) -> a (batch, dim, N, L) view/copy: the matrix of every channel."""
    if X.dim() == 3:
        return X[:, None]  # broadcast over channels, no copy
    return X.repeat_interleave(dim // X.shape[1], dim=1)


def _compute_dtype(u):
    return torch.float64 if u.dtype == torch.float64 else torch.float32


def _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """Shared first step of the two torch implementations: upcast, add the bias, apply softplus."""
    cdt = _compute_dtype(u)
    dim = u.shape[1]
    delta = delta.to(cdt)
    if delta_bias is not None:
        delta = delta + delta_bias.to(cdt)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    Bx = _expand_bc(B.to(cdt), dim)
    Cx = _expand_bc(C.to(cdt), dim)
    return cdt, u.to(cdt), delta, A.to(cdt), Bx, Cx


def _finish(y, u, D, z, out_dtype):
    if D is not None:
        y = y + u * D.to(y.dtype)[:, None]
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y.to(out_dtype)


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False):
    """The oracle: the recurrence written as a plain loop over time, one step per iteration.

    Computes in float64 when ``u`` is float64, in float32 otherwise. Slow, obviously correct, and
    differentiable by autograd (the loop is recorded step by step).
    """
    check_inputs(u, delta, A, B, C, D, z, delta_bias)
    cdt, uc, dt, Ac, Bx, Cx = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    batch, dim, L = u.shape
    h = torch.zeros(batch, dim, A.shape[1], dtype=cdt, device=u.device)
    ys = []
    for t in range(L):
        dt_t = dt[:, :, t, None]                                  # (batch, dim, 1)
        Abar = torch.exp(dt_t * Ac)                               # (batch, dim, N)
        Bbar_u = dt_t * Bx[:, :, :, t] * uc[:, :, t, None]        # (batch, dim, N)
        h = Abar * h + Bbar_u
        ys.append((h * Cx[:, :, :, t]).sum(-1))                   # (batch, dim)
    y = torch.stack(ys, dim=-1)
    out = _finish(y, uc, D, z, u.dtype)
    return (out, h) if return_last_state else out


def _selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
    """Vectorised torch path: discretise every step at once, then a short loop over time.

    The discretisation (exp, products) and the read-out are single tensor operations over
    (L, batch, dim, N); only ``h = Ā_t h + B̄_t u_t`` runs step by step, one fused ``addcmul`` on
    contiguous slices per step. On a CPU, for the book's sizes, this beats a log-depth scan
    (more arithmetic and memory traffic) and autograd through it stays cheap (``unbind`` and
    ``stack`` instead of indexing, whose backward would write a full-size gradient per step).
    """
    cdt, uc, dt, Ac, Bx, Cx = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    dt_l = dt.permute(2, 0, 1)[..., None]                                 # (L, batch, dim, 1)
    Abar = torch.exp(dt_l * Ac)                                           # (L, batch, dim, N)
    Bbar_u = dt_l * uc.permute(2, 0, 1)[..., None] * Bx.permute(3, 0, 1, 2)  # (L, batch, dim, N)
    h = torch.zeros_like(Abar[0])
    hs = []
    for a_t, b_t in zip(Abar.unbind(0), Bbar_u.unbind(0)):
        h = torch.addcmul(b_t, a_t, h)
        hs.append(h)
    y = torch.einsum("lbdn,bdnl->bdl", torch.stack(hs), Cx)
    out = _finish(y, uc, D, z, u.dtype)
    return (out, h) if return_last_state else out


def random_inputs(batch, dim, L, N, groups=0, *, D=True, z=True, delta_bias=True,
                  delta_softplus=True, dtype=torch.float32, device="cpu", seed=None):
    """Random, well-scaled arguments for :func:`selective_scan` as a dict of keyword arguments.

    ``groups = 0`` gives B, C the shared layout ``(batch, N, L)``. A is negative (a stable system,
    decays in (0, 1)); without softplus delta is drawn positive, as a step size must be.
    Used by the tests and the chapter's demos.
    """
    from . import _checks

    batch, dim, L = (_checks.positive_int(v, n) for v, n in ((batch, "batch"), (dim, "dim"), (L, "L")))
    N = _checks.positive_int(N, "N", maximum=MAX_STATE)
    groups = _checks.positive_int(groups, "groups", minimum=0)
    if groups and dim % groups:
        raise ValueError(f"groups must divide dim = {dim} (0 for the shared layout), got {groups}")
    g = torch.Generator().manual_seed(seed if seed is not None else torch.seed())
    f64 = dict(generator=g, dtype=torch.float64)

    def cast(x):
        return x.to(dtype=dtype, device=device)

    def cast_param(x):  # A, D, delta_bias stay float32 with half-precision activations (as in Mamba)
        return x.to(dtype=torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype,
                    device=device)

    bc_shape = (batch, N, L) if groups == 0 else (batch, groups, N, L)
    if delta_softplus:
        delta = 0.5 * torch.randn(batch, dim, L, **f64) - 1.0
    else:
        delta = 0.05 + 0.5 * torch.rand(batch, dim, L, **f64)
    kw = dict(
        u=cast(torch.randn(batch, dim, L, **f64)),
        delta=cast(delta),
        A=cast_param(-(0.5 + 2.0 * torch.rand(dim, N, **f64))),
        B=cast(torch.randn(*bc_shape, **f64)),
        C=cast(torch.randn(*bc_shape, **f64)),
        D=cast_param(torch.randn(dim, **f64)) if D else None,
        z=cast(torch.randn(batch, dim, L, **f64)) if z else None,
        delta_bias=cast_param(0.2 * torch.rand(dim, **f64)) if delta_bias else None,
        delta_softplus=delta_softplus,
    )
    return kw


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, backend="auto"):
    """Mamba's selective scan (semantics of the official ``selective_scan_fn``; see the module doc).

    ``backend``: ``"auto"`` (Triton on CUDA tensors, torch elsewhere, and for bfloat16 on a GPU
    older than Ampere, with a warning), ``"torch"``, ``"triton"``
    (on CPU tensors through the Triton interpreter) or ``"ref"`` (the loop oracle).
    Returns ``out`` ``(batch, dim, L)``, or ``(out, last_state)`` with ``last_state`` ``(batch, dim, N)``.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    check_inputs(u, delta, A, B, C, D, z, delta_bias)
    if backend == "auto":
        backend = "triton" if u.is_cuda else "torch"
        if backend == "triton" and u.dtype == torch.bfloat16:
            from . import kernels

            if torch.bfloat16 not in kernels.triton_dtypes(u.device):
                # a GPU older than Ampere (e.g. Colab's T4): the torch path, which computes in float32
                import warnings

                warnings.warn(f"bfloat16 inputs on {torch.cuda.get_device_name(u.device)} (no bfloat16 "
                              "on this GPU): selective_scan uses the torch path; pass float16 or float32 "
                              "inputs for the Triton kernel", stacklevel=2)
                backend = "torch"
    if backend == "ref":
        return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if backend == "torch":
        return _selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                     return_last_state)
    if u.dtype == torch.float64:
        raise ValueError("u must be float32, float16 or bfloat16 for backend='triton', got torch.float64")
    from . import kernels  # imported late: sets TRITON_INTERPRET on CPU-only machines first

    return kernels.selective_scan_triton(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                         return_last_state)


def __getattr__(name):
    # ``ssmbook.selective.MambaBlock`` lives in ``ssmbook.mamba`` (which imports this module):
    # resolve it lazily so that neither import needs the other first.
    if name in ("MambaBlock", "MambaLM"):
        from . import mamba

        return getattr(mamba, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
