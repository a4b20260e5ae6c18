"""The language-model frame shared by the Mamba, Mamba-2, S4 and delta-rule models.

:class:`ResidualLM` is ``embedding → n_layer × (x + block(RMSNorm(x))) → RMSNorm → LM head``,
with the head tied to the embedding, for any token mixer ``make_block(d_model)`` that maps
``(batch, L, d_model)`` to the same shape.  When the blocks have a recurrent mode
(``allocate_state(batch)`` and ``step(x_t, state)``), so has the model: :meth:`ResidualLM.step`
runs one token at a time with one state per block.
"""
from __future__ import annotations

import torch
from torch import nn

from . import _checks

__all__ = ["RMSNorm", "ResidualLM"]


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x²) + eps) * weight`` over the last axis."""

    def __init__(self, d: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.d = _checks.positive_int(d, "d")
        self.eps = _checks.positive_scalar(eps, "eps")
        self.weight = nn.Parameter(torch.ones(d, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _checks.tensor(x, "x", shape_doc=f"(..., d={self.d})")
        if x.dim() < 1 or x.shape[-1] != self.d:
            raise ValueError(f"x must have shape (..., d={self.d}), got shape {tuple(x.shape)}")
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class ResidualLM(nn.Module):
    """embedding → n_layer × (x + block(RMSNorm(x))) → RMSNorm → LM head tied to the embedding.

    ``make_block(d_model)`` builds one token mixer; ``forward(tokens)`` with int64 tokens
    (batch, L) returns logits (batch, L, vocab_size).  The embedding starts as N(0, σ²) with
    σ = d_model^-1/2 (σ = 0.02 from d_model = 256 on).
    """

    def __init__(self, vocab_size: int, d_model: int, n_layer: int, make_block, device=None, dtype=None):
        super().__init__()
        for name, v in (("vocab_size", vocab_size), ("d_model", d_model), ("n_layer", n_layer)):
            _checks.positive_int(v, name)
        if not callable(make_block):
            raise _checks.ArgumentTypeError(f"make_block must be a callable d_model -> nn.Module, "
                                            f"got {type(make_block).__name__}")
        fk = {"device": device, "dtype": dtype}
        self.vocab_size, self.d_model, self.n_layer = vocab_size, d_model, n_layer
        self.embedding = nn.Embedding(vocab_size, d_model, **fk)
        self.norms = nn.ModuleList([RMSNorm(d_model, **fk) for _ in range(n_layer)])
        self.blocks = nn.ModuleList([make_block(d_model) for _ in range(n_layer)])
        self.norm_f = RMSNorm(d_model, **fk)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False, **fk)
        self.lm_head.weight = self.embedding.weight                           # tied
        with torch.no_grad():
            self.embedding.weight.normal_(0.0, 0.02 if d_model >= 256 else d_model ** -0.5)

    def _check_tokens(self, name: str, tokens, ndim: int) -> None:
        _checks.token_ids(tokens, name, self.vocab_size, ndim=ndim,
                          shape_doc="(batch, L)" if ndim == 2 else "(batch,)", device=self.embedding.weight.device)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self._check_tokens("tokens", tokens, 2)
        x = self.embedding(tokens)
        for norm, block in zip(self.norms, self.blocks):
            x = x + block(norm(x))
        return self.lm_head(self.norm_f(x))

    def allocate_state(self, batch: int, device=None, dtype=None) -> list:
        """One zero state per block (the blocks must have ``allocate_state``)."""
        return [blk.allocate_state(batch, device, dtype) for blk in self.blocks]

    def step(self, token_t: torch.Tensor, state: list):
        """One token per sequence: token_t (batch,) int64 → (logits (batch, vocab), new state)."""
        self._check_tokens("token_t", token_t, 1)
        if not isinstance(state, list) or len(state) != self.n_layer:
            raise ValueError(f"state must be a list of {self.n_layer} block states (from allocate_state)")
        x = self.embedding(token_t)
        new = []
        for norm, block, s in zip(self.norms, self.blocks, state):
            y, s = block.step(norm(x), s)
            x = x + y
            new.append(s)
        return self.lm_head(self.norm_f(x)), new
