"""The Mamba block and a tiny Mamba language model (chapter 5).

The block follows the Mamba paper (Gu & Dao): an input projection to two streams ``x`` and ``z``;
on ``x`` a causal depthwise convolution and SiLU, then the *selective* SSM whose Δ, B and C are
computed from ``x`` itself; the result is gated by ``silu(z)`` and projected back.  Inside, the
SSM is the book's linear recurrence, now with input-dependent coefficients, per channel d and
state index n::

    h_t[d, n] = exp(Δ_t[d] A[d, n]) h_{t-1}[d, n] + Δ_t[d] B_t[n] x_t[d]
    y_t[d]    = Σ_n C_t[n] h_t[d, n] + D[d] x_t[d]

``forward`` runs it over a whole sequence with :func:`ssmbook.selective.selective_scan`;
``step`` runs it one token at a time from a small state (the last ``d_conv`` inputs of the
convolution and the SSM state ``h``), the recurrent inference mode.  Both compute the same
function, which the tests check in float64.

``selective=False`` gives the time-invariant (LTI) ablation used in the chapter's experiment:
the same block, but Δ, B and C are learned constants (B and C per channel, like S4D), so the SSM
is a fixed convolution of its input.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import _checks
from . import selective as sel
from torch import nn

__all__ = ["MambaBlock", "MambaLM", "MambaState", "RMSNorm", "S4LM", "dt_bias_init", "s4d_real_A_log",
           "selective_copying_batch", "train_selective_copying"]


# --------------------------------------------------------------------------------------------
# initialisations
# --------------------------------------------------------------------------------------------
def s4d_real_A_log(d_inner: int, d_state: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """``log(-A)`` for the S4D-real initialisation ``A[d, n] = -(n + 1)``, shape (d_inner, d_state).

    The block stores ``A_log`` and uses ``A = -exp(A_log)``, so A stays negative (a stable,
    decaying recurrence) whatever the optimiser does to ``A_log``.
    """
    d_inner, d_state = _checks.positive_int(d_inner, "d_inner"), _checks.positive_int(d_state, "d_state")
    n = torch.arange(1, d_state + 1, dtype=dtype, device=device)
    return torch.log(n).expand(d_inner, d_state).contiguous()


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    """The x with ``softplus(x) = log(1 + exp(x)) = y`` for y > 0: ``x = y + log(1 - exp(-y))``."""
    return y + torch.log(-torch.expm1(-y))


def _check_dt_range(dt_min, dt_max):
    dt_min, dt_max = _checks.positive_scalar(dt_min, "dt_min"), _checks.positive_scalar(dt_max, "dt_max")
    if dt_min > dt_max:
        raise ValueError(f"dt_min must be <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")


def dt_bias_init(d_inner: int, dt_min: float = 1e-3, dt_max: float = 1e-1, floor: float = 1e-4,
                 generator: torch.Generator | None = None, dtype=torch.float32) -> torch.Tensor:
    """Bias of the Δ projection: ``softplus(bias)`` is log-uniform in ``[dt_min, dt_max]``.

    Each channel then starts with its own time scale: channels with small Δ average over a long
    context, channels with large Δ follow the current input.
    """
    _checks.positive_int(d_inner, "d_inner")
    _check_dt_range(dt_min, dt_max)
    u = torch.rand(d_inner, generator=generator, dtype=torch.float64)
    dt = torch.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=floor)
    return inverse_softplus(dt).to(dtype)


# --------------------------------------------------------------------------------------------
# the block
# --------------------------------------------------------------------------------------------
@dataclass
class MambaState:
    """Recurrent state of one :class:`MambaBlock` for a batch.

    ``conv``: (batch, d_inner, d_conv), the last d_conv inputs of the convolution (oldest first);
    ``ssm``: (batch, d_inner, d_state), the SSM state h.
    """

    conv: torch.Tensor
    ssm: torch.Tensor

    def __post_init__(self):
        for name in ("conv", "ssm"):
            _checks.tensor(getattr(self, name), name, ndim=3, shape_doc=f"(batch, d_inner, "
                           f"{'d_conv' if name == 'conv' else 'd_state'})")
        if self.ssm.shape[:2] != self.conv.shape[:2]:
            raise ValueError(f"ssm must have the (batch, d_inner) = {tuple(self.conv.shape[:2])} of conv, "
                             f"got shape {tuple(self.ssm.shape)}")


def _check_float_tensor(name: str, t, shape_msg: str) -> None:
    _checks.tensor(t, name, shape_doc=shape_msg)


class MambaBlock(nn.Module):
    """The Mamba block (no norm, no residual inside): (batch, L, d_model) → (batch, L, d_model).

    Parameters follow the paper: ``d_inner = expand * d_model`` channels, state size
    ``d_state`` (N) per channel, a depthwise causal convolution of width ``d_conv``, a low-rank
    Δ projection of rank ``dt_rank`` (``"auto"``: ceil(d_model / 16)).  ``backend`` is passed to
    :func:`ssmbook.selective.selective_scan` (``"auto"``: Triton on CUDA, torch elsewhere).
    ``selective=False`` makes Δ, B, C input-independent (the LTI ablation).
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank="auto", dt_min: float = 1e-3, dt_max: float = 1e-1, dt_init_floor: float = 1e-4,
                 bias: bool = False, conv_bias: bool = True, selective: bool = True,
                 backend: str = "auto", device=None, dtype=None):
        super().__init__()
        for name, v in (("d_model", d_model), ("d_conv", d_conv), ("expand", expand)):
            _checks.positive_int(v, name)
        # the Triton kernels hold a channel's whole state in one program: N is capped there
        _checks.positive_int(d_state, "d_state", maximum=sel.MAX_STATE)
        _check_dt_range(dt_min, dt_max)
        if dt_rank == "auto":
            dt_rank = math.ceil(d_model / 16)
        _checks.positive_int(dt_rank, "dt_rank")
        if backend not in ("auto", "torch", "triton", "ref"):
            raise ValueError(f"backend must be one of 'auto', 'torch', 'triton', 'ref', got {backend!r}")
        fk = {"device": device, "dtype": dtype}
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = d_inner = expand * d_model
        self.dt_rank = dt_rank
        self.selective = bool(selective)
        self.backend = backend

        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=bias, **fk)
        self.conv1d = nn.Conv1d(d_inner, d_inner, kernel_size=d_conv, groups=d_inner,
                                padding=d_conv - 1, bias=conv_bias, **fk)
        if self.selective:
            # x -> (Δ in low rank, B, C); then Δ -> d_inner channels
            self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False, **fk)
            self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True, **fk)
            with torch.no_grad():
                bound = dt_rank ** -0.5
                self.dt_proj.weight.uniform_(-bound, bound)
        else:
            # LTI: one Δ per channel (stored as the pre-softplus bias) and B, C per channel
            self.dt_bias = nn.Parameter(torch.empty(d_inner, **fk))
            self.B_lti = nn.Parameter(torch.randn(d_inner, d_state, **fk) * d_state ** -0.5)
            self.C_lti = nn.Parameter(torch.randn(d_inner, d_state, **fk) * d_state ** -0.5)
        with torch.no_grad():
            b = dt_bias_init(d_inner, dt_min, dt_max, dt_init_floor)
            (self.dt_proj.bias if self.selective else self.dt_bias).copy_(b)
        self.A_log = nn.Parameter(s4d_real_A_log(d_inner, d_state, device=device,
                                                 dtype=dtype or torch.get_default_dtype()))
        self.D = nn.Parameter(torch.ones(d_inner, **fk))
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias, **fk)

    # ---- helpers ---------------------------------------------------------------------------
    @property
    def A(self) -> torch.Tensor:
        """The (d_inner, d_state) state matrix diagonal, ``-exp(A_log)`` (always negative)."""
        return -torch.exp(self.A_log)

    @property
    def delta_bias(self) -> torch.Tensor:
        return self.dt_proj.bias if self.selective else self.dt_bias

    def ssm_params(self, x: torch.Tensor):
        """Δ (before bias and softplus), B, C from the conv output ``x`` of shape (batch, L, d_inner).

        Returns Δ as (batch, d_inner, L) and B, C as (batch, N, L) (selective) or
        (batch, d_inner, N, L) (LTI: one group per channel, constant over time).
        """
        b, L, _ = x.shape
        if self.selective:
            x_dbl = self.x_proj(x)
            dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
            delta = (dt @ self.dt_proj.weight.t()).transpose(1, 2)
            return delta, B.transpose(1, 2), C.transpose(1, 2)
        delta = x.new_zeros(b, self.d_inner, L)
        B = self.B_lti.to(x.dtype)[None, :, :, None].expand(b, -1, -1, L)
        C = self.C_lti.to(x.dtype)[None, :, :, None].expand(b, -1, -1, L)
        return delta, B, C

    def _check_input(self, x) -> None:
        shape = f"(batch, L, d_model={self.d_model})"
        _check_float_tensor("x", x, shape)
        if x.dim() != 3 or x.shape[-1] != self.d_model or x.shape[1] < 1 or x.shape[0] < 1:
            raise ValueError(f"x must have shape {shape} with batch, L >= 1, got {tuple(x.shape)}")
        _checks.module_input(x, "x", self, ndim=3, shape_doc=shape)

    # ---- sequence mode -----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, L, d_model) → (batch, L, d_model), all positions at once (the scan)."""
        self._check_input(x)
        L = x.shape[1]
        xz = self.in_proj(x)
        xs, z = xz.chunk(2, dim=-1)                               # (b, L, d_inner) each
        xs = self.conv1d(xs.transpose(1, 2))[..., :L]             # causal: keep the first L outputs
        xs = F.silu(xs)                                           # (b, d_inner, L)
        delta, B, C = self.ssm_params(xs.transpose(1, 2))
        y = sel.selective_scan(xs.contiguous(), delta.contiguous(), self.A, B.contiguous(), C.contiguous(),
                               D=self.D, z=z.transpose(1, 2).contiguous(), delta_bias=self.delta_bias,
                               delta_softplus=True, backend=self.backend)
        return self.out_proj(y.transpose(1, 2))

    # ---- recurrent mode ----------------------------------------------------------------------
    def allocate_state(self, batch: int, device=None, dtype=None) -> MambaState:
        """A zero state for ``batch`` sequences (the conv cache in ``dtype``, h in at least float32)."""
        batch = _checks.positive_int(batch, "batch")
        p = self.in_proj.weight
        device = p.device if device is None else device
        dtype = p.dtype if dtype is None else dtype
        sdtype = torch.float64 if dtype == torch.float64 else torch.float32
        return MambaState(conv=torch.zeros(batch, self.d_inner, self.d_conv, device=device, dtype=dtype),
                          ssm=torch.zeros(batch, self.d_inner, self.d_state, device=device, dtype=sdtype))

    def step(self, x_t: torch.Tensor, state: MambaState):
        """One token: x_t (batch, d_model) and the state → (y_t (batch, d_model), new state).

        The state is not modified in place; the returned one replaces it.
        """
        shape = f"(batch, d_model={self.d_model})"
        _check_float_tensor("x_t", x_t, shape)
        if x_t.dim() != 2 or x_t.shape[-1] != self.d_model or x_t.shape[0] < 1:
            raise ValueError(f"x_t must have shape {shape} with batch >= 1, got {tuple(x_t.shape)}")
        _checks.module_input(x_t, "x_t", self, ndim=2, shape_doc=shape)
        if not isinstance(state, MambaState):
            raise ValueError(f"state must be a MambaState from allocate_state, got {type(state).__name__}")
        b = x_t.shape[0]
        _checks.state_batch(tuple(state.conv.shape), b, "state (state.conv)", (b, self.d_inner, self.d_conv))
        _checks.state_batch(tuple(state.ssm.shape), b, "state (state.ssm)", (b, self.d_inner, self.d_state))
        if state.conv.device != x_t.device or state.ssm.device != x_t.device:
            raise ValueError(f"state must be on the device of x_t ({x_t.device}), got {state.conv.device}")

        xs, z = self.in_proj(x_t).chunk(2, dim=-1)                          # (b, d_inner)
        conv = torch.cat([state.conv[..., 1:], xs[..., None].to(state.conv.dtype)], dim=-1)
        xc = (conv * self.conv1d.weight[:, 0, :]).sum(-1)                  # the causal conv, one output
        if self.conv1d.bias is not None:
            xc = xc + self.conv1d.bias
        xc = F.silu(xc)
        delta, B, C = self.ssm_params(xc[:, None, :])                       # L = 1
        delta = F.softplus(delta[..., 0] + self.delta_bias)                 # (b, d_inner)
        B, C = B[..., 0], C[..., 0]                                         # (b, N) or (b, d_inner, N)
        if B.dim() == 2:
            B, C = B[:, None, :], C[:, None, :]
        h = state.ssm
        sd = h.dtype
        dA = torch.exp(delta.to(sd)[..., None] * self.A.to(sd))            # Ā_t = exp(Δ_t A)
        dBx = delta.to(sd)[..., None] * B.to(sd) * xc.to(sd)[..., None]      # B̄_t x_t = Δ_t B_t x_t
        h = dA * h + dBx
        y = (h * C.to(sd)).sum(-1) + self.D.to(sd) * xc.to(sd)
        y = (y * F.silu(z.to(sd))).to(x_t.dtype)
        return self.out_proj(y), MambaState(conv=conv, ssm=h)

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, d_inner={self.d_inner}, d_state={self.d_state}, "
                f"d_conv={self.d_conv}, dt_rank={self.dt_rank}, selective={self.selective}")


# --------------------------------------------------------------------------------------------
# a tiny language model
# --------------------------------------------------------------------------------------------
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


class MambaLM(nn.Module):
    """embedding → n_layer × (x + MambaBlock(RMSNorm(x))) → RMSNorm → LM head tied to the embedding.

    ``forward(tokens)`` with int64 tokens (batch, L) returns logits (batch, L, vocab_size).
    Extra keyword arguments (d_conv, expand, selective, backend, ...) go to every MambaBlock.
    """

    def __init__(self, vocab_size: int, d_model: int, n_layer: int, d_state: int = 16, **block_kw):
        super().__init__()
        for name, v in (("vocab_size", vocab_size), ("d_model", d_model), ("n_layer", n_layer)):
            _checks.positive_int(v, name)
        fk = {k: block_kw[k] for k in ("device", "dtype") if k in block_kw}
        self.vocab_size, self.d_model, self.n_layer = vocab_size, d_model, n_layer
        self.embedding = nn.Embedding(vocab_size, d_model, **fk)
        self.norms = nn.ModuleList([RMSNorm(d_model, **fk) for _ in range(n_layer)])
        self.blocks = nn.ModuleList([MambaBlock(d_model, d_state=d_state, **block_kw) for _ in range(n_layer)])
        self.norm_f = RMSNorm(d_model, **fk)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False, **fk)
        self.lm_head.weight = self.embedding.weight                           # tied
        with torch.no_grad():
            self.embedding.weight.normal_(0.0, 0.02 if d_model >= 256 else d_model ** -0.5)

    def _check_tokens(self, name: str, tokens, shape: str) -> None:
        _checks.token_ids(tokens, name, self.vocab_size, ndim=shape.count(",") + (shape != "(batch,)"),
                          shape_doc=shape, device=self.embedding.weight.device)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self._check_tokens("tokens", tokens, "(batch, L)")
        x = self.embedding(tokens)
        for norm, block in zip(self.norms, self.blocks):
            x = x + block(norm(x))
        return self.lm_head(self.norm_f(x))

    def allocate_state(self, batch: int, device=None, dtype=None) -> list:
        return [blk.allocate_state(batch, device, dtype) for blk in self.blocks]

    def step(self, token_t: torch.Tensor, state: list):
        """One token per sequence: token_t (batch,) int64 → (logits (batch, vocab), new state)."""
        self._check_tokens("token_t", token_t, "(batch,)")
        if not isinstance(state, list) or len(state) != self.n_layer:
            raise ValueError(f"state must be a list of {self.n_layer} MambaState (from allocate_state)")
        x = self.embedding(token_t)
        new = []
        for norm, block, s in zip(self.norms, self.blocks, state):
            y, s = block.step(norm(x), s)
            x = x + y
            new.append(s)
        return self.lm_head(self.norm_f(x)), new


# --------------------------------------------------------------------------------------------
# the LTI baseline and the selective-copying task (chapter 5's experiment)
# --------------------------------------------------------------------------------------------
class S4LM(nn.Module):
    """The time-invariant baseline: like :class:`MambaLM`, but each block is an S4D layer
    (:class:`ssmbook.s4.S4Layer`, a fixed convolution per channel) followed by GELU and a linear map:
    embedding → n_layer × (x + Linear(GELU(S4(RMSNorm(x))))) → RMSNorm → tied head.
    """

    def __init__(self, vocab_size: int, d_model: int, n_layer: int, d_state: int = 16, **s4_kw):
        super().__init__()
        from .s4 import S4Layer

        for name, v in (("vocab_size", vocab_size), ("d_model", d_model), ("n_layer", n_layer)):
            _checks.positive_int(v, name)
        self.vocab_size, self.d_model, self.n_layer = vocab_size, d_model, n_layer
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.norms = nn.ModuleList([RMSNorm(d_model) for _ in range(n_layer)])
        self.ssms = nn.ModuleList([S4Layer(d_model, d_state, **s4_kw) for _ in range(n_layer)])
        self.mix = nn.ModuleList([nn.Linear(d_model, d_model) for _ in range(n_layer)])
        self.norm_f = RMSNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.embedding.weight
        with torch.no_grad():
            self.embedding.weight.normal_(0.0, d_model ** -0.5)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        MambaLM._check_tokens(self, "tokens", tokens, "(batch, L)")
        x = self.embedding(tokens)
        for norm, ssm, mix in zip(self.norms, self.ssms, self.mix):
            y = ssm(norm(x).transpose(1, 2)).transpose(1, 2)
            x = x + mix(F.gelu(y))
        return self.lm_head(self.norm_f(x))


def selective_copying_batch(batch: int, n_context: int = 24, n_data: int = 4, n_symbols: int = 8,
                            generator: torch.Generator | None = None):
    """A batch of the selective-copying task (Gu & Dao, section 3.1), at toy scale.

    Vocabulary: ``0`` blank (noise), ``1..n_symbols`` data symbols, ``n_symbols + 1`` the "go" marker.
    Each sequence has ``n_context`` positions, of which ``n_data`` random ones (a different set in
    every row) hold random data symbols and the rest are blank, followed by ``n_data`` go markers.
    At the markers the model must output the data symbols in their order of appearance.

    Returns ``tokens`` (batch, n_context + n_data) int64 and ``targets`` (batch, n_data) int64; the
    vocabulary size is ``n_symbols + 2``.
    """
    for name, v in (("batch", batch), ("n_context", n_context), ("n_data", n_data), ("n_symbols", n_symbols)):
        _checks.positive_int(v, name)
    if n_data > n_context:
        raise ValueError(f"n_data must be <= n_context, got n_data={n_data}, n_context={n_context}")
    pos = torch.rand(batch, n_context, generator=generator).argsort(dim=1)[:, :n_data]
    pos = pos.sort(dim=1).values                                           # in order of appearance
    data = torch.randint(1, n_symbols + 1, (batch, n_data), generator=generator)
    tokens = torch.zeros(batch, n_context + n_data, dtype=torch.int64)
    tokens.scatter_(1, pos, data)
    tokens[:, n_context:] = n_symbols + 1
    return tokens, data


def train_selective_copying(model: nn.Module, steps: int, batch: int = 32, lr: float = 3e-3,
                            n_context: int = 24, n_data: int = 4, n_symbols: int = 8, seed: int = 0,
                            n_eval: int = 512) -> dict:
    """Train ``model`` (tokens → logits) on selective copying with AdamW (learning rate ``lr`` after a
    linear warm-up over the first tenth of the steps); the loss is the cross-entropy at the
    ``n_data`` answer positions only.  Batches are drawn on the CPU and moved to the model's device.

    Returns ``{"loss": [...], "acc": [...]}`` (per training step: the batch's loss and the fraction
    of answer tokens right), ``"eval_acc"``: that fraction on ``n_eval`` fresh sequences, and
    ``"eval_acc_by_position"``: the same per answer position (first, second, ... data token).
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module (tokens -> logits), got {type(model).__name__}")
    for name, v in (("steps", steps), ("batch", batch), ("n_eval", n_eval)):
        _checks.positive_int(v, name)
    _checks.positive_scalar(lr, "lr")
    g = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / warmup))  # linear warm-up
    hist = {"loss": [], "acc": []}
    model.train()
    for _ in range(steps):
        tokens, target = selective_copying_batch(batch, n_context, n_data, n_symbols, generator=g)
        tokens, target = tokens.to(device), target.to(device)
        logits = model(tokens)[:, -n_data:]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        hist["loss"].append(loss.item())
        hist["acc"].append((logits.argmax(-1) == target).float().mean().item())
    model.eval()
    g_eval = torch.Generator().manual_seed(10_000 + seed)
    tokens, target = selective_copying_batch(n_eval, n_context, n_data, n_symbols, generator=g_eval)
    with torch.no_grad():
        right = (model(tokens.to(device))[:, -n_data:].argmax(-1).cpu() == target).double()
    hist["eval_acc"] = right.mean().item()
    hist["eval_acc_by_position"] = right.mean(0).tolist()
    return hist
