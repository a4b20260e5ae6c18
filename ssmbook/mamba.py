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
from torch import nn

from . import _checks
from . import selective as sel
from .lm import ResidualLM

__all__ = ["MambaBlock", "MambaLM", "MambaState", "S4LM", "S4Mixer", "dt_bias_init", "s4d_real_A_log"]


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
        _checks.tensor(x, "x", shape_doc=shape)
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
        _checks.tensor(x_t, "x_t", shape_doc=shape)
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
# the language models: Mamba, and the time-invariant S4 baseline (chapter 5's experiment)
# --------------------------------------------------------------------------------------------
class MambaLM(ResidualLM):
    """embedding → n_layer × (x + MambaBlock(RMSNorm(x))) → RMSNorm → LM head tied to the embedding.

    ``forward(tokens)`` with int64 tokens (batch, L) returns logits (batch, L, vocab_size); ``step``
    runs one token at a time.  Extra keyword arguments (d_conv, expand, selective, backend, ...)
    go to every MambaBlock.
    """

    def __init__(self, vocab_size: int, d_model: int, n_layer: int, d_state: int = 16, **block_kw):
        super().__init__(vocab_size, d_model, n_layer, lambda d: MambaBlock(d, d_state=d_state, **block_kw),
                         device=block_kw.get("device"), dtype=block_kw.get("dtype"))


class S4Mixer(nn.Module):
    """``Linear(GELU(S4(x)))``: an S4D layer (:class:`ssmbook.s4.S4Layer`, a fixed convolution per
    channel) then GELU and a linear map, on (batch, L, d_model)."""

    def __init__(self, d_model: int, d_state: int = 16, **s4_kw):
        super().__init__()
        from .s4 import S4Layer

        self.ssm = S4Layer(d_model, d_state, **s4_kw)
        self.mix = nn.Linear(d_model, d_model)

    def forward(self, x):
        _checks.module_input(x, "x", self, ndim=3, shape_doc=f"(batch, L, d_model={self.ssm.d_model})",
                             last=self.ssm.d_model)
        return self.mix(F.gelu(self.ssm(x.transpose(1, 2)).transpose(1, 2)))


class S4LM(ResidualLM):
    """The time-invariant baseline: like :class:`MambaLM`, but each block is an :class:`S4Mixer`:
    embedding → n_layer × (x + Linear(GELU(S4(RMSNorm(x))))) → RMSNorm → tied head."""

    def __init__(self, vocab_size: int, d_model: int, n_layer: int, d_state: int = 16, **s4_kw):
        super().__init__(vocab_size, d_model, n_layer, lambda d: S4Mixer(d, d_state, **s4_kw))
