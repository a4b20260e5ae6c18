"""The delta rule: DeltaNet, Gated DeltaNet and RWKV-7's generalisation, as recurrences and in chunks.

Every layer here keeps, per head, a matrix state ``S`` of shape (d_v, d_k) and reads it with a
query, ``o_t = S_t q_t``.  They differ in how a token writes:

* linear attention:  ``S_t = S_{t-1} + v_t k_tᵀ``                       (:func:`linear_attention_ref`)
* delta rule:        ``S_t = S_{t-1} (I - β_t k_t k_tᵀ) + β_t v_t k_tᵀ``  (DeltaNet)
* gated delta rule:  ``S_t = α_t S_{t-1} (I - β_t k_t k_tᵀ) + β_t v_t k_tᵀ``  (Gated DeltaNet)
* RWKV-7:            ``S_t = S_{t-1} (diag(w_t) + a_t b_tᵀ) + v_t k_tᵀ``   (:func:`rwkv7_ref`)

:func:`delta_rule_ref` is the float64 loop oracle of the (gated) delta rule; :func:`delta_rule` is
the chunkwise-parallel algorithm (Yang et al. 2024): inside each chunk the product of the
Householder-like factors is folded into a unit lower-triangular solve (the UT form of the WY
representation), so only a loop over chunks remains.

Shapes: q, k (batch, heads, L, d_k), v (batch, heads, L, d_v), beta and gate (batch, heads, L),
states (batch, heads, d_v, d_k).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import _checks
from .lm import RMSNorm

__all__ = ["delta_rule", "delta_rule_ref", "linear_attention_ref", "rwkv7_ref", "delta_rule_flops",
           "DeltaNetBlock"]


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------
def _check_qkv(q, k, v, q_name="q"):
    _checks.tensor(q, q_name, shape_doc="(batch, heads, L, d_k)")
    if q.dim() != 4 or q.shape[2] < 1:
        raise ValueError(f"{q_name} must have shape (batch, heads, L, d_k) with L >= 1, got {tuple(q.shape)}")
    b, h, L, dk = q.shape
    _checks.tensor(k, "k", shape_doc=f"(batch, heads, L, d_k) = {(b, h, L, dk)}")
    _checks.tensor(v, "v", shape_doc=f"(batch, heads, L, d_v) = {(b, h, L)} + (d_v,)")
    if h != L and tuple(k.shape) == (b, L, h, dk) and v.dim() == 4 and tuple(v.shape[:3]) == (b, L, h):
        # k and v agree with each other and disagree with q by a swap of L and heads: q is wrong
        raise ValueError(f"{q_name} must have shape (batch, heads, L, d_k) = {(b, L, h, dk)} to match k and v, "
                         f"got {tuple(q.shape)} (it looks like (batch, L, heads, d_k); transpose axes 1 and 2)")
    if tuple(k.shape) != (b, h, L, dk):
        raise ValueError(f"k must have {q_name}'s shape (batch, heads, L, d_k) = {(b, h, L, dk)}, got {tuple(k.shape)}")
    _checks.tensor(v, "v", shape_doc=f"(batch, heads, L, d_v) = {(b, h, L)} + (d_v,)")
    if v.dim() != 4 or tuple(v.shape[:3]) != (b, h, L):
        raise ValueError(f"v must have shape (batch, heads, L, d_v) = {(b, h, L)} + (d_v,), got {tuple(v.shape)}")
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype or t.device != q.device:
            raise TypeError(f"{name} must have {q_name}'s dtype and device ({q.dtype}, {q.device}), "
                            f"got ({t.dtype}, {t.device})")
    for name, t in ((q_name, q), ("k", k), ("v", v)):
        _checks.finite(t, name)
    return b, h, L, dk, v.shape[-1]


def _check_seq(name, t, q, b, h, L):
    _checks.tensor(t, name, shape_doc=f"(batch, heads, L) = {(b, h, L)}")
    if tuple(t.shape) != (b, h, L):
        raise ValueError(f"{name} must have shape (batch, heads, L) = {(b, h, L)}, got {tuple(t.shape)}")
    if t.dtype != q.dtype or t.device != q.device:
        raise TypeError(f"{name} must have q's dtype and device ({q.dtype}, {q.device}), got ({t.dtype}, {t.device})")
    _checks.finite(t, name)


def _check_state(state, q, b, h, dv, dk):
    if state is None:
        return
    _checks.tensor(state, "initial_state", shape=(b, h, dv, dk),
                   shape_doc=f"(batch, heads, d_v, d_k) = {(b, h, dv, dk)}")
    _checks.same_device(state, "initial_state", q, "q")
    _checks.finite(state, "initial_state")


def _check_delta(q, k, v, beta, gate, initial_state, chunk=None, return_final_state=False):
    b, h, L, dk, dv = _check_qkv(q, k, v)
    _check_seq("beta", beta, q, b, h, L)
    if gate is not None:
        _check_seq("gate", gate, q, b, h, L)
        if not bool(torch.all((gate > 0) & (gate <= 1))):
            raise ValueError("gate must lie in (0, 1] (a decay factor α_t per head and step), "
                             f"got range [{gate.min().item():.3g}, {gate.max().item():.3g}]")
    _check_state(initial_state, q, b, h, dv, dk)
    if chunk is not None:
        _checks.positive_int(chunk, "chunk")
    _checks.flag(return_final_state, "return_final_state")
    return b, h, L, dk, dv


# --------------------------------------------------------------------------------------------
# loop oracles (float64)
# --------------------------------------------------------------------------------------------
def delta_rule_ref(q, k, v, beta, gate=None, initial_state=None, return_final_state=False):
    """The (gated) delta rule as a loop over time, in float64; returns q's dtype.

    ``S_t = α_t S_{t-1} (I - β_t k_t k_tᵀ) + β_t v_t k_tᵀ`` (α = 1 without a gate), ``o_t = S_t q_t``.
    Returns o (batch, heads, L, d_v) [and the final state (batch, heads, d_v, d_k) in float64].
    """
    b, h, L, dk, dv = _check_delta(q, k, v, beta, gate, initial_state,
                                   return_final_state=return_final_state)
    f64 = torch.float64
    q64, k64, v64, be = (t.to(f64) for t in (q, k, v, beta))
    al = torch.ones_like(be) if gate is None else gate.to(f64)
    S = (torch.zeros(b, h, dv, dk, dtype=f64, device=q.device) if initial_state is None
         else initial_state.to(f64))
    eye = torch.eye(dk, dtype=f64, device=q.device)
    out = []
    for t in range(L):
        kt, vt, bt = k64[:, :, t], v64[:, :, t], be[:, :, t, None, None]
        householder = eye - bt * kt[..., :, None] * kt[..., None, :]        # I - β k kᵀ
        S = al[:, :, t, None, None] * S @ householder + bt * vt[..., :, None] * kt[..., None, :]
        out.append((S @ q64[:, :, t, :, None])[..., 0])
    o = torch.stack(out, dim=2).to(q.dtype)
    return (o, S) if return_final_state else o


def linear_attention_ref(q, k, v, initial_state=None, return_final_state=False):
    """Linear attention without normalisation, ``S_t = S_{t-1} + v_t k_tᵀ``, ``o_t = S_t q_t``; float64 loop."""
    b, h, L, dk, dv = _check_qkv(q, k, v)
    _check_state(initial_state, q, b, h, dv, dk)
    _checks.flag(return_final_state, "return_final_state")
    f64 = torch.float64
    S = (torch.zeros(b, h, dv, dk, dtype=f64, device=q.device) if initial_state is None
         else initial_state.to(f64))
    out = []
    for t in range(L):
        S = S + v[:, :, t, :, None].to(f64) * k[:, :, t, None, :].to(f64)
        out.append((S @ q[:, :, t, :, None].to(f64))[..., 0])
    o = torch.stack(out, dim=2).to(q.dtype)
    return (o, S) if return_final_state else o


def rwkv7_ref(r, w, k, v, a, b, initial_state=None, return_final_state=False):
    """RWKV-7's state update as a float64 loop: ``S_t = S_{t-1} (diag(w_t) + a_t b_tᵀ) + v_t k_tᵀ``,
    output ``o_t = S_t r_t``.

    ``w`` (batch, heads, L, d_k) is the per-channel decay in (0, 1]; ``a`` (the "removal" key, which
    reads from the state what to take out) and ``b`` (where the removed content is written back)
    have k's shape.  The gated delta rule is the case ``w = α·1``, ``a = -k``, ``b = αβ k`` with
    the written key ``β k``; RWKV-6 (chapter 8) is ``a = b = 0``.
    """
    bsz, h, L, dk, dv = _check_qkv(r, k, v, q_name="r")
    for name, t in (("w", w), ("a", a), ("b", b)):
        _checks.tensor(t, name, shape_doc=f"(batch, heads, L, d_k) = {(bsz, h, L, dk)}")
        if tuple(t.shape) != (bsz, h, L, dk):
            raise ValueError(f"{name} must have shape (batch, heads, L, d_k) = {(bsz, h, L, dk)}, "
                             f"got {tuple(t.shape)}")
        if t.dtype != r.dtype or t.device != r.device:
            raise TypeError(f"{name} must have r's dtype and device ({r.dtype}, {r.device}), "
                            f"got ({t.dtype}, {t.device})")
        _checks.finite(t, name)
    if not bool(torch.all((w > 0) & (w <= 1))):
        raise ValueError("w must lie in (0, 1] (a decay per channel)")
    _check_state(initial_state, r, bsz, h, dv, dk)
    _checks.flag(return_final_state, "return_final_state")
    f64 = torch.float64
    r64, w64, k64, v64, a64, b64 = (t.to(f64) for t in (r, w, k, v, a, b))
    S = (torch.zeros(bsz, h, dv, dk, dtype=f64, device=r.device) if initial_state is None
         else initial_state.to(f64))
    out = []
    for t in range(L):
        Sa = (S @ a64[:, :, t, :, None])                                   # (b, h, d_v, 1)
        S = S * w64[:, :, t, None, :] + Sa * b64[:, :, t, None, :] + v64[:, :, t, :, None] * k64[:, :, t, None, :]
        out.append((S @ r64[:, :, t, :, None])[..., 0])
    o = torch.stack(out, dim=2).to(r.dtype)
    return (o, S) if return_final_state else o


# --------------------------------------------------------------------------------------------
# the chunkwise-parallel algorithm
# --------------------------------------------------------------------------------------------
def delta_rule(q, k, v, beta, gate=None, chunk=64, initial_state=None, return_final_state=False):
    """The (gated) delta rule in chunkwise-parallel form; same result as :func:`delta_rule_ref`.

    In a chunk that starts from the state ``S_0``, the token writes ``u_t = β_t (v_t - α_t S_{t-1} k_t)``
    satisfy the unit lower-triangular system ``(I + A) U = diag(β) (V - diag(γ) K S_0ᵀ)`` with
    ``A[t, i] = β_t (γ_t/γ_i) k_tᵀ k_i`` for ``i < t`` and ``γ_t = α_1 ⋯ α_t`` inside the chunk.
    Its solution ``U = T V - T diag(γ) K S_0ᵀ`` with ``T = (I + A)⁻¹ diag(β)`` is the UT form of the
    WY representation: ``T V`` and ``T diag(γ) K`` are computed for all chunks at once, only the
    state is passed from chunk to chunk.  Then ``O = diag(γ) Q S_0ᵀ + (tril(Q Kᵀ) ∘ Γ) U`` and
    ``S_end = γ_end S_0 + Uᵀ diag(γ_end/γ) K``.  The sequence is padded to a multiple of ``chunk``
    with β = 0, α = 1 (which leaves the state unchanged).
    """
    b, h, L, dk, dv = _check_delta(q, k, v, beta, gate, initial_state, chunk, return_final_state)
    dt = q.dtype
    chunk = min(chunk, L)                                                  # a short sequence is one chunk
    pad = (-L) % chunk
    logg = torch.zeros_like(beta) if gate is None else torch.log(gate)
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        beta, logg = F.pad(beta, (0, pad)), F.pad(logg, (0, pad))
    n = (L + pad) // chunk
    Qc, Kc, Vc = (t.reshape(b, h, n, chunk, t.shape[-1]) for t in (q, k, v))
    bc, gc = beta.reshape(b, h, n, chunk), logg.reshape(b, h, n, chunk)
    cum = torch.cumsum(gc, dim=-1)                                         # log γ_t inside each chunk
    rel = cum[..., :, None] - cum[..., None, :]                            # log(γ_t / γ_i)
    strict = torch.tril(torch.ones(chunk, chunk, dtype=torch.bool, device=q.device), diagonal=-1)
    incl = torch.tril(torch.ones(chunk, chunk, dtype=torch.bool, device=q.device))
    decay_strict = torch.exp(rel.masked_fill(~strict, -torch.inf))         # γ_t/γ_i for i < t, else 0
    decay_incl = torch.exp(rel.masked_fill(~incl, -torch.inf))             # the same for i <= t
    A = bc[..., :, None] * (Kc @ Kc.transpose(-1, -2)) * decay_strict
    eye = torch.eye(chunk, dtype=dt, device=q.device)
    gamma = torch.exp(cum)[..., None]
    rhs = torch.cat([bc[..., None] * Vc, bc[..., None] * gamma * Kc], dim=-1)
    TU = torch.linalg.solve_triangular(eye + A, rhs, upper=False, unitriangular=True)
    U0, W = TU[..., :dv], TU[..., dv:]                                     # T V and T diag(γ) K
    attn = (Qc @ Kc.transpose(-1, -2)) * decay_incl                        # tril(Q Kᵀ) ∘ Γ
    to_end = torch.exp(cum[..., -1:] - cum)[..., None] * Kc                # diag(γ_end/γ) K
    S = (q.new_zeros(b, h, dv, dk) if initial_state is None else initial_state.to(dt))
    outs = []
    for c in range(n):                                                     # the only sequential part
        Uc = U0[:, :, c] - W[:, :, c] @ S.transpose(-1, -2)               # (b, h, Q, d_v)
        outs.append(gamma[:, :, c] * (Qc[:, :, c] @ S.transpose(-1, -2)) + attn[:, :, c] @ Uc)
        S = torch.exp(cum[:, :, c, -1])[..., None, None] * S + Uc.transpose(-1, -2) @ to_end[:, :, c]
    o = torch.stack(outs, dim=2).reshape(b, h, L + pad, dv)[:, :, :L]
    return (o, S) if return_final_state else o


def delta_rule_flops(L, d_k, d_v, chunk):
    """Floating-point operations per head (a multiply-add counts 2) of the recurrent and the
    chunked delta rule.  Returns ``{"recurrent", "chunked_parallel", "chunked_sequential"}``: the
    chunked form's work done for all chunks at once (Gram matrices, the triangular solve, the
    attention-like product) and the work in its loop over chunks (the state passing)."""
    for name, val in (("L", L), ("d_k", d_k), ("d_v", d_v), ("chunk", chunk)):
        _checks.positive_int(val, name)
    Q, n = chunk, -(-L // chunk)
    rec = L * (2 * d_v * d_k + 2 * d_v * d_k + 2 * d_v * d_k)              # S k, rank-one update, S q
    par = n * (2 * Q * Q * d_k                                             # K Kᵀ
               + Q * Q * (d_v + d_k)                                       # forward substitution
               + 2 * Q * Q * d_k)                                          # Q Kᵀ
    seq = n * (2 * Q * d_k * d_v                                           # W S_0ᵀ
               + 2 * Q * d_k * d_v + 2 * Q * Q * d_v                       # Q S_0ᵀ, attn U
               + 2 * Q * d_k * d_v)                                        # Uᵀ K (the new state)
    return {"recurrent": rec, "chunked_parallel": par, "chunked_sequential": seq}


# --------------------------------------------------------------------------------------------
# a small layer (chapter 10 trains it on ssmbook.tasks.associative_recall_batch)
# --------------------------------------------------------------------------------------------
class DeltaNetBlock(nn.Module):
    """A token mixer with a matrix state per head: (batch, L, d_model) → (batch, L, d_model).

    q, k, v come from one projection and a short causal depthwise convolution (SiLU), q and k are
    L2-normalised, and ``rule`` picks the write: ``"linear"`` (linear attention), ``"delta"``
    (DeltaNet, β_t = sigmoid of a projection) or ``"gated"`` (Gated DeltaNet, plus α_t =
    exp(-softplus(·)) in (0, 1)).  The output of each head is RMS-normalised, then projected.
    The state size is ``n_heads · head_dim²`` numbers.
    """

    RULES = ("linear", "delta", "gated")

    def __init__(self, d_model: int, n_heads: int = 2, head_dim: int = 16, rule: str = "delta",
                 d_conv: int = 4, chunk: int = 64):
        super().__init__()
        for name, val in (("d_model", d_model), ("n_heads", n_heads), ("head_dim", head_dim),
                          ("d_conv", d_conv), ("chunk", chunk)):
            _checks.positive_int(val, name)
        _checks.one_of(rule, "rule", self.RULES)
        self.d_model, self.n_heads, self.head_dim, self.rule, self.chunk = d_model, n_heads, head_dim, rule, chunk
        inner = n_heads * head_dim
        self.qkv = nn.Linear(d_model, 3 * inner, bias=False)
        self.conv1d = nn.Conv1d(3 * inner, 3 * inner, d_conv, groups=3 * inner, padding=d_conv - 1)
        self.beta_proj = nn.Linear(d_model, n_heads) if rule != "linear" else None
        self.gate_proj = nn.Linear(d_model, n_heads) if rule == "gated" else None
        if self.gate_proj is not None:
            with torch.no_grad():
                self.gate_proj.bias.fill_(-4.0)                            # α ≈ 0.98 at the start
        self.norm = RMSNorm(head_dim)
        self.out_proj = nn.Linear(inner, d_model, bias=False)

    def forward(self, x):
        _checks.module_input(x, "x", self, ndim=3, shape_doc=f"(batch, L, d_model={self.d_model})",
                             last=self.d_model)
        bsz, L, _ = x.shape
        h, p = self.n_heads, self.head_dim
        qkv = F.silu(self.conv1d(self.qkv(x).transpose(1, 2))[..., :L]).transpose(1, 2)
        q, k, v = (t.reshape(bsz, L, h, p).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        if self.rule == "linear":
            beta, gate = torch.ones(bsz, h, L, dtype=x.dtype, device=x.device), None
            o = _linear_attention_chunked(q, k, v)
        else:
            beta = torch.sigmoid(self.beta_proj(x)).transpose(1, 2)
            gate = (torch.exp(-F.softplus(self.gate_proj(x))).transpose(1, 2)
                    if self.rule == "gated" else None)
            o = delta_rule(q, k, v, beta, gate, chunk=self.chunk)
        o = self.norm(o).transpose(1, 2).reshape(bsz, L, h * p)
        return self.out_proj(o)


def _linear_attention_chunked(q, k, v):
    """Causal linear attention by one masked matmul (sequences here are short)."""
    L = q.shape[2]
    mask = torch.tril(torch.ones(L, L, dtype=torch.bool, device=q.device))
    return ((q @ k.transpose(-1, -2)) * mask) @ v
