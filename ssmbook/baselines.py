"""The attention baseline: softmax attention, its decoding step with a KV cache, the Transformer.

Every chapter that compares a recurrence with attention uses these:

* :func:`attention`, ``softmax(q kᵀ / sqrt(d) + mask) v``, written out (no fused kernel) so its
  L x L score matrix is visible: O(L²) time and memory; :func:`attention_ref`, its float64 loop
  oracle, one query and one key at a time;
* :func:`attention_step`, one decoding step against a cache of all keys and values so far: O(t)
  time and a cache of O(t) memory, what a recurrence's fixed-size state replaces;
* :class:`MultiHeadAttention`, :class:`TransformerBlock` (pre-norm) and :class:`TransformerLM`,
  a small causal language model with learned positions and a tied head.

Shapes are batch-first with the heads after time: ``q, k, v`` are ``(batch, L, heads, d)``; a mask
is a boolean ``(L, L)`` tensor with ``mask[t, s]`` True when query ``t`` may read key ``s``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from . import _checks

__all__ = ["attention", "attention_ref", "attention_step", "MultiHeadAttention", "TransformerBlock",
           "TransformerLM"]

MODES = ("causal", "full")
_QKV = "(batch, L, heads, d)"


def _check_qkv(q, k, v, mask, causal):
    for name, t in (("q", q), ("k", k), ("v", v)):
        _checks.tensor(t, name, ndim=4, shape_doc=_QKV)
    if k.shape != q.shape:
        raise ValueError(f"k must have the shape of q {_QKV} = {tuple(q.shape)}, got {tuple(k.shape)}")
    if v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v must have shape (batch, L, heads, d_v) with (batch, L, heads) = "
                         f"{tuple(q.shape[:3])} (q's), got {tuple(v.shape)}")
    _checks.flag(causal, "causal")
    if mask is None:
        return
    if causal:
        raise ValueError("mask must be None when causal=True (causal=True builds the causal mask)")
    L = q.shape[1]
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (L, L):
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a torch.bool tensor of shape (L, L) = ({L}, {L}), got {got}")
    if not bool(mask.any(dim=1).all()):
        raise ValueError("mask must let every query attend to at least one key (no empty rows)")


def attention(q, k, v, mask=None, causal: bool = False):
    """Scaled dot-product attention ``softmax(q kᵀ / sqrt(d) + mask) v`` on ``(batch, L, heads, d)``.

    ``mask``: a boolean ``(L, L)`` tensor (True = may attend) or None (every pair);
    ``causal=True``: query ``t`` reads keys ``s <= t`` (GPT-style).  Returns ``(batch, L, heads, d_v)``.
    """
    _check_qkv(q, k, v, mask, causal)
    L = q.shape[1]
    qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)   # (batch, heads, L, d)
    scores = qh @ kh.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        scores = scores.masked_fill(torch.ones(L, L, dtype=torch.bool, device=q.device).triu(1), -math.inf)
    elif mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    return (torch.softmax(scores, dim=-1) @ vh).transpose(1, 2)


def attention_ref(q, k, v, mask=None, causal: bool = False) -> torch.Tensor:
    """Loop oracle for :func:`attention`, in float64 NumPy: one query, one key at a time."""
    _check_qkv(q, k, v, mask, causal)
    qd, kd, vd = (t.detach().double().cpu().numpy() for t in (q, k, v))
    B, L, H, d = qd.shape
    if causal:
        m = np.tril(np.ones((L, L), dtype=bool))
    else:
        m = np.ones((L, L), dtype=bool) if mask is None else mask.detach().cpu().numpy()
    out = np.zeros((B, L, H, vd.shape[-1]))
    for b in range(B):
        for h in range(H):
            for t in range(L):
                keys = [s for s in range(L) if m[t, s]]
                logits = np.array([sum(qd[b, t, h, i] * kd[b, s, h, i] for i in range(d)) / math.sqrt(d)
                                   for s in keys])
                w = np.exp(logits - logits.max())
                w /= w.sum()
                for j, s in enumerate(keys):
                    out[b, t, h] += w[j] * vd[b, s, h]
    return torch.from_numpy(out)


def attention_step(q, k_cache, v_cache):
    """One decoding step of softmax attention: the new query ``q`` (batch, heads, d) against the
    cache ``k_cache`` (batch, t, heads, d) and ``v_cache`` (batch, t, heads, d_v) of all ``t`` tokens
    so far (the new one included).  Equal to the last row of :func:`attention` with ``causal=True``.
    """
    for name, x, nd, doc in (("q", q, 3, "(batch, heads, d)"), ("k_cache", k_cache, 4, "(batch, t, heads, d)"),
                             ("v_cache", v_cache, 4, "(batch, t, heads, d_v)")):
        _checks.tensor(x, name, ndim=nd, shape_doc=doc)
    if k_cache.shape[0] != q.shape[0] or k_cache.shape[2:] != q.shape[1:]:
        raise ValueError(f"k_cache must have shape (batch, t, heads, d) with (batch, heads, d) = q's "
                         f"{tuple(q.shape)}, got {tuple(k_cache.shape)}")
    if v_cache.shape[:3] != k_cache.shape[:3]:
        raise ValueError(f"v_cache must have shape (batch, t, heads, d_v) with (batch, t, heads) = "
                         f"{tuple(k_cache.shape[:3])} (k_cache's), got {tuple(v_cache.shape)}")
    scores = torch.einsum("bhd,bthd->bht", q, k_cache) / math.sqrt(q.shape[-1])
    return torch.einsum("bht,bthd->bhd", torch.softmax(scores, dim=-1), v_cache)


def _check_mode(mode) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention, causal or fully visible: ``(batch, L, dim) → (batch, L, dim)``.

    ``bias``: whether the query/key/value and output projections have biases.
    """

    def __init__(self, dim: int, heads: int, mode: str = "full", bias: bool = True):
        super().__init__()
        dim, heads = _checks.positive_int(dim, "dim"), _checks.positive_int(heads, "heads")
        if dim % heads:
            raise ValueError(f"heads must divide dim ({dim}), got heads = {heads}")
        _check_mode(mode)
        self.dim, self.heads, self.mode = dim, heads, mode
        self.qkv = nn.Linear(dim, 3 * dim, bias=_checks.flag(bias, "bias"))
        self.proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, x):
        _checks.module_input(x, "x", self, ndim=3, shape_doc=f"(batch, L, dim={self.dim})", last=self.dim)
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).unbind(2)
        y = attention(q, k, v, causal=self.mode == "causal")
        return self.proj(y.reshape(B, L, D))


class TransformerBlock(nn.Module):
    """Pre-norm Transformer block: ``x + Attn(LN x)``, then ``x + MLP(LN x)`` with a GELU MLP of
    ``mlp_ratio · dim`` hidden units.  ``bias`` applies to the attention projections."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, mode: str = "full", bias: bool = True):
        super().__init__()
        dim, mlp_ratio = _checks.positive_int(dim, "dim"), _checks.positive_int(mlp_ratio, "mlp_ratio")
        self.dim = dim
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads, mode, bias)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x):
        _checks.module_input(x, "x", self, ndim=3, shape_doc=f"(batch, L, dim={self.dim})", last=self.dim)
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransformerLM(nn.Module):
    """A small causal Transformer language model: token and learned position embeddings,
    ``n_layer`` causal :class:`TransformerBlock` (attention without biases), LayerNorm, a head
    tied to the token embedding.  ``forward(tokens (batch, L) int64)`` → logits (batch, L, vocab)."""

    def __init__(self, vocab_size: int, d_model: int, n_layer: int, n_head: int = 4, max_len: int = 512,
                 mlp_ratio: int = 4):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("d_model", d_model), ("n_layer", n_layer),
                            ("n_head", n_head), ("max_len", max_len)):
            _checks.positive_int(value, name)
        if d_model % n_head:
            raise ValueError(f"n_head must divide d_model ({d_model}), got n_head = {n_head}")
        self.vocab_size, self.max_len = vocab_size, max_len
        self.emb = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Parameter(torch.zeros(max_len, d_model))
        nn.init.normal_(self.emb.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_head, mlp_ratio, mode="causal", bias=False)
                                    for _ in range(n_layer))
        self.ln_out = nn.LayerNorm(d_model)

    def forward(self, tokens):
        _checks.token_ids(tokens, "tokens", self.vocab_size, ndim=2, shape_doc="(batch, L)",
                          device=self.pos.device)
        L = tokens.shape[1]
        if not 1 <= L <= self.max_len:
            raise ValueError(f"tokens must have 1 <= L <= max_len={self.max_len}, got L={L}")
        x = self.emb(tokens) + self.pos[:L]
        for block in self.blocks:
            x = block(x)
        return self.ln_out(x) @ self.emb.weight.T
