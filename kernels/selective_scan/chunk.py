"""The chunked selective-scan kernels (an associative scan inside each chunk of time) and their launchers.

One program owns one batch element and a block of BLOCK_D channels, with all N states of each
channel: a (BLOCK_D, BLOCK_N) tile of state in registers, never written to memory. Time is cut into
chunks of BLOCK_T steps. Inside a chunk ``tl.associative_scan`` with the operator ``combine``
solves the recurrence in parallel (chapter 6); between chunks the program carries the state,
h = (local scan) + (cumulative decay) · h_in. The forward kernel stores the state at the end of every
chunk (a checkpoint); the backward kernel walks the chunks from last to first, recomputes a chunk's
states from the checkpoint before it, and runs the adjoint recurrence as a scan in reverse.
"""
import torch
import triton
import triton.language as tl

from .common import (channel_params, combine, forward_outputs, launch_flags, load_delta, or_dummy,
                     sigmoid)
from .tuning import cdiv


# --- forward kernel ---


@triton.jit
def chunk_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,  # inputs
    out_ptr, ckpt_ptr,                                                # outputs
    dim, L, N, n_groups, dim_per_group, n_chunks,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr,
    CHECKPOINTS: tl.constexpr,
):
    # --- Which part of the problem this program owns -----------------------------------------
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)           # int64: offsets can pass 2**31 at large sizes
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_t = tl.arange(0, BLOCK_T)
    mask_d = offs_d < dim
    mask_n = offs_n < N
    group = (pid_d * BLOCK_D) // dim_per_group      # the host picks BLOCK_D so a block is in one group

    # --- Per-channel parameters: loaded once, kept in registers ------------------------------
    A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :],
                mask=mask_d[:, None] & mask_n[None, :], other=0.0).to(tl.float32)  # (BD, BN)
    bias, Dskip = channel_params(bias_ptr, D_ptr, offs_d, mask_d, HAS_BIAS, HAS_D, BLOCK_D)

    row = (pid_b * dim + offs_d) * L                # start of each channel's sequence in u, delta, z
    bc = (pid_b * n_groups + group) * N * L         # start of this group's B and C
    # checkpoints: (batch, dim, n_chunks, N), or only the last state (batch, dim, 1, N) when no
    # gradient will be asked for (CHECKPOINTS off)
    ckpt_row = (pid_b * dim + offs_d) * (n_chunks if CHECKPOINTS else 1)

    h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)  # the state: lives in registers throughout
    is_last = (offs_t == BLOCK_T - 1)[None, :, None]

    for c in range(0, n_chunks):
        # --- Load one chunk of the inputs (contiguous along L, so the loads coalesce) ---------
        t = c * BLOCK_T + offs_t
        mask_t = t < L
        m2 = mask_d[:, None] & mask_t[None, :]                        # (BD, BT)
        mtn = mask_t[:, None] & mask_n[None, :]                       # (BT, BN)
        x_offs = row[:, None] + t[None, :]
        u = tl.load(u_ptr + x_offs, mask=m2, other=0.0).to(tl.float32)
        _, dt = load_delta(delta_ptr, x_offs, m2, bias[:, None], HAS_BIAS, SOFTPLUS, "")
        bc_offs = bc + offs_n[None, :] * L + t[:, None]               # (BT, BN)
        Bt = tl.load(B_ptr + bc_offs, mask=mtn, other=0.0).to(tl.float32)
        Ct = tl.load(C_ptr + bc_offs, mask=mtn, other=0.0).to(tl.float32)

        # --- Discretise: Ā = exp(δA) (zero-order hold), B̄u = δ B u -------------------------
        a = tl.exp(dt[:, :, None] * A[:, None, :])                   # (BD, BT, BN)
        b = (dt * u)[:, :, None] * Bt[None, :, :]                     # (BD, BT, BN)

        # --- Solve the recurrence inside the chunk in parallel, then bring in the carried state
        a_cum, h_loc = tl.associative_scan((a, b), 1, combine)
        hs = h_loc + a_cum * h[:, None, :]                            # h_t for every t of the chunk

        # --- Read out: y = C h + D u, gated by silu(z) ----------------------------------------
        y = tl.sum(hs * Ct[None, :, :], axis=2)                       # (BD, BT)
        if HAS_D:
            y += Dskip[:, None] * u
        if HAS_Z:
            z = tl.load(z_ptr + x_offs, mask=m2, other=0.0).to(tl.float32)
            y *= z * sigmoid(z)
        tl.store(out_ptr + x_offs, y.to(out_ptr.dtype.element_ty), mask=m2)

        # --- Carry the last state to the next chunk and checkpoint it for the backward pass ---
        # (masked steps past L are the identity, so the last row is the state at min(end, L) - 1)
        h = tl.sum(tl.where(is_last, hs, 0.0), axis=1)
        if CHECKPOINTS:
            tl.store(ckpt_ptr + (ckpt_row[:, None] + c) * N + offs_n[None, :], h,
                     mask=mask_d[:, None] & mask_n[None, :])
    if not CHECKPOINTS:
        tl.store(ckpt_ptr + ckpt_row[:, None] * N + offs_n[None, :], h,
                 mask=mask_d[:, None] & mask_n[None, :])


# --- backward kernel ---


@triton.jit
def chunk_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, ckpt_ptr, gout_ptr,  # inputs
    gu_ptr, gdelta_ptr, gz_ptr,           # (batch, dim, L), in the dtypes of u, delta, z
    gA_ptr, gD_ptr, gbias_ptr,            # per-batch partial sums, f32: (dim, N), (dim,), (dim,) per batch
    gB_ptr, gC_ptr,                       # (batch, groups, N, L) float32, accumulated atomically
    dim, L, N, n_groups, dim_per_group, n_chunks,
    stride_gp,                            # elements from one batch's partials to the next's
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr,
):
    # --- Which part of the problem this program owns: as in the forward kernel ---------------
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_t = tl.arange(0, BLOCK_T)
    mask_d = offs_d < dim
    mask_n = offs_n < N
    mdn = mask_d[:, None] & mask_n[None, :]
    group = (pid_d * BLOCK_D) // dim_per_group

    # --- Per-channel parameters, and accumulators for their gradients ------------------------
    A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mdn, other=0.0).to(tl.float32)
    bias, Dskip = channel_params(bias_ptr, D_ptr, offs_d, mask_d, HAS_BIAS, HAS_D, BLOCK_D)

    row = (pid_b * dim + offs_d) * L
    bc = (pid_b * n_groups + group) * N * L
    ckpt_row = (pid_b * dim + offs_d) * n_chunks

    # Gradients of the per-channel parameters are summed over the whole sequence in registers.
    gA_acc = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    gD_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    gbias_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    # carry = a_s λ_s at the first step s of the chunk to the right: what flows into its left neighbour
    carry = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    is_first = (offs_t == 0)[None, :, None]
    is_last = (offs_t == BLOCK_T - 1)[None, :, None]

    for cc in range(0, n_chunks):
        # --- Load one chunk, walking the chunks from last to first -----------------------------
        c = n_chunks - 1 - cc
        t = c * BLOCK_T + offs_t
        mask_t = t < L
        m2 = mask_d[:, None] & mask_t[None, :]
        mtn = mask_t[:, None] & mask_n[None, :]
        x_offs = row[:, None] + t[None, :]
        u = tl.load(u_ptr + x_offs, mask=m2, other=0.0).to(tl.float32)
        raw, dt = load_delta(delta_ptr, x_offs, m2, bias[:, None], HAS_BIAS, SOFTPLUS, "")
        bc_offs = bc + offs_n[None, :] * L + t[:, None]
        Bt = tl.load(B_ptr + bc_offs, mask=mtn, other=0.0).to(tl.float32)
        Ct = tl.load(C_ptr + bc_offs, mask=mtn, other=0.0).to(tl.float32)

        # --- Recompute the forward states of this chunk from the checkpoint before it ---------
        # The gradient of a_t needs the product a_t h_{t-1}. Forming it as h_t − b_t cancels when
        # a_t is tiny (large δ, very negative A: h_t ≈ b_t), so the scan runs over the inputs
        # shifted by one step, (a_{t-1}, b_{t-1}), with the identity (1, 0) at the chunk's first
        # step: it yields h_{t-1} itself (the checkpoint at the first step), and h_t follows as
        # a_t h_{t-1} + b_t. The shifted rows are re-read from memory (a register tensor cannot be
        # shifted); they are the neighbours of rows just loaded, so they come from the cache.
        m_prev = (offs_t >= 1) & (t - 1 < L)
        m2p = mask_d[:, None] & m_prev[None, :]
        u_prev = tl.load(u_ptr + x_offs - 1, mask=m2p, other=0.0).to(tl.float32)
        _, dt_prev = load_delta(delta_ptr, x_offs - 1, m2p, bias[:, None], HAS_BIAS, SOFTPLUS, "")
        B_prev = tl.load(B_ptr + bc_offs - 1, mask=m_prev[:, None] & mask_n[None, :],
                         other=0.0).to(tl.float32)
        a_prev = tl.exp(dt_prev[:, :, None] * A[:, None, :])
        b_prev = (dt_prev * u_prev)[:, :, None] * B_prev[None, :, :]
        has_prev = (offs_n * 0 + c) > 0                               # c > 0, as a (BN,) mask
        h0 = tl.load(ckpt_ptr + (ckpt_row[:, None] + tl.maximum(c - 1, 0)) * N + offs_n[None, :],
                     mask=mdn & has_prev[None, :], other=0.0)
        a_cum, h_loc = tl.associative_scan((a_prev, b_prev), 1, combine)
        a = tl.exp(dt[:, :, None] * A[:, None, :])
        ah = a * (h_loc + a_cum * h0[:, None, :])                    # a_t h_{t-1}, no cancellation
        hs = ah + (dt * u)[:, :, None] * Bt[None, :, :]               # h_t
        a_first = tl.sum(tl.where(is_first, a, 0.0), axis=1)         # a at the chunk's first step

        # --- Through the gate: out = y silu(z); the gradient of C --------------------------------
        gout = tl.load(gout_ptr + x_offs, mask=m2, other=0.0).to(tl.float32)
        gy = gout
        if HAS_Z:
            y = tl.sum(hs * Ct[None, :, :], axis=2)
            if HAS_D:
                y += Dskip[:, None] * u
            z = tl.load(z_ptr + x_offs, mask=m2, other=0.0).to(tl.float32)
            sig = sigmoid(z)
            gy = gout * z * sig
            gz = gout * y * sig * (1.0 + z * (1.0 - sig))             # silu'(z) = σ(z)(1 + z(1 − σ(z)))
            tl.store(gz_ptr + x_offs, gz.to(gz_ptr.dtype.element_ty), mask=m2)
        if HAS_D:
            gD_acc += tl.sum(gy * u, axis=1)
        # C is shared by all channels of a group: sum this block's channels, then add atomically
        # into the float32 gradient (other programs hold the other channels). Done here, so that
        # the states h_t need not stay in registers through the adjoint scan.
        gC = tl.sum(hs * gy[:, :, None], axis=0)                      # (BT, BN)
        tl.atomic_add(gC_ptr + bc_offs, gC, mask=mtn)

        # --- The adjoint recurrence, right to left: λ_t = a_{t+1} λ_{t+1} + C_t gy_t ------------
        # a_{t+1} is recomputed from delta at t + 1 (a register tensor cannot be shifted). The
        # last step of the chunk takes a_{t+1} λ_{t+1} from the chunk to its right (carry).
        m2n = mask_d[:, None] & ((t + 1) < L)[None, :] & (offs_t + 1 < BLOCK_T)[None, :]
        _, dt_next = load_delta(delta_ptr, x_offs + 1, m2n, bias[:, None], HAS_BIAS, SOFTPLUS, "")
        a_next = tl.exp(dt_next[:, :, None] * A[:, None, :])
        r = gy[:, :, None] * Ct[None, :, :] + tl.where(is_last, carry[:, None, :], 0.0)
        _, lam = tl.associative_scan((a_next, r), 1, combine, reverse=True)   # ∂loss/∂h_t

        # --- Gradients of everything that built a_t and b_t ------------------------------------
        g_loga = lam * ah                            # (∂loss/∂a_t) · a_t, i.e. w.r.t. log a_t = δ_t A
        lamB = tl.sum(lam * Bt[None, :, :], axis=2)  # Σ_n λ_t B_t  (BD, BT)
        gdt = tl.sum(g_loga * A[:, None, :], axis=2) + lamB * u
        gA_acc += tl.sum(g_loga * dt[:, :, None], axis=1)
        gu = dt * lamB
        if HAS_D:
            gu += Dskip[:, None] * gy
        gB = tl.sum(lam * (dt * u)[:, :, None], axis=0)              # (BT, BN), as gC above
        tl.atomic_add(gB_ptr + bc_offs, gB, mask=mtn)
        if SOFTPLUS:
            gdt = gdt * sigmoid(raw)                # softplus'(x) = σ(x)
        gdt = tl.where(m2, gdt, 0.0)
        gbias_acc += tl.sum(gdt, axis=1)
        tl.store(gu_ptr + x_offs, gu.to(gu_ptr.dtype.element_ty), mask=m2)
        tl.store(gdelta_ptr + x_offs, gdt.to(gdelta_ptr.dtype.element_ty), mask=m2)

        # a_s λ_s at the chunk's first step s flows into the last step of the chunk to the left
        carry = a_first * tl.sum(tl.where(is_first, lam, 0.0), axis=1)

    part = pid_b * stride_gp + offs_d                 # per-batch partials, summed on the host
    tl.store(gA_ptr + pid_b * stride_gp + offs_d[:, None] * N + offs_n[None, :], gA_acc, mask=mdn)
    if HAS_D:
        tl.store(gD_ptr + part, gD_acc, mask=mask_d)
    if HAS_BIAS:
        tl.store(gbias_ptr + part, gbias_acc, mask=mask_d)


# --- launchers ---


def chunk_forward(u, delta, A, B4, C4, D, z, delta_bias, delta_softplus, blocks, checkpoints=True,
                  num_warps=None):
    """Launch the chunked forward with tiles ``blocks`` = (BLOCK_D, BLOCK_T, BLOCK_N) on B, C as
    (batch, groups, N, L); returns ``(out, ckpt)`` (see :func:`forward_outputs`). ``num_warps``:
    None for Triton's default."""
    batch, dim, L = u.shape
    groups, N = B4.shape[1], B4.shape[2]
    BD, BT, BN = blocks
    n_chunks = cdiv(L, BT)
    out, ckpt = forward_outputs(u, N, n_chunks, checkpoints)
    extra = {"num_warps": num_warps} if num_warps else {}
    chunk_fwd_kernel[(cdiv(dim, BD), batch)](
        u, delta, A, B4, C4, *or_dummy(u, D, z, delta_bias), out, ckpt,
        dim, L, N, groups, dim // groups, n_chunks,
        **launch_flags(D, z, delta_bias, delta_softplus), CHECKPOINTS=bool(checkpoints),
        BLOCK_D=BD, BLOCK_T=BT, BLOCK_N=BN, **extra,
    )
    return out, ckpt


def chunk_backward(u, delta, A, B4, C4, D, z, delta_bias, ckpt, gout, grads, delta_softplus,
                   blocks, num_warps=None):
    """Launch the chunked backward. ``grads`` = (gu, gdelta, gz, gA, gD, gbias), the buffers it
    writes (gz, gD, gbias None where the input is absent; gA, gD, gbias per-batch partial sums);
    returns the B and C gradients as one float32 tensor (2, batch, groups, N, L): B's, then C's."""
    batch, dim, L = u.shape
    groups, N = B4.shape[1], B4.shape[2]
    BD, BT, BN = blocks
    gu, gdelta, gz, gA, gD, gbias = grads
    gBC = torch.zeros((2,) + tuple(B4.shape), device=u.device, dtype=torch.float32)  # added into
    chunk_bwd_kernel[(cdiv(dim, BD), batch)](
        u, delta, A, B4, C4, *or_dummy(gA, D, z, delta_bias), ckpt, gout,
        gu, gdelta, *or_dummy(gA, gz), gA, *or_dummy(gA, gD, gbias),
        gBC[0], gBC[1],
        dim, L, N, groups, dim // groups, ckpt.shape[2], gA.stride(0),
        **launch_flags(D, z, delta_bias, delta_softplus), BLOCK_D=BD, BLOCK_T=BT, BLOCK_N=BN,
        **({"num_warps": num_warps} if num_warps else {}),
    )
    return gBC
