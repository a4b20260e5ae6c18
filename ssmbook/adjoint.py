"""The backward pass of the selective scan, derived by hand and written as a float64 loop.

Forward, for each batch element and channel d (x in the book's math is ``u`` here)::

    δ_t   = softplus(delta_t + bias)          (or delta_t + bias without softplus)
    a_t   = exp(δ_t A)                         (N,)   the discretised Ā_t
    h_t   = a_t ⊙ h_{t-1} + δ_t u_t B_t        (N,)   h_{-1} = 0
    y_t   = C_t · h_t + D u_t
    out_t = y_t · silu(z_t)

Given ``gout = ∂loss/∂out``, the chain rule gives, with ``gy_t = gout_t silu(z_t)``
(= ∂loss/∂y_t) and the adjoint state ``lam_t = ∂loss/∂h_t``::

    lam_t    = a_{t+1} ⊙ lam_{t+1} + gy_t C_t          (lam_{L-1} = gy_{L-1} C_{L-1})
    ∂z_t     = gout_t y_t silu'(z_t),  silu'(z) = σ(z)(1 + z(1 - σ(z)))
    ∂D       = Σ_{b,t} gy_t u_t
    ∂u_t     = δ_t (lam_t · B_t) + D gy_t
    g_loga   = lam_t ⊙ a_t ⊙ h_{t-1}                   (∂loss/∂(δ_t A), one per state)
    ∂A       = Σ_{b,t} δ_t g_loga
    ∂δ_t     = A · g_loga + u_t (lam_t · B_t)           (through Ā_t and through B̄_t)
    ∂delta_t = ∂δ_t σ(delta_t + bias)  with softplus, else ∂δ_t
    ∂bias    = Σ_{b,t} ∂delta_t
    ∂B_t     = Σ_d lam_t δ_t u_t                        (B is shared by the channels)
    ∂C_t     = Σ_d gy_t h_t

The names (``lam``, ``a_next``, ``h_cur``, ``h_prev``, ``g_loga``, ``dtu``, ``gy``) are those of
the Triton loop backward kernel in ``ssmbook.kernels``, which computes the same sums in float32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _checks
from .selective import check_inputs

__all__ = ["selective_scan_backward"]


def selective_scan_backward(u, delta, A, B, C, gout, D=None, z=None, delta_bias=None,
                            delta_softplus=False):
    """All eight gradients of ``selective_scan`` by the adjoint recurrence, in float64.

    Arguments as in :func:`ssmbook.selective.selective_scan` (u, delta, z (batch, dim, L);
    A (dim, N); B, C (batch, N, L) or (batch, groups, N, L); D, delta_bias (dim,)), plus
    ``gout`` (batch, dim, L), the gradient of the loss with respect to the output.  Returns a dict
    with keys ``u, delta, A, B, C, D, z, delta_bias`` (float64 tensors, None for an absent
    argument).  A loop over t, backwards: the slow, readable reference for the kernels.
    """
    batch, dim, L, N, groups = check_inputs(u, delta, A, B, C, D, z, delta_bias)
    _checks.tensor(gout, "gout", shape=(batch, dim, L), shape_doc=f"(batch, dim, L) = {(batch, dim, L)}")
    _checks.same_device(gout, "gout", u, "u")
    _checks.finite(gout, "gout")
    _checks.flag(delta_softplus, "delta_softplus")
    f64 = torch.float64
    u, A, gout = u.to(f64), A.to(f64), gout.to(f64)
    raw = delta.to(f64) + (0.0 if delta_bias is None else delta_bias.to(f64)[:, None])
    dt = F.softplus(raw) if delta_softplus else raw                      # δ (batch, dim, L)
    per = 1 if groups == 0 else dim // groups
    Bx = B.to(f64)[:, None] if groups == 0 else B.to(f64).repeat_interleave(per, dim=1)
    Cx = C.to(f64)[:, None] if groups == 0 else C.to(f64).repeat_interleave(per, dim=1)
    Bx = Bx.expand(batch, dim, N, L)                                     # (batch, dim, N, L)
    Cx = Cx.expand(batch, dim, N, L)

    # forward: every state h_t (hs[t + 1]; hs[0] = h_{-1} = 0) and the output y before the gate
    hs = [torch.zeros(batch, dim, N, dtype=f64, device=u.device)]
    for t in range(L):
        a = torch.exp(dt[..., t, None] * A)
        hs.append(a * hs[-1] + (dt[..., t] * u[..., t])[..., None] * Bx[..., t])
    H = torch.stack(hs[1:], dim=-1)                                      # (batch, dim, N, L)
    y = (H * Cx).sum(2) + (0.0 if D is None else D.to(f64)[:, None] * u)

    grads = dict.fromkeys(["u", "delta", "A", "B", "C", "D", "z", "delta_bias"])
    if z is not None:
        zf = z.to(f64)
        sig = torch.sigmoid(zf)
        gy = gout * zf * sig                                             # ∂loss/∂y = gout silu(z)
        grads["z"] = gout * y * sig * (1 + zf * (1 - sig))
    else:
        gy = gout
    if D is not None:
        grads["D"] = (gy * u).sum((0, 2))

    # backward: the adjoint recurrence, right to left
    lam = torch.zeros(batch, dim, N, dtype=f64, device=u.device)
    a_next = torch.zeros_like(lam)
    g_u, g_dt = torch.zeros_like(u), torch.zeros_like(u)
    g_A = torch.zeros(dim, N, dtype=f64, device=u.device)
    g_B, g_C = torch.zeros_like(Bx), torch.zeros_like(Cx)               # per channel, reduced below
    for t in reversed(range(L)):
        h_cur, h_prev = hs[t + 1], hs[t]
        dtu = dt[..., t] * u[..., t]
        lam = a_next * lam + gy[..., t, None] * Cx[..., t]               # λ_t
        a = torch.exp(dt[..., t, None] * A)                               # a_t = Ā_t
        g_loga = lam * a * h_prev                                         # ∂loss/∂(δ_t A)
        g_A += (g_loga * dt[..., t, None]).sum(0)
        lamB = (lam * Bx[..., t]).sum(-1)                                 # λ_t · B_t
        g_dt[..., t] = (g_loga * A).sum(-1) + u[..., t] * lamB
        g_u[..., t] = dt[..., t] * lamB
        g_B[..., t] = lam * dtu[..., None]
        g_C[..., t] = h_cur * gy[..., t, None]
        a_next = a
    if D is not None:
        g_u = g_u + D.to(f64)[:, None] * gy
    if delta_softplus:
        g_dt = g_dt * torch.sigmoid(raw)                                  # softplus' = σ
    grads.update(u=g_u, delta=g_dt, A=g_A)
    if delta_bias is not None:
        grads["delta_bias"] = g_dt.sum((0, 2))
    if groups == 0:
        grads["B"], grads["C"] = g_B.sum(1), g_C.sum(1)                   # summed over channels
    else:
        grads["B"] = g_B.reshape(batch, groups, per, N, L).sum(2)
        grads["C"] = g_C.reshape(batch, groups, per, N, L).sum(2)
    return grads
