"""RWKV: attention rewritten as a linear recurrence (chapter 8).

RWKV-4's time mixing computes, for every channel ``c`` separately,

    wkv_t = (sum_{i<t} e^{-(t-1-i) w + k_i} v_i + e^{u + k_t} v_t)
            / (sum_{i<t} e^{-(t-1-i) w + k_i}     + e^{u + k_t})

with a decay rate ``w`` and a bonus ``u`` (one of each per channel).  It is a softmax-weighted
average of past values whose logits are the keys minus a penalty that grows linearly with the
distance, so numerator and denominator are two first-order linear recurrences
``h_t = e^{-w} h_{t-1} + e^{k_{t-1}} v_{t-1}``: the scan of chapter 6 again.

This module holds

* WKV-4 in four forms: :func:`wkv_reference` (the definition, float64 loops: the oracle),
  :func:`wkv_naive` (the recurrence on raw exponentials: overflows), :func:`wkv_recurrent`
  (the recurrence with a running maximum of exponents: stable), :func:`wkv_parallel` (the
  attention-like L x L form) and :func:`wkv_chunked` (parallel inside chunks, recurrent across);
* WKV-6, the matrix-valued state with a data-dependent decay: :func:`wkv6_reference`,
  :func:`wkv6_recurrent`, :func:`wkv6_parallel`, :func:`wkv6_chunked`;
* the layers: :class:`TimeMix` (RWKV-4), :class:`TimeMix6` (RWKV-6 style), :class:`ChannelMix`,
  :class:`RWKVBlock` and a tiny language model :class:`RWKVLM` with a recurrent ``step`` mode.

The chapter's attention baseline is in :mod:`ssmbook.baselines`, its corpus and training run in
:mod:`ssmbook.tasks`, its memory and operator counts in :mod:`ssmbook.measure`.

Shapes follow the batch-first convention of the RWKV papers: ``k, v`` are ``(batch, T, C)``;
``w, u`` are ``(C,)``.  A WKV-4 state is a tuple ``(num, den, p)`` of ``(batch, C)`` tensors that
stands for numerator ``num * e^p`` and denominator ``den * e^p``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import _checks

__all__ = [
    "wkv_reference", "wkv_naive", "wkv_recurrent", "wkv_parallel", "wkv_chunked", "wkv_init_state",
    "wkv6_reference", "wkv6_recurrent", "wkv6_parallel", "wkv6_chunked",
    "TimeMix", "TimeMix6", "ChannelMix", "RWKVBlock", "RWKVLM",
]


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------
def _check_wkv_args(w, u, k, v):
    for name, x in (("k", k), ("v", v), ("w", w), ("u", u)):
        _checks.tensor(x, name)
    if k.dim() != 3:
        raise ValueError(f"k must have shape (batch, T, C), got {tuple(k.shape)}")
    B, T, C = k.shape
    if w.dim() == 1 and u.dim() == 1 and w.shape == u.shape and C != w.shape[0] and T == w.shape[0]:
        raise ValueError(f"k must have shape (batch, T, C) with C = len(w) = {w.shape[0]}, got "
                         f"{tuple(k.shape)}: it looks like (batch, C, T); pass k.transpose(1, 2)")
    if T < 1 or B < 1:
        raise ValueError(f"k must have at least one time step (T >= 1) and batch >= 1, got shape {tuple(k.shape)}")
    if v.shape != k.shape:
        raise ValueError(f"v must have the shape of k (batch, T, C) = {tuple(k.shape)}, got {tuple(v.shape)}")
    for name, x in (("w", w), ("u", u)):
        if x.shape != (C,):
            raise ValueError(f"{name} must have shape (C,) = ({C},), got {tuple(x.shape)}")
    for name, x in (("v", v), ("w", w), ("u", u)):
        if x.dtype != k.dtype:
            raise ValueError(f"{name} must have the dtype of k ({k.dtype}), got {x.dtype}")
        if x.device != k.device:
            raise ValueError(f"{name} must be on the device of k ({k.device}), got {x.device}")
    return B, T, C


def _check_wkv_state(state, B, C, dtype):
    if state is None:
        return None
    if not (isinstance(state, (tuple, list)) and len(state) == 3):
        raise ValueError("state must be a tuple (num, den, p) of (batch, C) tensors")
    for name, s in zip(("num", "den", "p"), state):
        _checks.tensor(s, f"state[{name}]")
        if s.shape != (B, C):
            raise ValueError(f"state[{name}] must have shape (batch, C) = ({B}, {C}), got {tuple(s.shape)}")
        if s.dtype != dtype:
            raise ValueError(f"state[{name}] must have dtype {dtype}, got {s.dtype}")
    return tuple(state)


def wkv_init_state(batch: int, channels: int, dtype=torch.float32, device=None):
    """The empty WKV-4 state: nothing seen yet (``num = den = 0``, exponent ``p = -inf``)."""
    batch, channels = _checks.positive_int(batch, "batch"), _checks.positive_int(channels, "channels")
    z = torch.zeros(batch, channels, dtype=dtype, device=device)
    return (z, z.clone(), torch.full_like(z, -math.inf))


# ----------------------------------------------------------------------------------------------
# WKV-4
# ----------------------------------------------------------------------------------------------
def wkv_reference(w, u, k, v):
    """WKV-4 straight from its definition, in float64 NumPy loops (the oracle).

    For every batch element and time step it lists the exponents ``-(t-1-i) w + k_i`` of the
    past tokens and ``u + k_t`` of the current one, shifts them by their maximum (which cancels
    between numerator and denominator) and forms the weighted average of the values.
    Returns a float64 tensor ``(batch, T, C)`` on the device of ``k``.
    """
    B, T, C = _check_wkv_args(w, u, k, v)
    w_, u_ = w.detach().cpu().double().numpy(), u.detach().cpu().double().numpy()
    k_, v_ = k.detach().cpu().double().numpy(), v.detach().cpu().double().numpy()
    out = np.empty((B, T, C))
    for b in range(B):
        for t in range(T):
            expo = np.empty((t + 1, C))
            for i in range(t):
                expo[i] = -(t - 1 - i) * w_ + k_[b, i]
            expo[t] = u_ + k_[b, t]
            m = expo.max(axis=0)
            weight = np.exp(expo - m)
            out[b, t] = (weight * v_[b, : t + 1]).sum(axis=0) / weight.sum(axis=0)
    return torch.from_numpy(out).to(k.device)


def wkv_naive(w, u, k, v):
    """WKV-4 as a recurrence on raw exponentials (numerically unsafe; for the chapter's demo).

    ``num_t = e^{-w} num_{t-1} + e^{k_{t-1}} v_{t-1}`` and the same for ``den`` without ``v``:
    exact in exact arithmetic, but ``e^{k}`` overflows float32 as soon as a key exceeds ~88.7.
    """
    B, T, C = _check_wkv_args(w, u, k, v)
    num = torch.zeros(B, C, dtype=k.dtype, device=k.device)
    den = torch.zeros_like(num)
    decay, bonus = torch.exp(-w), torch.exp(u)
    out = []
    for t in range(T):
        ek = torch.exp(k[:, t])
        out.append((num + bonus * ek * v[:, t]) / (den + bonus * ek))
        num = decay * num + ek * v[:, t]
        den = decay * den + ek
    return torch.stack(out, dim=1)


def wkv_recurrent(w, u, k, v, state=None, return_state=False):
    """WKV-4 as a stable recurrence: the state keeps a running maximum ``p`` of exponents.

    The state ``(num, den, p)`` stands for ``(num e^p, den e^p)``.  Each step rescales by the
    largest exponent in play, so every ``exp`` has an argument <= 0 and nothing overflows.
    ``state`` (default: empty) lets a long sequence be processed in pieces.
    """
    B, T, C = _check_wkv_args(w, u, k, v)
    state = _check_wkv_state(state, B, C, k.dtype)
    num, den, p = state if state is not None else wkv_init_state(B, C, k.dtype, k.device)
    out = []
    for t in range(T):
        kt, vt = k[:, t], v[:, t]
        # output: past (exponent p) against the current token (exponent u + k_t)
        e_now = u + kt
        q = torch.maximum(p, e_now)
        a, b = torch.exp(p - q), torch.exp(e_now - q)
        out.append((a * num + b * vt) / (a * den + b))
        # state update: decay the past (exponent p - w), add the current token (exponent k_t)
        e_past = p - w
        q = torch.maximum(e_past, kt)
        a, b = torch.exp(e_past - q), torch.exp(kt - q)
        num, den, p = a * num + b * vt, a * den + b, q
    y = torch.stack(out, dim=1)
    return (y, (num, den, p)) if return_state else y


def wkv_parallel(w, u, k, v, state=None, return_state=False):
    """WKV-4 in its parallel, attention-like form: an L x L matrix of logits per channel.

    ``logit[t, i] = k_i - (t-1-i) w`` for ``i < t``, ``u + k_t`` on the diagonal, ``-inf`` above
    it; the output is the softmax-weighted average of ``v`` along ``i``.  A carried ``state``
    enters as one more column with logit ``p - t w``.  Memory is O(batch * T^2 * C).
    """
    B, T, C = _check_wkv_args(w, u, k, v)
    state = _check_wkv_state(state, B, C, k.dtype)
    t = torch.arange(T, device=k.device)
    # G[t, i, c]: the part of the logit that does not depend on the batch (decay, bonus, mask)
    dist = (t[:, None] - 1 - t[None, :]).to(k.dtype)[:, :, None]  # t - 1 - i
    G = torch.where(dist >= 0, -dist * w, torch.where(dist == -1, u, torch.full_like(dist, -math.inf)))
    logits = G[None] + k[:, None, :, :]  # (B, T, T, C) indexed [b, t, i, c]
    m = logits.amax(dim=2)  # (B, T, C); finite: the diagonal always is
    if state is not None:
        num0, den0, p0 = state
        s_logit = p0[:, None, :] - t[None, :, None].to(k.dtype) * w  # (B, T, C)
        m = torch.maximum(m, s_logit)
    m = m.detach()  # the shift cancels between numerator and denominator
    e = torch.exp(logits - m[:, :, None, :])
    num = (e * v[:, None, :, :]).sum(dim=2)
    den = e.sum(dim=2)
    if state is not None:
        es = torch.exp(s_logit - m)
        num, den = num + es * num0[:, None, :], den + es * den0[:, None, :]
    y = num / den
    if not return_state:
        return y
    # state after the last token: sum_i e^{k_i - (T-1-i) w} (v_i, 1) plus the decayed old state
    lg = k - (T - 1 - t).to(k.dtype)[None, :, None] * w  # (B, T, C)
    p = lg.amax(dim=1)
    if state is not None:
        p = torch.maximum(p, p0 - T * w)
    e = torch.exp(lg - p[:, None, :])
    num_T, den_T = (e * v).sum(dim=1), e.sum(dim=1)
    if state is not None:
        es = torch.exp(p0 - T * w - p)
        num_T, den_T = num_T + es * num0, den_T + es * den0
    return y, (num_T, den_T, p)


def wkv_chunked(w, u, k, v, chunk=16, state=None, return_state=False):
    """WKV-4 in chunks: the parallel form inside each chunk, the state carried across them.

    Time O(T * chunk), memory O(chunk^2) per channel: linear in T, and still parallel inside
    a chunk.  Equal to :func:`wkv_recurrent` and :func:`wkv_parallel`.
    """
    B, T, C = _check_wkv_args(w, u, k, v)
    _checks.positive_int(chunk, "chunk")
    state = _check_wkv_state(state, B, C, k.dtype)
    if state is None:
        state = wkv_init_state(B, C, k.dtype, k.device)
    ys = []
    for s in range(0, T, chunk):
        y, state = wkv_parallel(w, u, k[:, s:s + chunk], v[:, s:s + chunk], state=state, return_state=True)
        ys.append(y)
    y = torch.cat(ys, dim=1)
    return (y, state) if return_state else y


# ----------------------------------------------------------------------------------------------
# WKV-6: matrix-valued state, data-dependent decay
# ----------------------------------------------------------------------------------------------
def _check_wkv6_args(r, log_w, k, v, u):
    for name, x in (("k", k), ("r", r), ("log_w", log_w), ("v", v), ("u", u)):
        _checks.tensor(x, name)
    if k.dim() != 4:
        raise ValueError(f"k must have shape (batch, T, H, K), got {tuple(k.shape)}")
    B, T, H, K = k.shape
    if u.dim() == 2 and k.shape[2:] != u.shape and r.dim() == 4 and r.shape[2:] == u.shape:
        hint = ("; it looks like (batch, H, T, K): pass k.transpose(1, 2)"
                if k.shape[1] == u.shape[0] and k.shape[3] == u.shape[1] else "")
        raise ValueError(f"k must have shape (batch, T, H, K) with (H, K) = u.shape = {tuple(u.shape)}, "
                         f"got {tuple(k.shape)}{hint}")
    if T < 1 or B < 1:
        raise ValueError(f"k must have at least one time step (T >= 1) and batch >= 1, got shape {tuple(k.shape)}")
    if u.shape != (H, K):
        raise ValueError(f"u must have shape (H, K) = ({H}, {K}), got {tuple(u.shape)}")
    for name, x in (("r", r), ("log_w", log_w)):
        if x.shape != k.shape:
            raise ValueError(f"{name} must have the shape of k (batch, T, H, K) = {tuple(k.shape)}, "
                             f"got {tuple(x.shape)}")
    if v.dim() != 4 or v.shape[:3] != (B, T, H):
        raise ValueError(f"v must have shape (batch, T, H, V) = ({B}, {T}, {H}, V), got {tuple(v.shape)}")
    for name, x in (("r", r), ("log_w", log_w), ("v", v), ("u", u)):
        if x.dtype != k.dtype:
            raise ValueError(f"{name} must have the dtype of k ({k.dtype}), got {x.dtype}")
        if x.device != k.device:
            raise ValueError(f"{name} must be on the device of k ({k.device}), got {x.device}")
    bad = torch.isnan(log_w) | (log_w > 0)
    if bool(bad.any()):
        raise ValueError(f"log_w must be <= 0 and not NaN (the log of a decay in [0, 1]; -inf is a "
                         f"decay of 0), got {log_w.detach()[bad].flatten()[0].item()}")
    return B, T, H, K, v.shape[3]


def _check_wkv6_state(state, B, H, K, V, like):
    if state is None:
        return torch.zeros(B, H, K, V, dtype=like.dtype, device=like.device)
    _checks.tensor(state, "state")
    if state.shape != (B, H, K, V):
        raise ValueError(f"state must have shape (batch, H, K, V) = ({B}, {H}, {K}, {V}), got {tuple(state.shape)}")
    if state.dtype != like.dtype:
        raise ValueError(f"state must have dtype {like.dtype}, got {state.dtype}")
    return state


def wkv6_reference(r, log_w, k, v, u):
    """WKV-6 from its definition, float64 NumPy loops (the oracle).

    ``y_t = sum_{i<t} (r_t * prod_{s=i+1}^{t-1} w_s * k_i) . v_i + (r_t * u * k_t) . v_t`` per
    head, with the per-step, per-channel decay ``w_s = exp(log_w_s)``.  Returns ``(batch, T, H, V)``.
    """
    B, T, H, K, V = _check_wkv6_args(r, log_w, k, v, u)
    r_, lw, k_, v_, u_ = (x.detach().cpu().double().numpy() for x in (r, log_w, k, v, u))
    out = np.zeros((B, T, H, V))
    for b in range(B):
        for h in range(H):
            for t in range(T):
                for i in range(t):
                    decay = np.exp(lw[b, i + 1:t, h].sum(axis=0))  # empty product = 1 when i = t-1
                    out[b, t, h] += (r_[b, t, h] * decay * k_[b, i, h]).sum() * v_[b, i, h]
                out[b, t, h] += (r_[b, t, h] * u_[h] * k_[b, t, h]).sum() * v_[b, t, h]
    return torch.from_numpy(out).to(k.device)


def wkv6_recurrent(r, log_w, k, v, u, state=None, return_state=False):
    """WKV-6 as a recurrence on the matrix state ``S`` (batch, H, K, V).

    ``y_t = r_t (S_{t-1} + diag(u) k_t^T v_t)``, ``S_t = diag(w_t) S_{t-1} + k_t^T v_t``: each
    entry of ``S`` is a first-order linear recurrence with the data-dependent coefficient ``w_t``.
    """
    B, T, H, K, V = _check_wkv6_args(r, log_w, k, v, u)
    S = _check_wkv6_state(state, B, H, K, V, k)
    out = []
    for t in range(T):
        kv = k[:, t, :, :, None] * v[:, t, :, None, :]  # (B, H, K, V)
        out.append(torch.einsum("bhk,bhkv->bhv", r[:, t], S + u[None, :, :, None] * kv))
        S = torch.exp(log_w[:, t])[..., None] * S + kv
    y = torch.stack(out, dim=1)
    return (y, S) if return_state else y


def wkv6_parallel(r, log_w, k, v, u, state=None, return_state=False):
    """WKV-6 in parallel form: decays between any two steps from a cumulative sum of ``log_w``.

    ``prod_{s=i+1}^{t-1} w_s = exp(sum_{s=i+1}^{t-1} log_w_s)``, each sum formed from its own
    terms (not as a difference of prefix sums, which cancels for huge decays and is NaN for a
    decay of exactly 0, ``log_w = -inf``); only ``i < t`` is evaluated, so nothing overflows when
    ``log_w <= 0``.  Memory O(batch * T^2 * H * K).
    """
    B, T, H, K, V = _check_wkv6_args(r, log_w, k, v, u)
    S0 = _check_wkv6_state(state, B, H, K, V, k)
    t = torch.arange(T, device=k.device)
    # seg[b, t, i] = sum_{s=i+1}^{t-1} log_w_s for i < t: a masked cumulative sum along t
    causal = (t[:, None] > t[None, :])[None, :, :, None, None]           # [t, i]: i < t
    terms = torch.where(causal, log_w[:, :, None], torch.zeros((), dtype=k.dtype, device=k.device))
    run = torch.cumsum(terms, dim=1)                                      # [t, i] = sum_{s=i+1}^{t}
    seg = torch.cat([torch.zeros_like(run[:, :1]), run[:, :-1]], dim=1)  # [t, i] = sum_{s=i+1}^{t-1}
    decay = torch.exp(torch.where(causal, seg, torch.full_like(seg, -math.inf)))  # (B, T, T, H, K)
    A = torch.einsum("bthk,btihk,bihk->bhti", r, decay, k)
    A = A + torch.diag_embed(torch.einsum("bthk,hk,bthk->bht", r, u, k))
    y = torch.einsum("bhti,bihv->bthv", A, v)
    Lprev = torch.cumsum(torch.cat([torch.zeros_like(log_w[:, :1]), log_w[:, :-1]], dim=1), dim=1)
    y = y + torch.einsum("bthk,bhkv->bthv", r * torch.exp(Lprev), S0)
    if not return_state:
        return y
    # prod_{s=i+1}^{T-1} w_s as a reversed cumulative sum of the later terms (no subtraction)
    later = torch.cat([log_w[:, 1:], torch.zeros_like(log_w[:, :1])], dim=1)
    to_end = torch.exp(torch.flip(torch.cumsum(torch.flip(later, [1]), dim=1), [1]))
    S = torch.exp(log_w.sum(dim=1))[..., None] * S0 + torch.einsum("bihk,bihv->bhkv", to_end * k, v)
    return y, S


def wkv6_chunked(r, log_w, k, v, u, chunk=16, state=None, return_state=False):
    """WKV-6 in chunks: :func:`wkv6_parallel` inside each chunk, the matrix state carried across."""
    B, T, H, K, V = _check_wkv6_args(r, log_w, k, v, u)
    _checks.positive_int(chunk, "chunk")
    S = _check_wkv6_state(state, B, H, K, V, k)
    ys = []
    for s in range(0, T, chunk):
        part = slice(s, s + chunk)
        y, S = wkv6_parallel(r[:, part], log_w[:, part], k[:, part], v[:, part], u, state=S, return_state=True)
        ys.append(y)
    y = torch.cat(ys, dim=1)
    return (y, S) if return_state else y


# ----------------------------------------------------------------------------------------------
# layers
# ----------------------------------------------------------------------------------------------
_WKV_MODES = ("chunked", "parallel", "recurrent")


def _token_shift(x, last):
    """``x`` shifted one step to the right along time, ``last`` (batch, C) filling the gap."""
    return torch.cat([last[:, None, :], x[:, :-1]], dim=1)


def _check_last(x_last, x, name="state"):
    """The carried last token of a token shift: (batch, C) of the input's batch, dtype, device."""
    if not isinstance(x_last, torch.Tensor):
        raise ValueError(f"{name} must come from allocate_state (its last token is a tensor), "
                         f"got {type(x_last).__name__}")
    _checks.state_batch(tuple(x_last.shape), x.shape[0], f"{name} (its last token)",
                        (x.shape[0], x.shape[-1]))
    _checks.same_dtype_device(x_last, f"{name} (its last token)", x, what="x")


def _check_pair(state, name="state"):
    if not (isinstance(state, (tuple, list)) and len(state) == 2):
        raise ValueError(f"{name} must be the pair from allocate_state, got {type(state).__name__}")
    return state


def _ramp(n, lo, hi):
    return torch.linspace(lo, hi, n) if n > 1 else torch.tensor([0.5 * (lo + hi)])


class TimeMix(nn.Module):
    """RWKV-4 time mixing: token shift, R/K/V projections, WKV with decay ``w`` and bonus ``u``.

    ``w = exp(time_decay) > 0`` (one decay rate per channel), ``u = time_first``.  The output is
    ``W_o(sigmoid(r) * wkv)``: the receptance ``r`` gates how much of the attended past is let in.
    State: ``(x_last, (num, den, p))``.
    """

    def __init__(self, d_model: int, wkv_mode: str = "chunked", chunk: int = 16):
        super().__init__()
        d_model, chunk = _checks.positive_int(d_model, "d_model"), _checks.positive_int(chunk, "chunk")
        if wkv_mode not in _WKV_MODES:
            raise ValueError(f"wkv_mode must be one of {_WKV_MODES}, got {wkv_mode!r}")
        self.d_model, self.wkv_mode, self.chunk = d_model, wkv_mode, chunk
        # decay rates spread log-uniformly from slow (w = e^-4, long memory) to fast (w = e^1)
        self.time_decay = nn.Parameter(_ramp(d_model, -4.0, 1.0))
        self.time_first = nn.Parameter(torch.zeros(d_model))
        self.mix_k = nn.Parameter(_ramp(d_model, 1.0, 0.5))
        self.mix_v = nn.Parameter(_ramp(d_model, 1.0, 0.4))
        self.mix_r = nn.Parameter(_ramp(d_model, 1.0, 0.6))
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model, bias=False)
        self.receptance = nn.Linear(d_model, d_model, bias=False)
        self.output = nn.Linear(d_model, d_model, bias=False)

    def allocate_state(self, batch, device=None, dtype=None):
        dtype = dtype or self.key.weight.dtype
        return (torch.zeros(batch, self.d_model, device=device, dtype=dtype),
                wkv_init_state(batch, self.d_model, dtype, device))

    def forward(self, x, state=None):
        _checks.module_input(x, "x", self, ndim=3, shape_doc=f"(batch, L, d_model={self.d_model})", last=self.d_model)
        B = x.shape[0]
        if state is None:
            state = self.allocate_state(B, x.device, x.dtype)
        x_last, wkv_state = _check_pair(state)
        _check_last(x_last, x)
        xx = _token_shift(x, x_last)
        k = self.key(x * self.mix_k + xx * (1 - self.mix_k))
        v = self.value(x * self.mix_v + xx * (1 - self.mix_v))
        r = self.receptance(x * self.mix_r + xx * (1 - self.mix_r))
        w = torch.exp(self.time_decay)
        if self.wkv_mode == "chunked":
            y, wkv_state = wkv_chunked(w, self.time_first, k, v, self.chunk, state=wkv_state, return_state=True)
        else:
            fn = wkv_parallel if self.wkv_mode == "parallel" else wkv_recurrent
            y, wkv_state = fn(w, self.time_first, k, v, state=wkv_state, return_state=True)
        return self.output(torch.sigmoid(r) * y), (x[:, -1], wkv_state)


class TimeMix6(nn.Module):
    """RWKV-6 style time mixing: multi-head matrix state and a data-dependent decay.

    The decay of channel ``c`` at step ``t`` is ``w_t = exp(-exp(d_t))`` with
    ``d_t = time_decay + tanh(x_t A) B`` (a low-rank function of the token): each token decides
    how fast the state forgets, which is RWKV's form of selectivity.  Simplified against the paper:
    the token-shift interpolation weights are static (RWKV-6 makes them data-dependent too).
    Output: ``W_o(GroupNorm(wkv) * silu(g))``.  State: ``(x_last, S)`` with ``S`` (batch, H, K, K).
    """

    def __init__(self, d_model: int, n_head: int, decay_rank: int = 16, wkv_mode: str = "chunked", chunk: int = 16):
        super().__init__()
        d_model, n_head = _checks.positive_int(d_model, "d_model"), _checks.positive_int(n_head, "n_head")
        decay_rank, chunk = _checks.positive_int(decay_rank, "decay_rank"), _checks.positive_int(chunk, "chunk")
        if d_model % n_head:
            raise ValueError(f"n_head must divide d_model ({d_model}), got n_head = {n_head}")
        if wkv_mode not in _WKV_MODES:
            raise ValueError(f"wkv_mode must be one of {_WKV_MODES}, got {wkv_mode!r}")
        self.d_model, self.n_head, self.head_size = d_model, n_head, d_model // n_head
        self.wkv_mode, self.chunk = wkv_mode, chunk
        self.mix = nn.Parameter(torch.stack([_ramp(d_model, 1.0, 0.5)] * 5))  # r, k, v, w, g
        self.time_decay = nn.Parameter(_ramp(d_model, -4.0, 1.0))
        self.decay_A = nn.Parameter(torch.zeros(d_model, decay_rank))
        self.decay_B = nn.Parameter(torch.randn(decay_rank, d_model) * 0.1)
        self.time_first = nn.Parameter(torch.zeros(n_head, self.head_size))
        self.receptance = nn.Linear(d_model, d_model, bias=False)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model, bias=False)
        self.gate = nn.Linear(d_model, d_model, bias=False)
        self.output = nn.Linear(d_model, d_model, bias=False)
        self.norm = nn.GroupNorm(n_head, d_model)

    def allocate_state(self, batch, device=None, dtype=None):
        dtype = dtype or self.key.weight.dtype
        K = self.head_size
        return (torch.zeros(batch, self.d_model, device=device, dtype=dtype),
                torch.zeros(batch, self.n_head, K, K, device=device, dtype=dtype))

    def log_decay(self, xw):
        """``log w_t = -exp(time_decay + tanh(xw A) B)`` (batch, L, d_model), always < 0."""
        return -torch.exp(self.time_decay + torch.tanh(xw @ self.decay_A) @ self.decay_B)

    def forward(self, x, state=None):
        _checks.module_input(x, "x", self, ndim=3, shape_doc=f"(batch, L, d_model={self.d_model})", last=self.d_model)
        B, L, C = x.shape
        if state is None:
            state = self.allocate_state(B, x.device, x.dtype)
        x_last, S = _check_pair(state)
        _check_last(x_last, x)
        xx = _token_shift(x, x_last)
        xr, xk, xv, xw, xg = (x * m + xx * (1 - m) for m in self.mix)
        H, K = self.n_head, self.head_size
        r, k, v = (f(z).view(B, L, H, K) for f, z in ((self.receptance, xr), (self.key, xk), (self.value, xv)))
        log_w = self.log_decay(xw).view(B, L, H, K)
        if self.wkv_mode == "chunked":
            y, S = wkv6_chunked(r, log_w, k, v, self.time_first, self.chunk, state=S, return_state=True)
        else:
            fn = wkv6_parallel if self.wkv_mode == "parallel" else wkv6_recurrent
            y, S = fn(r, log_w, k, v, self.time_first, state=S, return_state=True)
        y = self.norm(y.reshape(B * L, C)).view(B, L, C)
        return self.output(y * F.silu(self.gate(xg))), (x[:, -1], S)


class ChannelMix(nn.Module):
    """RWKV channel mixing: token shift, ``sigmoid(r) * W_v relu(W_k x)^2``.  State: ``x_last``."""

    def __init__(self, d_model: int, hidden: int | None = None):
        super().__init__()
        d_model = _checks.positive_int(d_model, "d_model")
        hidden = _checks.positive_int(hidden or 4 * d_model, "hidden")
        self.d_model = d_model
        self.mix_k = nn.Parameter(_ramp(d_model, 1.0, 0.5))
        self.mix_r = nn.Parameter(_ramp(d_model, 1.0, 0.5))
        self.key = nn.Linear(d_model, hidden, bias=False)
        self.value = nn.Linear(hidden, d_model, bias=False)
        self.receptance = nn.Linear(d_model, d_model, bias=False)

    def allocate_state(self, batch, device=None, dtype=None):
        return torch.zeros(batch, self.d_model, device=device, dtype=dtype or self.key.weight.dtype)

    def forward(self, x, state=None):
        _checks.module_input(x, "x", self, ndim=3, shape_doc=f"(batch, L, d_model={self.d_model})", last=self.d_model)
        if state is None:
            state = self.allocate_state(x.shape[0], x.device, x.dtype)
        _check_last(state, x)
        xx = _token_shift(x, state)
        k = torch.relu(self.key(x * self.mix_k + xx * (1 - self.mix_k))) ** 2
        r = torch.sigmoid(self.receptance(x * self.mix_r + xx * (1 - self.mix_r)))
        return r * self.value(k), x[:, -1]


class RWKVBlock(nn.Module):
    """``x + TimeMix(LN(x))`` then ``x + ChannelMix(LN(x))``; ``version`` 4 or 6 picks the time mix."""

    def __init__(self, d_model: int, version: int = 4, n_head: int = 1, ffn_hidden: int | None = None,
                 wkv_mode: str = "chunked"):
        super().__init__()
        d_model = _checks.positive_int(d_model, "d_model")
        if version not in (4, 6):
            raise ValueError(f"version must be 4 or 6, got {version!r}")
        self.d_model = d_model
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.att = TimeMix(d_model, wkv_mode) if version == 4 else TimeMix6(d_model, n_head, wkv_mode=wkv_mode)
        self.ffn = ChannelMix(d_model, ffn_hidden)

    def allocate_state(self, batch, device=None, dtype=None):
        return (self.att.allocate_state(batch, device, dtype), self.ffn.allocate_state(batch, device, dtype))

    def forward(self, x, state=None):
        _checks.module_input(x, "x", self, ndim=3, shape_doc=f"(batch, L, d_model={self.d_model})", last=self.d_model)
        att_state, ffn_state = _check_pair(state) if state is not None else (None, None)
        a, att_state = self.att(self.ln1(x), att_state)
        x = x + a
        f, ffn_state = self.ffn(self.ln2(x), ffn_state)
        return x + f, (att_state, ffn_state)


class RWKVLM(nn.Module):
    """A tiny RWKV language model: embedding, LN, ``n_layer`` blocks, LN, tied head.

    ``forward(tokens, state=None, return_state=False)`` runs a whole (piece of a) sequence;
    ``step(token, state)`` runs one token in O(1) time and memory (the RNN mode).
    Both carry the same state, so a stream can be processed in any split.
    """

    def __init__(self, vocab_size: int, d_model: int, n_layer: int, version: int = 4, n_head: int = 1,
                 ffn_hidden: int | None = None, wkv_mode: str = "chunked"):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("d_model", d_model), ("n_layer", n_layer)):
            _checks.positive_int(value, name)
        self.vocab_size, self.d_model = vocab_size, d_model
        self.emb = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.emb.weight, std=0.02)
        self.ln0, self.ln_out = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.blocks = nn.ModuleList(RWKVBlock(d_model, version, n_head, ffn_hidden, wkv_mode) for _ in range(n_layer))

    def allocate_state(self, batch, device=None, dtype=None):
        return [b.allocate_state(batch, device, dtype) for b in self.blocks]

    def forward(self, tokens, state=None, return_state=False, _name="tokens"):
        _checks.token_ids(tokens, _name, self.vocab_size, ndim=2, shape_doc="(batch, L)",
                          device=self.emb.weight.device)
        if state is not None and (not isinstance(state, (list, tuple)) or len(state) != len(self.blocks)):
            state = state if isinstance(state, (list, tuple)) else [state]
            raise ValueError(f"state must hold one entry per layer ({len(self.blocks)}), got {len(state)}")
        x = self.ln0(self.emb(tokens))
        new_state = []
        for i, block in enumerate(self.blocks):
            x, s = block(x, None if state is None else state[i])
            new_state.append(s)
        logits = self.ln_out(x) @ self.emb.weight.T
        return (logits, new_state) if return_state else logits

    def step(self, token, state):
        """One token ``(batch,)`` int64 -> ``(logits (batch, vocab), state)``."""
        _checks.token_ids(token, "token", self.vocab_size, ndim=1, shape_doc="(batch,)",
                          device=self.emb.weight.device)
        logits, state = self.forward(token[:, None], state, return_state=True, _name="token")
        return logits[:, 0], state
