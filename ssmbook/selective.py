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

from . import _checks

__all__ = ["selective_scan", "selective_scan_ref", "check_inputs", "random_inputs", "MAX_STATE"]

#: The largest state size N the kernels accept (the whole state of a channel lives in one program).
MAX_STATE = _checks.SELECTIVE_MAX_STATE
_BACKENDS = ("auto", "torch", "triton", "ref")

#: Validate the arguments of a selective scan; returns ``(batch, dim, L, N, groups)`` (shared with
#: the Triton kernels, which must not import this module).
check_inputs = _checks.selective_scan_inputs


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
                   return_last_state=False, backend="auto", kernel_config=None):
    """Mamba's selective scan (semantics of the official ``selective_scan_fn``; see the module doc).

    ``backend``: ``"auto"`` (Triton on CUDA tensors, torch elsewhere, and for bfloat16 on a GPU
    older than Ampere, with a warning), ``"torch"``, ``"triton"``
    (on CPU tensors through the Triton interpreter) or ``"ref"`` (the loop oracle).
    ``kernel_config``: a :class:`ssmbook.kernels.KernelConfig` choosing the Triton kernels and their
    launch parameters (None: the defaults); the other backends do not use it.
    Returns ``out`` ``(batch, dim, L)``, or ``(out, last_state)`` with ``last_state`` ``(batch, dim, N)``.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    check_inputs(u, delta, A, B, C, D, z, delta_bias)
    if kernel_config is not None:
        from . import kernels

        if not isinstance(kernel_config, kernels.KernelConfig):
            raise _checks.ArgumentTypeError(
                "kernel_config must be a ssmbook.kernels.KernelConfig or None, got "
                f"{type(kernel_config).__name__}")
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
    # ssmbook.kernels is imported on first use, not with this module: triton is an optional
    # dependency (Linux only) that the torch and ref paths do not need. Importing it switches on
    # the Triton interpreter on a machine without CUDA, before triton itself is imported.
    from . import kernels

    return kernels.selective_scan_triton(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                         return_last_state, config=kernel_config)
