"""Mamba-2's state-space duality (SSD): one layer computed as a recurrence, as a matrix, in chunks.

The SSD layer (Dao & Gu 2024) is a selective SSM whose state matrix is a scalar times the identity
in each head.  Head ``h`` keeps a state ``H_t`` of shape (head_dim, N) and computes

    H_t = exp(A_t) H_{t-1} + x_t B_tᵀ,        y_t = H_t C_t,

with ``A_t <= 0`` the Δ-scaled log decay (Mamba-2 passes ``A_t = Δ_t a`` and ``x_t = Δ_t u_t``).
Unrolled, ``y = M x`` with the lower-triangular *semiseparable* matrix

    M[t, s] = (C_tᵀ B_s) · exp(A_{s+1} + ... + A_t)      (s <= t),

which is masked linear attention with queries C, keys B and a decay mask.  Three ways to compute it:

* :func:`ssd_ref`: the recurrence, a float64 loop (the oracle);
* :func:`ssd_quadratic`: the matrix ``M`` built in full, O(L²) (the attention form);
* :func:`ssd`: the chunked algorithm: the diagonal blocks of ``M`` by matmuls
  (:func:`ssd_diag_blocks`), one state per chunk (:func:`ssd_chunk_states`), a short scan over
  chunks (:func:`ssd_state_passing`), and the states read out in the next chunk
  (:func:`ssd_off_diag`).

Shapes (the same for all three): X (batch, L, heads, head_dim), A (batch, L, heads),
B and C (batch, L, heads, N), an initial state (batch, heads, head_dim, N).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import _checks
from .lm import ResidualLM, RMSNorm
from .mamba import dt_bias_init

__all__ = ["ssd", "ssd_ref", "ssd_quadratic", "segsum", "ssd_diag_blocks", "ssd_chunk_states",
           "ssd_state_passing", "ssd_off_diag", "ssd_flops", "GatedRMSNorm", "Mamba2State",
           "Mamba2Block", "Mamba2LM"]


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------
def _check_ssd(X, A, B, C, initial_state=None, chunk=None, return_final_state=False):
    _checks.tensor(X, "X", shape_doc="(batch, L, heads, head_dim)")
    if X.dim() != 4 or X.shape[1] < 1:
        raise ValueError(f"X must have shape (batch, L, heads, head_dim) with L >= 1, got {tuple(X.shape)}")
    b, L, h, p = X.shape
    _checks.tensor(A, "A", shape_doc=f"(batch, L, heads) = {(b, L, h)}")
    _checks.tensor(B, "B", shape_doc=f"(batch, L, heads, N) = {(b, L, h)} + (N,)")
    if (b, h, L) != (b, L, h) and tuple(A.shape) == (b, h, L) and tuple(B.shape[:3]) == (b, h, L):
        # A and B agree with each other and disagree with X by a swap of L and heads: X is wrong
        raise ValueError(f"X must have shape (batch, L, heads, head_dim) = {(b, h, L, p)} to match A and B, "
                         f"got {tuple(X.shape)} (it looks like (batch, heads, L, head_dim); "
                         "transpose axes 1 and 2)")
    if tuple(A.shape) != (b, L, h):
        raise ValueError(f"A must have shape (batch, L, heads) = {(b, L, h)}, got {tuple(A.shape)}")
    _checks.tensor(B, "B", shape_doc=f"(batch, L, heads, N) = {(b, L, h)} + (N,)")
    if B.dim() != 4 or tuple(B.shape[:3]) != (b, L, h):
        raise ValueError(f"B must have shape (batch, L, heads, N) = {(b, L, h)} + (N,), got {tuple(B.shape)}")
    n = B.shape[-1]
    _checks.tensor(C, "C", shape_doc=f"(batch, L, heads, N) = {(b, L, h, n)}")
    if tuple(C.shape) != (b, L, h, n):
        raise ValueError(f"C must have shape (batch, L, heads, N) = {(b, L, h, n)}, got {tuple(C.shape)}")
    for name, t in (("A", A), ("B", B), ("C", C)):
        if t.dtype != X.dtype or t.device != X.device:
            raise TypeError(f"{name} must have X's dtype and device ({X.dtype}, {X.device}), "
                            f"got ({t.dtype}, {t.device})")
    if not bool(torch.all(A <= 0)):
        raise ValueError("A must be <= 0 everywhere (the log of a decay in (0, 1]), "
                         f"got a maximum of {A.max().item():.3g}")
    if initial_state is not None:
        _checks.tensor(initial_state, "initial_state", shape=(b, h, p, n),
                       shape_doc=f"(batch, heads, head_dim, N) = {(b, h, p, n)}")
        _checks.same_device(initial_state, "initial_state", X, "X")
    for name, t in (("X", X), ("B", B), ("C", C), ("initial_state", initial_state)):
        if t is not None:
            _checks.finite(t, name)
    if chunk is not None:
        _checks.positive_int(chunk, "chunk")
    _checks.flag(return_final_state, "return_final_state")
    return b, L, h, p, n


def _check_chunked(name, t, ndim, doc, sizes):
    """A chunked operand of the four steps: a floating tensor of rank ``ndim`` whose axes listed in
    ``sizes`` ({axis: size}) have the sizes the other operands imply."""
    _checks.tensor(t, name, ndim=ndim, shape_doc=doc)
    for axis, size in sizes.items():
        if t.shape[axis] != size:
            raise ValueError(f"{name} must have shape {doc} matching the other operands, got {tuple(t.shape)}")
    return t.shape


def _check_log_decay(name, t):
    """A log decay: no NaN and nothing above 0 (-inf, a decay of exactly 0, is allowed)."""
    _checks.finite(t, name, allow_neg_inf=True)
    if not bool(torch.all(t <= 0)):
        raise ValueError(f"{name} must be <= 0 everywhere (the log of a decay in (0, 1]), "
                         f"got a maximum of {t.max().item():.3g}")


# --------------------------------------------------------------------------------------------
# the three forms
# --------------------------------------------------------------------------------------------
def ssd_ref(X, A, B, C, initial_state=None, return_final_state=False):
    """The SSD recurrence as a loop over time, in float64 (the oracle); returns X's dtype.

    ``H_t = exp(A_t) H_{t-1} + x_t B_tᵀ``, ``y_t = H_t C_t`` for every batch row and head.
    Returns Y (batch, L, heads, head_dim), and the final state (batch, heads, head_dim, N) in
    float64 when ``return_final_state``.
    """
    b, L, h, p, n = _check_ssd(X, A, B, C, initial_state, return_final_state=return_final_state)
    f64 = torch.float64
    X64, A64, B64, C64 = (t.to(f64) for t in (X, A, B, C))
    H = (torch.zeros(b, h, p, n, dtype=f64, device=X.device) if initial_state is None
         else initial_state.to(f64))
    ys = []
    for t in range(L):
        H = torch.exp(A64[:, t])[..., None, None] * H + X64[:, t, :, :, None] * B64[:, t, :, None, :]
        ys.append((H * C64[:, t, :, None, :]).sum(-1))
    Y = torch.stack(ys, dim=1).to(X.dtype)
    return (Y, H) if return_final_state else Y


def segsum(A):
    """``out[..., t, s] = A[..., s+1] + ... + A[..., t]`` for ``s <= t`` and ``-inf`` above the diagonal.

    Built from a cumulative sum of a masked copy (no difference of two large cumulative sums), so
    every entry is exact up to the rounding of a short sum; ``exp(segsum(A))`` is the decay mask.
    """
    _checks.tensor(A, "A", shape_doc="(..., L)")
    if A.dim() < 1 or A.shape[-1] < 1:
        raise ValueError(f"A must have shape (..., L) with L >= 1, got {tuple(A.shape)}")
    _checks.finite(A, "A", allow_neg_inf=True)
    L = A.shape[-1]
    x = A[..., None].expand(*A.shape, L)                                   # x[..., r, s] = A_r
    strict = torch.tril(torch.ones(L, L, dtype=torch.bool, device=A.device), diagonal=-1)
    x = x.masked_fill(~strict, 0.0)                                        # keep r > s
    out = torch.cumsum(x, dim=-2)                                          # sum over s < r <= t
    lower = torch.tril(torch.ones(L, L, dtype=torch.bool, device=A.device))
    return out.masked_fill(~lower, -math.inf)


def ssd_quadratic(X, A, B, C, initial_state=None, return_final_state=False):
    """SSD as masked linear attention: ``Y = (L ∘ C Bᵀ) X`` with the decay mask ``L = exp(segsum(A))``.

    Costs O(L²) per head, like attention.  An initial state adds ``exp(A_0 + ... + A_t) H_0 C_t``.
    """
    b, L, h, p, n = _check_ssd(X, A, B, C, initial_state, return_final_state=return_final_state)
    Ah = A.transpose(1, 2)                                                 # (b, h, L)
    mask = torch.exp(segsum(Ah))                                           # (b, h, L, L) [t, s]
    scores = torch.einsum("bthn,bshn->bhts", C, B)                         # C_tᵀ B_s
    Y = torch.einsum("bhts,bshp->bthp", mask * scores, X)
    cum = torch.cumsum(Ah, dim=-1)                                         # A_0 + ... + A_t
    if initial_state is not None:
        H0 = initial_state.to(X.dtype)
        Y = Y + torch.einsum("bht,bhpn,bthn->bthp", torch.exp(cum), H0, C)
    if not return_final_state:
        return Y
    w = torch.exp(cum[..., -1:] - cum)                                     # decay from s to the end
    H = torch.einsum("bhs,bshp,bshn->bhpn", w, X, B)
    if initial_state is not None:
        H = H + torch.exp(cum[..., -1])[..., None, None] * initial_state.to(X.dtype)
    return Y, H


# --------------------------------------------------------------------------------------------
# the chunked algorithm, in its four steps
# --------------------------------------------------------------------------------------------
def _chunked(t, chunk):
    """(batch, L, ...) → (batch, L/chunk, chunk, ...), L already a multiple of chunk."""
    b, L = t.shape[:2]
    return t.reshape(b, L // chunk, chunk, *t.shape[2:])


def ssd_diag_blocks(Xc, Ac, Bc, Cc):
    """Step 1, the diagonal blocks: within each chunk, the quadratic (attention) form by matmuls.

    Xc (b, chunks, Q, h, p), Ac (b, h, chunks, Q), Bc, Cc (b, chunks, Q, h, n) → (b, chunks, Q, h, p).
    """
    b, c, Q, h, p = _check_chunked("Xc", Xc, 5, "(b, chunks, Q, h, p)", {})
    _check_chunked("Ac", Ac, 4, f"(b, h, chunks, Q) = {(b, h, c, Q)}", dict(enumerate((b, h, c, Q))))
    n = _check_chunked("Bc", Bc, 5, f"(b, chunks, Q, h, n) = {(b, c, Q, h)} + (n,)",
                       dict(enumerate((b, c, Q, h))))[-1]
    _check_chunked("Cc", Cc, 5, f"(b, chunks, Q, h, n) = {(b, c, Q, h, n)}", dict(enumerate((b, c, Q, h, n))))
    mask = torch.exp(segsum(Ac))                                           # (b, h, c, Q, Q)
    scores = torch.einsum("bclhn,bcshn->bhcls", Cc, Bc) * mask             # C Bᵀ ∘ L, per chunk
    return torch.einsum("bhcls,bcshp->bclhp", scores, Xc)


def ssd_chunk_states(Xc, Ac, Bc):
    """Step 2: the state each chunk would leave behind if it started from zero, (b, chunks, h, p, n)."""
    b, c, Q, h, p = _check_chunked("Xc", Xc, 5, "(b, chunks, Q, h, p)", {})
    _check_chunked("Ac", Ac, 4, f"(b, h, chunks, Q) = {(b, h, c, Q)}", dict(enumerate((b, h, c, Q))))
    _check_log_decay("Ac", Ac)
    _check_chunked("Bc", Bc, 5, f"(b, chunks, Q, h, n) = {(b, c, Q, h)} + (n,)", dict(enumerate((b, c, Q, h))))
    cum = torch.cumsum(Ac, dim=-1)
    decay = torch.exp(cum[..., -1:] - cum)                                 # exp(A_{s+1} + ... + A_end)
    return torch.einsum("bclhn,bhcl,bclhp->bchpn", Bc, decay, Xc)


def ssd_state_passing(states, chunk_log_decay, initial_state=None):
    """Step 3: the short scan over chunks, ``H_c = exp(a_c) H_{c-1} + S_c`` (chapter 6's recurrence).

    states (b, chunks, h, p, n); chunk_log_decay (b, h, chunks), the sum of A over each chunk.
    Returns the states *entering* each chunk (b, chunks, h, p, n) and the final state.
    """
    b, c, h, p, n = _check_chunked("states", states, 5, "(b, chunks, h, p, n)", {})
    _check_chunked("chunk_log_decay", chunk_log_decay, 3, f"(b, h, chunks) = {(b, h, c)}",
                   dict(enumerate((b, h, c))))
    _check_log_decay("chunk_log_decay", chunk_log_decay)
    if initial_state is not None:
        _check_chunked("initial_state", initial_state, 4, f"(b, h, p, n) = {(b, h, p, n)}",
                       dict(enumerate((b, h, p, n))))
    H = states.new_zeros(b, h, p, n) if initial_state is None else initial_state.to(states.dtype)
    entering = []
    for i in range(c):                                                     # chunks: L / Q steps
        entering.append(H)
        H = torch.exp(chunk_log_decay[:, :, i])[..., None, None] * H + states[:, i]
    return torch.stack(entering, dim=1), H


def ssd_off_diag(Cc, Ac, entering):
    """Step 4, the off-diagonal blocks: each position reads the state that entered its chunk,
    decayed to that position: ``y_t += exp(A_{start} + ... + A_t) H_in C_t``."""
    b, c, Q, h, n = _check_chunked("Cc", Cc, 5, "(b, chunks, Q, h, n)", {})
    _check_chunked("Ac", Ac, 4, f"(b, h, chunks, Q) = {(b, h, c, Q)}", dict(enumerate((b, h, c, Q))))
    _check_chunked("entering", entering, 5, f"(b, chunks, h, p, n) = {(b, c, h)} + (p, {n})",
                   {0: b, 1: c, 2: h, 4: n})
    decay = torch.exp(torch.cumsum(Ac, dim=-1))                            # (b, h, c, Q)
    return torch.einsum("bclhn,bchpn,bhcl->bclhp", Cc, entering, decay)


def ssd(X, A, B, C, chunk=64, initial_state=None, return_final_state=False):
    """The chunked SSD algorithm (Mamba-2's training algorithm); same result as :func:`ssd_ref`.

    The sequence is cut into chunks of ``chunk`` positions (the last one padded with zero input
    and zero log decay, which leaves outputs and final state unchanged).  Cost per head: about
    ``2·L·Q·(N + head_dim)`` multiply-adds in matmuls plus ``O(L·N·head_dim)``, and a sequential
    scan of only ``L / Q`` steps.  Returns Y (batch, L, heads, head_dim) [and the final state].
    """
    b, L, h, p, n = _check_ssd(X, A, B, C, initial_state, chunk, return_final_state)
    chunk = min(chunk, L)                                                  # a short sequence is one chunk
    pad = (-L) % chunk
    if pad:
        X, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (X, B, C))
        A = F.pad(A, (0, 0, 0, pad))
    Xc, Bc, Cc = (_chunked(t, chunk) for t in (X, B, C))
    Ac = _chunked(A, chunk).permute(0, 3, 1, 2)                            # (b, h, chunks, Q)
    Y_diag = ssd_diag_blocks(Xc, Ac, Bc, Cc)
    states = ssd_chunk_states(Xc, Ac, Bc)
    entering, final = ssd_state_passing(states, Ac.sum(-1), initial_state)
    Y = (Y_diag + ssd_off_diag(Cc, Ac, entering)).reshape(b, L + pad, h, p)[:, :L]
    return (Y, final) if return_final_state else Y


def ssd_flops(L, heads, head_dim, N, chunk):
    """Floating-point operations (a multiply-add counts 2) of the three forms, for one sequence.

    Returns a dict: ``"recurrent"`` (per step: decay, outer product, read-out), ``"quadratic"``
    (the full L×L matrix) and, for the chunked algorithm, ``"chunked_matmul"`` (steps 1, 2, 4,
    all matrix products) and ``"chunked_scan"`` (step 3, the only sequential part).
    """
    for name, v in (("L", L), ("heads", heads), ("head_dim", head_dim), ("N", N), ("chunk", chunk)):
        _checks.positive_int(v, name)
    P, Q = head_dim, chunk
    c = -(-L // Q)
    rec = L * (P * N + 2 * P * N + 2 * P * N)                              # decay, x Bᵀ add, H C
    quad = 2 * L * L * N + L * L + 2 * L * L * P                           # C Bᵀ, mask, (·) X
    diag = c * (2 * Q * Q * N + Q * Q + 2 * Q * Q * P)
    states = c * (Q * P + 2 * Q * N * P)
    off = c * (2 * Q * N * P + Q * P)
    scan = c * 2 * P * N
    return {"recurrent": heads * rec, "quadratic": heads * quad,
            "chunked_matmul": heads * (diag + states + off), "chunked_scan": heads * scan}


# --------------------------------------------------------------------------------------------
# the Mamba-2 block
# --------------------------------------------------------------------------------------------
class GatedRMSNorm(nn.Module):
    """``RMSNorm(y ⊙ SiLU(z))``: Mamba-2's output gate, applied before the normalisation."""

    def __init__(self, d: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.norm = RMSNorm(d, eps=eps, device=device, dtype=dtype)

    def forward(self, y, z):
        d = self.norm.d
        _checks.tensor(y, "y", shape_doc=f"(..., d={d})")
        if y.dim() < 1 or y.shape[-1] != d:
            raise ValueError(f"y must have shape (..., d={d}), got shape {tuple(y.shape)}")
        _checks.tensor(z, "z", shape_doc=f"y's shape {tuple(y.shape)}")
        if z.shape != y.shape:
            raise ValueError(f"z must have y's shape {tuple(y.shape)}, got {tuple(z.shape)}")
        return self.norm(y * F.silu(z))


class Mamba2State:
    """Recurrent state of one :class:`Mamba2Block`: ``conv`` (batch, conv_dim, d_conv), the last
    inputs of the short convolution (oldest first), and ``ssm`` (batch, heads, head_dim, N)."""

    def __init__(self, conv, ssm):
        _checks.tensor(conv, "conv", ndim=3, shape_doc="(batch, conv_dim, d_conv)")
        _checks.tensor(ssm, "ssm", ndim=4, shape_doc="(batch, heads, head_dim, N)")
        if ssm.shape[0] != conv.shape[0]:
            raise ValueError(f"ssm must have conv's batch size {conv.shape[0]} (shape (batch, heads, "
                             f"head_dim, N)), got shape {tuple(ssm.shape)}")
        self.conv, self.ssm = conv, ssm


class Mamba2Block(nn.Module):
    """The Mamba-2 block: (batch, L, d_model) → (batch, L, d_model).

    One input projection gives z (the gate), x, B, C (one group, shared by all heads) and Δ per
    head; x, B, C pass a short causal depthwise convolution and SiLU; the SSD layer runs with
    ``A_t = Δ_t a_h`` and input ``Δ_t x_t``, plus the skip ``D_h x_t``; then the gated RMSNorm
    and the output projection.  ``d_inner = expand · d_model`` channels in heads of ``head_dim``.
    ``step`` runs one token at a time with a fixed-size state and gives the same outputs.
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 head_dim: int = 16, chunk: int = 64, dt_min: float = 1e-3, dt_max: float = 1e-1,
                 device=None, dtype=None):
        super().__init__()
        for name, v in (("d_model", d_model), ("d_state", d_state), ("d_conv", d_conv),
                        ("expand", expand), ("head_dim", head_dim), ("chunk", chunk)):
            _checks.positive_int(v, name)
        d_inner = expand * d_model
        if d_inner % head_dim:
            raise ValueError(f"head_dim must divide d_inner = expand * d_model = {d_inner}, got {head_dim}")
        fk = {"device": device, "dtype": dtype}
        self.d_model, self.d_state, self.d_conv, self.d_inner = d_model, d_state, d_conv, d_inner
        self.head_dim, self.n_heads, self.chunk = head_dim, d_inner // head_dim, chunk
        self.conv_dim = d_inner + 2 * d_state
        self.in_proj = nn.Linear(d_model, 2 * d_inner + 2 * d_state + self.n_heads, bias=False, **fk)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, kernel_size=d_conv, groups=self.conv_dim,
                                padding=d_conv - 1, **fk)
        self.dt_bias = nn.Parameter(dt_bias_init(self.n_heads, dt_min, dt_max).to(
            dtype or torch.get_default_dtype()).to(device))
        a0 = torch.linspace(1.0, 16.0, self.n_heads, dtype=torch.float64)  # decay rates per head
        self.A_log = nn.Parameter(torch.log(a0).to(dtype or torch.get_default_dtype()).to(device))
        self.D = nn.Parameter(torch.ones(self.n_heads, **fk))
        self.norm = GatedRMSNorm(d_inner, **fk)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False, **fk)

    def _split(self, zxbcdt):
        return torch.split(zxbcdt, [self.d_inner, self.conv_dim, self.n_heads], dim=-1)

    def _ssd_inputs(self, xBC, dt):
        """Conv output (..., conv_dim) and raw Δ (..., heads) → x per head, B, C per head, Δ, a."""
        x, Bm, Cm = torch.split(xBC, [self.d_inner, self.d_state, self.d_state], dim=-1)
        x = x.reshape(*x.shape[:-1], self.n_heads, self.head_dim)
        Bm = Bm.unsqueeze(-2).expand(*Bm.shape[:-1], self.n_heads, self.d_state)
        Cm = Cm.unsqueeze(-2).expand(*Cm.shape[:-1], self.n_heads, self.d_state)
        dt = F.softplus(dt + self.dt_bias)
        return x, Bm, Cm, dt, -torch.exp(self.A_log)

    def forward(self, u):
        _checks.module_input(u, "u", self, ndim=3, shape_doc=f"(batch, L, d_model={self.d_model})",
                             last=self.d_model)
        L = u.shape[1]
        z, xBC, dt = self._split(self.in_proj(u))
        xBC = F.silu(self.conv1d(xBC.transpose(1, 2))[..., :L].transpose(1, 2))
        x, Bm, Cm, dt, a = self._ssd_inputs(xBC, dt)
        y = ssd(x * dt[..., None], dt * a, Bm.contiguous(), Cm.contiguous(), chunk=self.chunk)
        y = y + self.D[:, None] * x
        y = self.norm(y.reshape(*y.shape[:2], self.d_inner), z)
        return self.out_proj(y)

    def allocate_state(self, batch: int, device=None, dtype=None) -> Mamba2State:
        _checks.positive_int(batch, "batch")
        p = self.in_proj.weight
        device = p.device if device is None else device
        dtype = p.dtype if dtype is None else dtype
        return Mamba2State(torch.zeros(batch, self.conv_dim, self.d_conv, device=device, dtype=dtype),
                           torch.zeros(batch, self.n_heads, self.head_dim, self.d_state, device=device,
                                       dtype=dtype))

    def step(self, u_t, state: Mamba2State):
        """One token: u_t (batch, d_model) and the state → (y_t (batch, d_model), new state)."""
        _checks.module_input(u_t, "u_t", self, ndim=2, shape_doc=f"(batch, d_model={self.d_model})",
                             last=self.d_model)
        if not isinstance(state, Mamba2State):
            raise _checks.ArgumentTypeError(f"state must be a Mamba2State from allocate_state, "
                                            f"got {type(state).__name__}")
        b = u_t.shape[0]
        _checks.state_batch(state.conv.shape, b, "state", (b, self.conv_dim, self.d_conv))
        _checks.state_batch(state.ssm.shape, b, "state", (b, self.n_heads, self.head_dim, self.d_state))
        z, xBC, dt = self._split(self.in_proj(u_t))
        conv = torch.cat([state.conv[..., 1:], xBC[..., None]], dim=-1)
        xBC = F.silu((conv * self.conv1d.weight[:, 0, :]).sum(-1) + self.conv1d.bias)
        x, Bm, Cm, dt, a = self._ssd_inputs(xBC, dt)                       # x (b, h, p), B, C (b, h, n)
        H = (torch.exp(dt * a)[..., None, None] * state.ssm
             + (dt[..., None] * x)[..., None] * Bm[:, :, None, :])
        y = (H * Cm[:, :, None, :]).sum(-1) + self.D[:, None] * x
        y = self.norm(y.reshape(b, self.d_inner), z)
        return self.out_proj(y), Mamba2State(conv, H)


class Mamba2LM(ResidualLM):
    """embedding → n_layer × (x + Mamba2Block(RMSNorm(x))) → RMSNorm → LM head tied to the embedding,
    the frame of :class:`ssmbook.mamba.MambaLM`.  ``forward(tokens (batch, L) int64)`` → logits;
    ``step`` runs one token at a time.  Extra keyword arguments go to every Mamba2Block."""

    def __init__(self, vocab_size: int, d_model: int, n_layer: int, d_state: int = 16, **block_kw):
        super().__init__(vocab_size, d_model, n_layer, lambda d: Mamba2Block(d, d_state=d_state, **block_kw),
                         device=block_kw.get("device"), dtype=block_kw.get("dtype"))
