"""MambaOut: the Gated CNN block without the SSM, token-mixing masks, and the long-sequence criterion.

Chapter 7 asks the question of Yu & Wang (CVPR 2025): a Mamba block is a Gated CNN block with a
selective SSM inside; is the SSM needed for vision?  This module holds what the chapter runs:

* :func:`token_mixing_mask`: causal (GPT-style) versus fully visible (BERT/ViT-style) token
  mixing (attention itself is in :mod:`ssmbook.baselines`);
* :class:`GatedCNNBlock` (with its float64 loop oracle :func:`gated_cnn_block_ref`), the
  hierarchical :class:`TinyMambaOut` (optionally with a causal Mamba token mixer instead), and a
  :class:`TinyViT` with either mask;
* the long-sequence criterion (:func:`long_sequence_criterion`, from the FLOPs of a Transformer
  block, :func:`ssmbook.measure.transformer_block_flops`);
* the toy experiment on scikit-learn's 8x8 digits (:func:`run_digits_experiment`, trained with
  :func:`ssmbook.tasks.train_digits`).
"""
from __future__ import annotations

import inspect
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import _checks
from .baselines import TransformerBlock
from .measure import transformer_block_flops
from .tasks import DigitsSplit, load_digits_split, train_digits

MODES = ("causal", "full")


# ----------------------------------------------------------------------------------------------
# Token mixing: causal versus fully visible
# ----------------------------------------------------------------------------------------------
def token_mixing_mask(L: int, mode: str = "causal", device=None) -> torch.Tensor:
    """Boolean ``(L, L)`` mask; ``mask[t, s]`` is True when output token ``t`` may read input ``s``.

    ``"causal"`` (GPT-style, also Mamba's only mode): ``s <= t``.
    ``"full"`` (BERT/ViT-style, fully visible): every pair.
    """
    L = _checks.positive_int(L, "L")
    _checks.one_of(mode, "mode", MODES)
    ones = torch.ones(L, L, dtype=torch.bool, device=device)
    return torch.tril(ones) if mode == "causal" else ones


def _check_images(x, in_chans: int, image_size: int | None = None):
    doc = f"(batch, {in_chans}, H, W)" if image_size is None else f"(batch, {in_chans}, {image_size}, {image_size})"
    _checks.tensor(x, "images", ndim=4, shape_doc=doc)
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
        _checks.one_of(mode, "mode", MODES)
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
        dim = _checks.positive_int(dim, "dim")
        kernel_size = _checks.positive_int(kernel_size, "kernel_size")
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
        _checks.tensor(x, "x", ndim=self.spatial_dims + 2, shape_doc=doc)
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
    _checks.tensor(x, "x", shape_doc="(batch, ..., dim)")
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
        self.in_chans = _checks.positive_int(in_chans, "in_chans")
        _checks.positive_int(out_chans, "out_chans")
        self.channels_last_in = channels_last_in
        self.conv = nn.Conv2d(in_chans, out_chans, kernel_size=3, stride=2, padding=1)
        self.norm = nn.LayerNorm(out_chans, eps=1e-6)

    def forward(self, x):
        doc = f"(batch, H, W, {self.in_chans})" if self.channels_last_in else f"(batch, {self.in_chans}, H, W)"
        _checks.tensor(x, "x", ndim=4, shape_doc=doc)
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

        self.dim = _checks.positive_int(dim, "dim")
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mamba = MambaBlock(dim, d_state=d_state, d_conv=d_conv, expand=expand)

    def forward(self, x):
        _checks.tensor(x, "x", ndim=4, shape_doc="(batch, H, W, dim)")
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
def long_sequence_criterion():
    """Sympy: ``(L, D, r, ratio, threshold)`` where ``ratio = quadratic / linear`` FLOPs of a Transformer
    block with MLP ratio ``r`` and ``threshold`` the ``L`` at which ``ratio = 1`` (``(2 + r) D``)."""
    import sympy as sp

    L, D, r = sp.symbols("L D r", positive=True)
    f = transformer_block_flops(L, D, r)
    ratio = sp.simplify(f["quadratic"] / f["linear"])
    (threshold,) = sp.solve(sp.Eq(ratio, 1), L)
    return L, D, r, ratio, threshold




# ----------------------------------------------------------------------------------------------
# Who reads whom: the influence matrix of a token mixer
# ----------------------------------------------------------------------------------------------
def influence_matrix(mixer, L: int, dim: int, seed: int = 0) -> np.ndarray:
    """``(L, L)`` array; entry ``[t, s]`` is ``‖∂y_t / ∂x_s‖`` for ``y = mixer(x)``, ``x`` of shape
    ``(1, L, dim)`` drawn with ``seed``.  Zero above the diagonal means the mixer is causal."""
    if not callable(mixer):
        raise ValueError(f"mixer must be callable (a module mapping (1, L, dim) to (1, L, dim)), "
                         f"got {type(mixer).__name__}")
    L, dim = _checks.positive_int(L, "L"), _checks.positive_int(dim, "dim")
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, L, dim, generator=g)
    jac = torch.autograd.functional.jacobian(lambda z: mixer(z), x)  # (1, L, dim, 1, L, dim)
    return jac[0, :, :, 0].pow(2).sum(dim=(1, 3)).sqrt().detach().numpy()


# ----------------------------------------------------------------------------------------------
# The toy experiment: scikit-learn's 8×8 digits
# ----------------------------------------------------------------------------------------------
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


def run_digits_experiment(names=None, seeds=(0, 1, 2), epochs=12, data: DigitsSplit | None = None,
                          **train_kw):
    """Train every model in ``names`` once per seed; returns a list of dicts (one per run).

    ``epochs`` is an int or a dict ``{name: epochs}``; ``train_kw`` go to :func:`ssmbook.tasks.train_digits`.
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
            res = train_digits(make_model(name, seed), data, epochs=n_ep, seed=seed, **train_kw)
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
        dim = _checks.positive_int(dim, "dim")
        expand = _checks.positive_int(expand, "expand")
        d_conv = _checks.positive_int(d_conv, "d_conv")
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
