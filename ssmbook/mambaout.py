"""MambaOut: the Gated CNN block without the SSM, token-mixing masks, and the long-sequence criterion.

Chapter 7 asks the question of Yu & Wang (CVPR 2025): a Mamba block is a Gated CNN block with a
selective SSM inside; is the SSM needed for vision?  This module holds what the chapter runs:

* :func:`token_mixing_mask`, :func:`attention` (with its loop oracle :func:`attention_ref`):
  causal (GPT-style) versus fully visible (BERT/ViT-style) token mixing;
* :class:`GatedCNNBlock` (with its float64 loop oracle :func:`gated_cnn_block_ref`), the
  hierarchical :class:`TinyMambaOut` (optionally with a causal Mamba token mixer instead), and a
  :class:`TinyViT` with either mask;
* the FLOPs of a Transformer block (:func:`transformer_block_flops`, its sympy form
  :func:`long_sequence_criterion`, and :func:`count_flops`, which counts them on a real module);
* the toy experiment on scikit-learn's 8x8 digits (:func:`load_digits_split`,
  :func:`train_classifier`, :func:`run_digits_experiment`).
"""
from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import _checks

MODES = ("causal", "full")


# ----------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------
def _check_tensor(name: str, x, ndim: int, shape_doc: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape {shape_doc}, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape_doc} ({ndim} dims), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def _check_mode(mode) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def _check_positive_int(name: str, v) -> int:
    return _checks.positive_int(v, name)


# ----------------------------------------------------------------------------------------------
# Token mixing: causal versus fully visible
# ----------------------------------------------------------------------------------------------
def token_mixing_mask(L: int, mode: str = "causal", device=None) -> torch.Tensor:
    """Boolean ``(L, L)`` mask; ``mask[t, s]`` is True when output token ``t`` may read input ``s``.

    ``"causal"`` (GPT-style, also Mamba's only mode): ``s <= t``.
    ``"full"`` (BERT/ViT-style, fully visible): every pair.
    """
    L = _check_positive_int("L", L)
    _check_mode(mode)
    ones = torch.ones(L, L, dtype=torch.bool, device=device)
    return torch.tril(ones) if mode == "causal" else ones


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None):
    """Scaled dot-product attention, ``softmax(q kᵀ / sqrt(d) + mask) v``.

    q, k, v: ``(batch, heads, L, d_head)``; mask: boolean ``(L, L)`` (True = may attend) or None.
    """
    doc = "(batch, heads, L, d_head)"
    for name, t in (("q", q), ("k", k), ("v", v)):
        _check_tensor(name, t, 4, doc)
    for name, t in (("k", k), ("v", v)):
        if t.shape != q.shape:
            raise ValueError(f"{name} must have the shape of q {doc} = {tuple(q.shape)}, got {tuple(t.shape)}")
    L = q.shape[2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (L, L):
            got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"mask must be a torch.bool tensor of shape (L, L) = ({L}, {L}), got {got}")
        if not bool(mask.any(dim=1).all()):
            raise ValueError("mask must let every query attend to at least one key (no empty rows)")
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def attention_ref(q, k, v, mask=None) -> torch.Tensor:
    """Loop oracle for :func:`attention`, in float64: one query, one key at a time."""
    doc = "(batch, heads, L, d_head)"
    for name, t in (("q", q), ("k", k), ("v", v)):
        _check_tensor(name, t, 4, doc)
    for name, t in (("k", k), ("v", v)):
        if t.shape != q.shape:
            raise ValueError(f"{name} must have the shape of q {doc} = {tuple(q.shape)}, got {tuple(t.shape)}")
    L = q.shape[2]
    if mask is not None and (not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool
                             or tuple(mask.shape) != (L, L)):
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a torch.bool tensor of shape (L, L) = ({L}, {L}), got {got}")
    qd, kd, vd = (t.detach().double().cpu().numpy() for t in (q, k, v))
    B, H, L, d = qd.shape
    m = np.ones((L, L), dtype=bool) if mask is None else mask.detach().cpu().numpy()
    out = np.zeros((B, H, L, d))
    for b in range(B):
        for h in range(H):
            for t in range(L):
                keys = [s for s in range(L) if m[t, s]]
                logits = np.array([sum(qd[b, h, t, i] * kd[b, h, s, i] for i in range(d)) / math.sqrt(d)
                                   for s in keys])
                w = np.exp(logits - logits.max())
                w /= w.sum()
                for j, s in enumerate(keys):
                    out[b, h, t] += w[j] * vd[b, h, s]
    return torch.from_numpy(out)


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention with a causal or fully visible mask. ``(batch, L, dim) → same``."""

    def __init__(self, dim: int, heads: int, mode: str = "full"):
        super().__init__()
        dim, heads = _check_positive_int("dim", dim), _check_positive_int("heads", heads)
        if dim % heads:
            raise ValueError(f"heads must divide dim ({dim}), got heads = {heads}")
        _check_mode(mode)
        self.dim, self.heads, self.mode = dim, heads, mode
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        _check_tensor("x", x, 3, "(batch, L, dim)")
        if x.shape[-1] != self.dim:
            raise ValueError(f"x must have shape (batch, L, dim={self.dim}), got {tuple(x.shape)}")
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        y = attention(q, k, v, token_mixing_mask(L, self.mode, device=x.device))
        return self.proj(y.transpose(1, 2).reshape(B, L, D))


class TransformerBlock(nn.Module):
    """Pre-norm Transformer block: ``x + Attn(LN x)``, then ``x + MLP(LN x)`` (MLP ratio ``mlp_ratio``)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, mode: str = "full"):
        super().__init__()
        _check_positive_int("dim", dim), _check_positive_int("mlp_ratio", mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads, mode)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x):
        _check_tensor("x", x, 3, "(batch, L, dim)")
        if x.shape[-1] != self.attn.dim:
            raise ValueError(f"x must have shape (batch, L, dim={self.attn.dim}), got {tuple(x.shape)}")
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def _check_images(x, in_chans: int, image_size: int | None = None):
    doc = f"(batch, {in_chans}, H, W)" if image_size is None else f"(batch, {in_chans}, {image_size}, {image_size})"
    _check_tensor("images", x, 4, doc)
    if x.shape[1] != in_chans or (image_size is not None and tuple(x.shape[2:]) != (image_size, image_size)):
        raise ValueError(f"images must have shape {doc}, got {tuple(x.shape)}")


class TinyViT(nn.Module):
    """A small isotropic vision transformer: patch embedding, position embedding, ``depth``
    Transformer blocks (causal or fully visible), mean pooling over tokens, linear head.

    Tokens are the patches in raster order (row by row), the order a causal model reads them in.
    """

    def __init__(self, image_size: int = 8, patch_size: int = 2, in_chans: int = 1, num_classes: int = 10,
                 dim: int = 32, depth: int = 2, heads: int = 4, mode: str = "full"):
        super().__init__()
        _check_mode(mode)
        for name, v in (("image_size", image_size), ("patch_size", patch_size), ("in_chans", in_chans),
                        ("num_classes", num_classes), ("dim", dim), ("depth", depth), ("heads", heads)):
            _checks.positive_int(v, name)
        if image_size % patch_size:
            raise ValueError(f"patch_size must divide image_size ({image_size}), got patch_size = {patch_size}")
        self.image_size, self.in_chans, self.mode = image_size, in_chans, mode
        n_tokens = (image_size // patch_size) ** 2
        self.patch = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)
        self.pos = nn.Parameter(0.02 * torch.randn(1, n_tokens, dim))
        self.blocks = nn.Sequential(*[TransformerBlock(dim, heads, 4, mode) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, images):
        _check_images(images, self.in_chans, self.image_size)
        x = self.patch(images).flatten(2).transpose(1, 2) + self.pos  # (B, L, dim), raster order
        x = self.blocks(x)
        return self.head(self.norm(x.mean(dim=1)))


# ----------------------------------------------------------------------------------------------
# The Gated CNN block and its oracle
# ----------------------------------------------------------------------------------------------
class GatedCNNBlock(nn.Module):
    """The Gated CNN block of MambaOut: a Mamba block with the SSM taken out.

    ``y = x + W_out( act(g) ⊙ [i, dwconv(c)] )`` where ``[g, i, c] = W_in LN(x)`` is one linear
    layer split into the gate ``g`` (``hidden`` channels), the identity part ``i`` and the conv part
    ``c`` (``conv_channels = int(conv_ratio * dim)`` channels); only ``c`` goes through the depthwise
    convolution.  ``hidden = int(expansion_ratio * dim)``.

    ``spatial_dims=2``: channels-last images ``(batch, H, W, dim)``, a ``k×k`` depthwise conv.
    ``spatial_dims=1``: sequences ``(batch, L, dim)``, a 1-D depthwise conv, ``causal=True`` pads on
    the left only (output ``t`` reads inputs ``t-k+1 … t``, like the conv inside a Mamba block).
    """

    def __init__(self, dim: int, expansion_ratio: float = 8 / 3, kernel_size: int = 7, conv_ratio: float = 1.0,
                 spatial_dims: int = 2, causal: bool = False):
        super().__init__()
        dim = _check_positive_int("dim", dim)
        kernel_size = _check_positive_int("kernel_size", kernel_size)
        if spatial_dims not in (1, 2):
            raise ValueError(f"spatial_dims must be 1 (sequences) or 2 (images), got {spatial_dims!r}")
        if causal and spatial_dims != 1:
            raise ValueError("causal=True needs spatial_dims=1 (a causal order is defined on sequences)")
        if not causal and kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd for a centred (non-causal) conv, got {kernel_size}")
        hidden = int(expansion_ratio * dim)
        conv_channels = int(conv_ratio * dim)
        if not 1 <= conv_channels <= hidden:
            raise ValueError(f"conv_ratio * dim must lie in [1, hidden={hidden}], got {conv_channels}")
        self.dim, self.hidden, self.conv_channels = dim, hidden, conv_channels
        self.kernel_size, self.spatial_dims, self.causal = kernel_size, spatial_dims, causal
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc_in = nn.Linear(dim, 2 * hidden)
        Conv = nn.Conv2d if spatial_dims == 2 else nn.Conv1d
        self.conv = Conv(conv_channels, conv_channels, kernel_size, groups=conv_channels, padding=0)
        self.fc_out = nn.Linear(hidden, dim)

    def _dwconv(self, c):
        k = self.kernel_size
        if self.spatial_dims == 2:                       # (B, H, W, C) -> (B, C, H, W)
            c = F.pad(c.permute(0, 3, 1, 2), (k // 2, k // 2, k // 2, k // 2))
            return self.conv(c).permute(0, 2, 3, 1)
        c = c.transpose(1, 2)                            # (B, L, C) -> (B, C, L)
        c = F.pad(c, (k - 1, 0)) if self.causal else F.pad(c, (k // 2, k // 2))
        return self.conv(c).transpose(1, 2)

    def forward(self, x):
        doc = "(batch, H, W, dim)" if self.spatial_dims == 2 else "(batch, L, dim)"
        _check_tensor("x", x, self.spatial_dims + 2, doc)
        if x.shape[-1] != self.dim:
            raise ValueError(f"x must have shape {doc} with dim={self.dim} (channels last), got {tuple(x.shape)}")
        split = (self.hidden, self.hidden - self.conv_channels, self.conv_channels)
        g, i, c = torch.split(self.fc_in(self.norm(x)), split, dim=-1)
        mixed = torch.cat([i, self._dwconv(c)], dim=-1)
        return x + self.fc_out(F.gelu(g) * mixed)


def gated_cnn_block_ref(block: GatedCNNBlock, x) -> np.ndarray:
    """Float64 loop oracle for :class:`GatedCNNBlock`: layer norm, linear maps, an explicit
    depthwise convolution loop over positions and kernel taps, exact (erf) GELU, gate, residual."""
    from scipy.special import erf

    if not isinstance(block, GatedCNNBlock):
        raise ValueError(f"block must be a GatedCNNBlock, got {type(block).__name__}")
    _check_tensor("x", x, x.dim() if isinstance(x, torch.Tensor) else 0, "(batch, ..., dim)")
    if x.dim() < 2 or x.shape[-1] != block.dim:
        raise ValueError(f"x must have shape (batch, ..., dim={block.dim}), got {tuple(x.shape)}")
    p = {n: t.detach().double().cpu().numpy() for n, t in block.state_dict().items()}
    xd = x.detach().double().cpu().numpy()
    mu = xd.mean(-1, keepdims=True)
    var = ((xd - mu) ** 2).mean(-1, keepdims=True)
    xn = (xd - mu) / np.sqrt(var + block.norm.eps) * p["norm.weight"] + p["norm.bias"]
    u = xn @ p["fc_in.weight"].T + p["fc_in.bias"]
    H, Cc = block.hidden, block.conv_channels
    g, i, c = u[..., :H], u[..., H:2 * H - Cc], u[..., 2 * H - Cc:]
    w, bias, k = p["conv.weight"], p["conv.bias"], block.kernel_size
    conv = np.zeros_like(c)
    if block.spatial_dims == 2:
        B, Hh, W, _ = c.shape
        for b in range(B):
            for r in range(Hh):
                for s in range(W):
                    for ch in range(Cc):
                        acc = bias[ch]
                        for dr in range(k):
                            for ds in range(k):
                                rr, ss = r + dr - k // 2, s + ds - k // 2
                                if 0 <= rr < Hh and 0 <= ss < W:
                                    acc += w[ch, 0, dr, ds] * c[b, rr, ss, ch]
                        conv[b, r, s, ch] = acc
    else:
        B, L, _ = c.shape
        offset = k - 1 if block.causal else k // 2      # input index = t + tap - offset
        for b in range(B):
            for t in range(L):
                for ch in range(Cc):
                    acc = bias[ch]
                    for tap in range(k):
                        s = t + tap - offset
                        if 0 <= s < L:
                            acc += w[ch, 0, tap] * c[b, s, ch]
                    conv[b, t, ch] = acc
    gelu = 0.5 * g * (1.0 + erf(g / math.sqrt(2.0)))
    mixed = np.concatenate([i, conv], axis=-1)
    return xd + (gelu * mixed) @ p["fc_out.weight"].T + p["fc_out.bias"]


# ----------------------------------------------------------------------------------------------
# A tiny hierarchical MambaOut, and the same model with a causal Mamba token mixer
# ----------------------------------------------------------------------------------------------
class Downsample(nn.Module):
    """A 3×3 stride-2 convolution then LayerNorm; channels-last in ``(B, H, W, C_in)`` → out."""

    def __init__(self, in_chans: int, out_chans: int, channels_last_in: bool = True):
        super().__init__()
        self.in_chans = _check_positive_int("in_chans", in_chans)
        _check_positive_int("out_chans", out_chans)
        self.channels_last_in = channels_last_in
        self.conv = nn.Conv2d(in_chans, out_chans, kernel_size=3, stride=2, padding=1)
        self.norm = nn.LayerNorm(out_chans, eps=1e-6)

    def forward(self, x):
        doc = f"(batch, H, W, {self.in_chans})" if self.channels_last_in else f"(batch, {self.in_chans}, H, W)"
        _check_tensor("x", x, 4, doc)
        if x.shape[3 if self.channels_last_in else 1] != self.in_chans:
            raise ValueError(f"x must have shape {doc}, got {tuple(x.shape)}")
        if self.channels_last_in:
            x = x.permute(0, 3, 1, 2)
        return self.norm(self.conv(x).permute(0, 2, 3, 1))


class MambaMixerBlock(nn.Module):
    """``x + MambaBlock(LN x)`` on the tokens of a ``(B, H, W, C)`` map read in raster order
    (row by row): a *causal* token mixer, as in a (unidirectional) visual Mamba."""

    def __init__(self, dim: int, d_state: int = 8, expand: int = 2, d_conv: int = 4):
        super().__init__()
        from .mamba import MambaBlock  # chapter 5's block

        self.dim = _check_positive_int("dim", dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mamba = MambaBlock(dim, d_state=d_state, d_conv=d_conv, expand=expand)

    def forward(self, x):
        _check_tensor("x", x, 4, "(batch, H, W, dim)")
        if x.shape[-1] != self.dim:
            raise ValueError(f"x must have shape (batch, H, W, dim={self.dim}), got {tuple(x.shape)}")
        B, H, W, C = x.shape
        seq = self.norm(x).reshape(B, H * W, C)
        return x + self.mamba(seq).reshape(B, H, W, C)


class TinyMambaOut(nn.Module):
    """A tiny hierarchical MambaOut for small images ``(batch, in_chans, H, W)`` → logits.

    Stem (3×3 stride-2 conv), then for each stage: blocks at that resolution, and a 3×3 stride-2
    downsampling conv before every stage but the first (like ResNet's stages); global mean pool,
    LayerNorm, linear head.  ``mixer="gated_cnn"`` uses :class:`GatedCNNBlock` (MambaOut);
    ``mixer="mamba"`` swaps each whole block for :class:`MambaMixerBlock` (a Mamba block over the
    raster-ordered tokens: its own 1-D causal width-4 conv, SiLU, expansion 2 and the SSM, causal).
    """

    def __init__(self, in_chans: int = 1, num_classes: int = 10, depths=(1, 1), dims=(16, 32),
                 kernel_size: int = 3, mixer: str = "gated_cnn", d_state: int = 8):
        super().__init__()
        if mixer not in ("gated_cnn", "mamba"):
            raise ValueError(f"mixer must be 'gated_cnn' or 'mamba', got {mixer!r}")
        if len(depths) != len(dims) or len(dims) == 0:
            raise ValueError(f"depths and dims must be non-empty and of equal length, got {depths}, {dims}")
        self.in_chans, self.mixer = in_chans, mixer
        self.downsample = nn.ModuleList(
            [Downsample(in_chans, dims[0], channels_last_in=False)]
            + [Downsample(dims[s - 1], dims[s]) for s in range(1, len(dims))])

        def block(d):
            if mixer == "gated_cnn":
                return GatedCNNBlock(d, kernel_size=kernel_size)
            return MambaMixerBlock(d, d_state=d_state)

        self.stages = nn.ModuleList([nn.Sequential(*[block(d) for _ in range(n)]) for n, d in zip(depths, dims)])
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, images):
        _check_images(images, self.in_chans)
        x = images
        for down, stage in zip(self.downsample, self.stages):
            x = stage(down(x))
        return self.head(self.norm(x.mean(dim=(1, 2))))


# ----------------------------------------------------------------------------------------------
# FLOPs: the long-sequence criterion
# ----------------------------------------------------------------------------------------------
def transformer_block_flops(L, D, mlp_ratio=4) -> dict:
    """FLOPs (2 per multiply-add) of the matrix products in one Transformer block on ``L`` tokens
    of width ``D``: the *linear* term (QKV and output projections, ``8 L D²``; MLP, ``4 r L D²``)
    and the *quadratic* term (``q kᵀ`` and ``A v``, ``2 L² D`` each).  Works on ints or sympy symbols.
    Norms, softmax, activations and biases are left out (lower order)."""
    for name, value in (("L", L), ("D", D), ("mlp_ratio", mlp_ratio)):
        _checks.sizes(name, value)
    linear = 2 * L * D * 3 * D + 2 * L * D * D + 2 * 2 * L * D * (mlp_ratio * D)
    quadratic = 2 * L * L * D + 2 * L * L * D
    return {"linear": linear, "quadratic": quadratic, "total": linear + quadratic}


def long_sequence_criterion():
    """Sympy: ``(L, D, r, ratio, threshold)`` where ``ratio = quadratic / linear`` FLOPs of a Transformer
    block with MLP ratio ``r`` and ``threshold`` the ``L`` at which ``ratio = 1`` (``(2 + r) D``)."""
    import sympy as sp

    L, D, r = sp.symbols("L D r", positive=True)
    f = transformer_block_flops(L, D, r)
    ratio = sp.simplify(f["quadratic"] / f["linear"])
    (threshold,) = sp.solve(sp.Eq(ratio, 1), L)
    return L, D, r, ratio, threshold


def n_tokens(height: int, width: int, patch: int = 16) -> int:
    """Number of ``patch × patch`` tokens of an ``height × width`` image (floor division)."""
    for name, v in (("height", height), ("width", width), ("patch", patch)):
        _check_positive_int(name, v)
    return (height // patch) * (width // patch)


def count_flops(module: nn.Module, *inputs) -> int:
    """FLOPs of ``module(*inputs)`` counted by torch's ``FlopCounterMode`` (matrix products and
    convolutions, 2 per multiply-add), no gradients."""
    from torch.utils.flop_counter import FlopCounterMode

    if not isinstance(module, nn.Module):
        raise ValueError(f"module must be a torch.nn.Module, got {type(module).__name__}")

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(*inputs)
    return int(counter.get_total_flops())


def kv_cache_floats(t, D: int, n_layers: int = 1):
    """Floats a causal Transformer keeps after ``t`` tokens: a key and a value per token per layer."""
    _checks.sizes("t", t, allow_symbols=False)
    D, n_layers = _checks.positive_int(D, "D"), _checks.positive_int(n_layers, "n_layers")
    return 2 * np.asarray(t) * D * n_layers


def mamba_state_floats(D: int, d_state: int = 16, expand: int = 2, d_conv: int = 4, n_layers: int = 1) -> int:
    """Floats a Mamba block keeps, whatever ``t``: the SSM state ``(expand·D, d_state)`` plus the
    last ``d_conv`` inputs of its causal conv ``(expand·D, d_conv)``, as ``MambaBlock.allocate_state``
    stores them (``d_conv - 1`` would do; the newest one is overwritten at once)."""
    for name, value in (("D", D), ("d_state", d_state), ("expand", expand), ("d_conv", d_conv),
                        ("n_layers", n_layers)):
        _checks.positive_int(value, name)
    inner = expand * D
    return n_layers * inner * (d_state + d_conv)


# ----------------------------------------------------------------------------------------------
# Who reads whom: the influence matrix of a token mixer
# ----------------------------------------------------------------------------------------------
def influence_matrix(mixer, L: int, dim: int, seed: int = 0) -> np.ndarray:
    """``(L, L)`` array; entry ``[t, s]`` is ``‖∂y_t / ∂x_s‖`` for ``y = mixer(x)``, ``x`` of shape
    ``(1, L, dim)`` drawn with ``seed``.  Zero above the diagonal means the mixer is causal."""
    if not callable(mixer):
        raise ValueError(f"mixer must be callable (a module mapping (1, L, dim) to (1, L, dim)), "
                         f"got {type(mixer).__name__}")
    L, dim = _check_positive_int("L", L), _check_positive_int("dim", dim)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, L, dim, generator=g)
    jac = torch.autograd.functional.jacobian(lambda z: mixer(z), x)  # (1, L, dim, 1, L, dim)
    return jac[0, :, :, 0].pow(2).sum(dim=(1, 3)).sqrt().detach().numpy()


# ----------------------------------------------------------------------------------------------
# The toy experiment: scikit-learn's 8×8 digits
# ----------------------------------------------------------------------------------------------
@dataclass
class DigitsSplit:
    x_train: torch.Tensor  # (n, 1, 8, 8) float32 in [0, 1]
    y_train: torch.Tensor  # (n,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor

    def __post_init__(self):
        for name in ("x_train", "x_test"):
            _checks.tensor(getattr(self, name), name, ndim=4, shape_doc="(n, 1, 8, 8)")
        for name, xname in (("y_train", "x_train"), ("y_test", "x_test")):
            y = _checks.tensor(getattr(self, name), name, ndim=1, shape_doc="(n,)", integer=True)
            if len(y) != len(getattr(self, xname)):
                raise ValueError(f"{name} must have one label per image of {xname} ({len(getattr(self, xname))}), "
                                 f"got {len(y)}")


def load_digits_split(test_fraction: float = 0.3, seed: int = 0) -> DigitsSplit:
    """scikit-learn's 8×8 digits (1797 images, shipped with the package), a stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=test_fraction, random_state=seed,
                                          stratify=d.target)
    return DigitsSplit(torch.from_numpy(xtr), torch.from_numpy(ytr).long(),
                       torch.from_numpy(xte), torch.from_numpy(yte).long())


MODELS = {
    "ViT, fully visible": lambda: TinyViT(mode="full"),
    "ViT, causal": lambda: TinyViT(mode="causal"),
    "MambaOut (Gated CNN)": lambda: TinyMambaOut(mixer="gated_cnn"),
    "Mamba block (causal, raster order)": lambda: TinyMambaOut(mixer="mamba"),
    "Mamba block, scan removed": lambda: tiny_mamba_without_scan(),
}


def make_model(name: str, seed: int) -> nn.Module:
    """One of :data:`MODELS`, initialised from ``seed``."""
    if name not in MODELS:
        raise ValueError(f"name must be one of {list(MODELS)}, got {name!r}")
    torch.manual_seed(seed)
    return MODELS[name]()


def accuracy(model: nn.Module, x, y, batch_size: int = 512) -> float:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_tensor("x", x, x.dim() if isinstance(x, torch.Tensor) else 0, "(n, ...)")
    _checks.tensor(y, "y", ndim=1, shape_doc="(n,)", integer=True)
    if len(y) != len(x) or len(x) == 0:
        raise ValueError(f"y must have one label per input of x (n = {len(x)} >= 1), got {len(y)}")
    batch_size = _check_positive_int("batch_size", batch_size)
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + batch_size]).argmax(-1) for i in range(0, len(x), batch_size)])
    return float((pred == y).float().mean())


def train_classifier(model: nn.Module, data: DigitsSplit, epochs: int = 12, lr: float = 3e-3,
                     batch_size: int = 64, seed: int = 0) -> dict:
    """Minimise cross-entropy with AdamW under a one-cycle schedule (short warm-up, cosine decay);
    ``seed`` fixes the data order.  Returns test accuracy, last training loss, parameter count and
    wall time (seconds, for information only)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(data, DigitsSplit):
        raise ValueError(f"data must be a DigitsSplit (from load_digits_split), got {type(data).__name__}")
    epochs = _check_positive_int("epochs", epochs)
    batch_size = _check_positive_int("batch_size", batch_size)
    _checks.positive_scalar(lr, "lr")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    n = len(data.x_train)
    steps = epochs * math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    t0 = time.perf_counter()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return {"test_acc": accuracy(model, data.x_test, data.y_test), "train_loss": loss.item(),
            "params": sum(p.numel() for p in model.parameters()), "seconds": time.perf_counter() - t0}


def run_digits_experiment(names=None, seeds=(0, 1, 2), epochs=12, data: DigitsSplit | None = None,
                          **train_kw):
    """Train every model in ``names`` once per seed; returns a list of dicts (one per run).

    ``epochs`` is an int or a dict ``{name: epochs}``; ``train_kw`` go to :func:`train_classifier`.
    """
    names = list(MODELS) if names is None else list(names)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise ValueError(f"names must be model names from {list(MODELS)}, got {unknown}")
    if data is not None and not isinstance(data, DigitsSplit):
        raise ValueError(f"data must be a DigitsSplit (from load_digits_split) or None, got {type(data).__name__}")
    if isinstance(epochs, dict):
        missing = [n for n in names if n not in epochs]
        if missing:
            raise ValueError(f"epochs must give a number of epochs for every model; missing {missing}")
    data = load_digits_split() if data is None else data
    runs = []
    for name in names:
        n_ep = epochs[name] if isinstance(epochs, dict) else epochs
        for seed in seeds:
            res = train_classifier(make_model(name, seed), data, epochs=n_ep, seed=seed, **train_kw)
            runs.append({"model": name, "seed": seed, "epochs": n_ep, **res})
    return runs


# ----------------------------------------------------------------------------------------------
# The Mamba block with its scan removed: the arm that isolates the SSM
# ----------------------------------------------------------------------------------------------
class MambaNoScanMixerBlock(nn.Module):
    """:class:`MambaMixerBlock` with the selective scan taken out, everything else kept.

    ``x + W_out( D ⊙ SiLU(conv(x_in)) ⊙ SiLU(z) )`` where ``[x_in, z] = W_in LN(x)`` on the tokens
    of a ``(B, H, W, C)`` map in raster order, ``conv`` the Mamba block's depthwise causal 1-D conv
    of width ``d_conv`` over ``expand · dim`` channels, and ``D`` the skip weight the scan would
    add.  This is what the Mamba block computes when the SSM term of its scan is zero, so comparing
    it with :class:`MambaMixerBlock` changes only the SSM (the Δ, B, C projections and the state).
    """

    def __init__(self, dim: int, expand: int = 2, d_conv: int = 4):
        super().__init__()
        dim = _check_positive_int("dim", dim)
        expand = _check_positive_int("expand", expand)
        d_conv = _check_positive_int("d_conv", d_conv)
        self.dim, self.d_inner, self.d_conv = dim, expand * dim, d_conv
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.in_proj = nn.Linear(dim, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, kernel_size=d_conv, groups=self.d_inner,
                                padding=d_conv - 1)
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, dim, bias=False)

    def forward(self, x):
        _checks.module_input(x, "x", self, ndim=4, shape_doc=f"(batch, H, W, dim={self.dim})", last=self.dim)
        B, H, W, C = x.shape
        seq = self.norm(x).reshape(B, H * W, C)
        xs, z = self.in_proj(seq).chunk(2, dim=-1)
        xs = self.conv1d(xs.transpose(1, 2))[..., : H * W].transpose(1, 2)   # causal: first L outputs
        y = self.D * F.silu(xs) * F.silu(z)
        return x + self.out_proj(y).reshape(B, H, W, C)


def tiny_mamba_without_scan(**kw) -> TinyMambaOut:
    """``TinyMambaOut(mixer="mamba", **kw)`` with every :class:`MambaMixerBlock` replaced by a
    :class:`MambaNoScanMixerBlock` of the same width: the same skeleton (stem, downsampling, norm,
    head, initialised as in the Mamba arm for the same seed) with the scan removed."""
    if "mixer" in kw:
        raise ValueError(f"mixer must not be given: this model is the Mamba arm without its scan, got {kw['mixer']!r}")
    allowed = [n for n in inspect.signature(TinyMambaOut).parameters if n != "mixer"]
    for name in kw:
        if name not in allowed:
            raise _checks.ArgumentTypeError(f"{name} must not be given: the arguments are those of "
                                            f"TinyMambaOut, {allowed}")
    model = TinyMambaOut(mixer="mamba", **kw)
    for stage in model.stages:
        for i, blk in enumerate(stage):
            stage[i] = MambaNoScanMixerBlock(blk.dim, expand=blk.mamba.expand, d_conv=blk.mamba.d_conv)
    return model
