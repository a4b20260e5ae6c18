"""Mamba's selective scan in Triton: two forward and two backward kernels and their autograd.Function.

The recurrence, per batch element b, channel d and state index n (see ``ssmbook.selective``)::

    δ_t = softplus(delta_t + bias)      a_t = exp(δ_t A[d, n])      b_t = δ_t B_t[n] u_t
    h_t = a_t h_{t-1} + b_t             y_t = Σ_n C_t[n] h_t[n] + D u_t      out_t = y_t silu(z_t)

Design (the hardware-aware algorithm of the Mamba paper, written in Triton):

* One program owns one batch element and a block of BLOCK_D channels, with all N states of each
  channel. The state never leaves the chip: a (BLOCK_D, BLOCK_N) tile in registers. Only u, delta,
  B, C, z are read from memory and only the output is written; the (batch, dim, L, N) tensors of
  the recurrence (a, b, h) exist only one chunk at a time, in registers.
* Time is cut into chunks of BLOCK_T steps. Inside a chunk the recurrence is solved in parallel by
  ``tl.associative_scan`` with the operator (a₁, b₁) ∘ (a₂, b₂) = (a₂a₁, a₂b₁ + b₂) (chapter 6);
  between chunks the program carries the state, h = (local scan) + (cumulative decay) · h_in.
* The forward pass stores the state at the end of every chunk (a checkpoint, (batch, dim, chunks, N)
  in float32). The backward pass walks the chunks from last to first; it *recomputes* the states of
  a chunk from the previous checkpoint instead of reading all L·N of them from memory, and runs the
  adjoint recurrence λ_t = a_{t+1} λ_{t+1} + C_t ∂y_t (a scan in reverse) for the gradients.
* A second forward kernel (issue 10, ``_selective_scan_fwd_loop_kernel``) solves the chunk with no
  parallel scan at all: a channel's N states sit in one thread (or a few lanes of a warp), which
  walks time step by step. With enough channels to give every warp scheduler a warp it is 2-3x
  faster than the scan on an H100 (benchmarks/NOTES.md, sections 2-4); ``choose_forward`` picks
  between the two. It writes the same checkpoints. It can also split the sequence into segments
  walked by separate programs (``choose_segments``), composing their end states first.
* A second backward kernel (``_selective_scan_bwd_loop_kernel``) works the same way: per chunk it
  recomputes the states step by step into a small per-program scratch, then walks the chunk
  backwards with λ in registers; the B and C gradients are per-program partial sums, added on the
  host. ``choose_backward`` picks; either backward reads either forward's checkpoints.
* Inputs may be float32, float16 or bfloat16; every computation and the state are float32.
* N need not be a power of two and L need not be a multiple of BLOCK_T: out-of-range lanes are
  masked so that they act as the identity of the scan (a = 1, b = 0).
"""
import torch
import triton
import triton.language as tl

from ..selective import check_inputs

# ---------------------------------------------------------------------------------------------
# Small building blocks, shared by both kernels
# ---------------------------------------------------------------------------------------------


@triton.jit
def _combine(a_left, b_left, a_right, b_right):
    # The scan operator of a first-order linear recurrence: first apply (a_left, b_left), then
    # (a_right, b_right). It is associative, which is all tl.associative_scan needs.
    return a_right * a_left, a_right * b_left + b_right


@triton.jit
def _softplus(x):
    # softplus(x) = log(1 + e^x), written out because the interpreter has no libdevice log1p.
    # Like torch, return x itself above 20. The factor e / (w - 1) corrects the rounding of
    # w = 1 + e (a classic log1p trick), so tiny values of e^x keep their precision.
    e = tl.exp(tl.minimum(x, 20.0))
    w = 1.0 + e
    wm1 = w - 1.0
    lp = tl.where(wm1 == 0.0, e, tl.log(w) * (e / tl.where(wm1 == 0.0, 1.0, wm1)))
    return tl.where(x > 20.0, x, lp)


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _load_delta(delta_ptr, offs, mask, bias, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                EV: tl.constexpr):
    # Returns (raw = delta + bias, δ = softplus(raw) or raw), both float32, δ = 0 where masked:
    # δ = 0 makes a masked step the identity of the scan (a = e^0 = 1, b = 0). ``bias`` comes
    # shaped to broadcast against the tile (channels along axis 0 or 1); EV: eviction policy.
    raw = tl.load(delta_ptr + offs, mask=mask, other=0.0, eviction_policy=EV).to(tl.float32)
    if HAS_BIAS:
        raw = raw + bias
    dt = raw
    if SOFTPLUS:
        dt = _softplus(raw)
    return raw, tl.where(mask, dt, 0.0)


@triton.jit
def _channel_params(bias_ptr, D_ptr, offs_d, mask_d, HAS_BIAS: tl.constexpr, HAS_D: tl.constexpr,
                    BLOCK_D: tl.constexpr):
    # The Δ bias and the skip weight D of a block of channels, float32 (zeros when absent)
    bias = tl.zeros((BLOCK_D,), dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    Dskip = tl.zeros((BLOCK_D,), dtype=tl.float32)
    if HAS_D:
        Dskip = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    return bias, Dskip


# ---------------------------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------------------------


@triton.jit
def _selective_scan_fwd_kernel(
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
    bias, Dskip = _channel_params(bias_ptr, D_ptr, offs_d, mask_d, HAS_BIAS, HAS_D, BLOCK_D)

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
        _, dt = _load_delta(delta_ptr, x_offs, m2, bias[:, None], HAS_BIAS, SOFTPLUS, "")
        bc_offs = bc + offs_n[None, :] * L + t[:, None]               # (BT, BN)
        Bt = tl.load(B_ptr + bc_offs, mask=mtn, other=0.0).to(tl.float32)
        Ct = tl.load(C_ptr + bc_offs, mask=mtn, other=0.0).to(tl.float32)

        # --- Discretise: Ā = exp(δA) (zero-order hold), B̄u = δ B u -------------------------
        a = tl.exp(dt[:, :, None] * A[:, None, :])                   # (BD, BT, BN)
        b = (dt * u)[:, :, None] * Bt[None, :, :]                     # (BD, BT, BN)

        # --- Solve the recurrence inside the chunk in parallel, then bring in the carried state
        a_cum, h_loc = tl.associative_scan((a, b), 1, _combine)
        hs = h_loc + a_cum * h[:, None, :]                            # h_t for every t of the chunk

        # --- Read out: y = C h + D u, gated by silu(z) ----------------------------------------
        y = tl.sum(hs * Ct[None, :, :], axis=2)                       # (BD, BT)
        if HAS_D:
            y += Dskip[:, None] * u
        if HAS_Z:
            z = tl.load(z_ptr + x_offs, mask=m2, other=0.0).to(tl.float32)
            y *= z * _sigmoid(z)
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


# ---------------------------------------------------------------------------------------------
# Forward, version 2: each channel's state in one thread (or a few lanes), walking time (issue 10)
# ---------------------------------------------------------------------------------------------

LOG2E = tl.constexpr(1.4426950408889634)  # log2(e)


@triton.jit(do_not_specialize=["stride_an", "one"])
def _selective_scan_fwd_loop_kernel(
    u_ptr, delta_ptr, A_ptr, Bt_ptr, Ct_ptr, D_ptr, z_ptr, bias_ptr,  # inputs (B, C transposed)
    out_ptr, ckpt_ptr,                                                  # outputs
    hseg_ptr, dseg_ptr,         # per segment: end state from zero (.., n_segs, N) and Σδ (.., n_segs)
    dim, L, N, stride_an, one, n_groups, dim_per_group, n_chunks, chunks_per_seg, n_segs,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr, UNROLL: tl.constexpr,
    EVEN_N: tl.constexpr, PACKED: tl.constexpr, CHECKPOINTS: tl.constexpr,
    EV_ROWS: tl.constexpr, EV_STREAM: tl.constexpr,
    SEGMENTED: tl.constexpr, SUMMARY: tl.constexpr,
):
    # --- Which part of the problem this program owns ------------------------------------------
    # BLOCK_D channels of one batch element, all N states of each, one segment of the sequence
    # (the whole of it unless SEGMENTED). The state is a (BLOCK_N, BLOCK_D) tile with the
    # channels along its LAST axis, so that a channel's states sit in one thread, or in a few
    # lanes of the warp when a program has fewer channels than lanes: the read-out sum over n
    # is then a sum inside a thread plus a shuffle or two, and each thread runs several
    # independent recurrences side by side, which keeps the arithmetic units busy although
    # every step depends on the one before.
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)           # int64: offsets can pass 2**31 at large sizes
    pid_s = tl.program_id(2)                        # segment of the sequence
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < dim
    mask_n = offs_n < N
    mnd = mask_n[:, None] & mask_d[None, :]
    group = (pid_d * BLOCK_D) // dim_per_group      # the host picks BLOCK_D so a block is in one group

    # --- Per-channel parameters: loaded once, kept in registers ------------------------------
    # A is pre-scaled by log2(e) so that exp(δA) = exp2(δ · A log2 e): one multiply and one ex2
    # per state and step. (stride_an = 1 at run time; passing it unspecialised hides from the
    # compiler that A is contiguous along n, which would otherwise make it spread the n axis
    # over threads for this one load and drag the whole loop into that layout.)
    A2 = tl.load(A_ptr + offs_d[None, :] * N + offs_n[:, None] * stride_an, mask=mnd,
                 other=0.0).to(tl.float32) * LOG2E                    # (BN, BD)
    bias, Dskip = _channel_params(bias_ptr, D_ptr, offs_d, mask_d, HAS_BIAS, HAS_D, BLOCK_D)

    row = (pid_b * dim + offs_d) * L                # start of each channel's sequence in u, delta, z
    # This group's B and C, transposed to (L, N) so that a step reads one row of each; or, PACKED,
    # both in one (L, N, 2) tensor, B_t[n] and C_t[n] side by side, one load for both rows (the
    # host transposes or packs them; they are N/dim times smaller than u).
    bc = (pid_b * n_groups + group) * L * N
    pair = offs_n[:, None] * 2 + tl.arange(0, 2)[None, :]          # (BN, 2)
    ckpt_row = (pid_b * dim + offs_d) * (n_chunks if CHECKPOINTS else 1)  # as in the chunked kernel
    seg_row = (pid_b * dim + offs_d) * n_segs
    h = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    dt_total = tl.zeros((BLOCK_D,), dtype=tl.float32)

    # --- Start from the state that the segments before this one leave behind -----------------
    # SEGMENTED (more programs than batch × channel blocks, to keep more warps busy): a first
    # launch (SUMMARY) walks every segment but the last from a zero state and keeps only its end
    # state h_end and Σδ. Segment j then maps a state h to exp(A Σδ_j) h + h_end_j (the product of
    # its decays exp(δ_t A) is exp(A Σ δ_t)), so this program composes those maps, in order.
    if SEGMENTED and not SUMMARY:
        for j in range(0, pid_s):
            d_j = tl.load(dseg_ptr + seg_row + j, mask=mask_d, other=0.0)
            h_j = tl.load(hseg_ptr + (seg_row[None, :] + j) * N + offs_n[:, None], mask=mnd, other=0.0)
            h = tl.exp2(d_j[None, :] * A2) * h + h_j

    offs_k = tl.arange(0, UNROLL)
    c_first = pid_s * chunks_per_seg
    for c in range(c_first, tl.minimum(c_first + chunks_per_seg, n_chunks)):
        # --- Solve the recurrence inside the chunk, one step at a time ------------------------
        # No parallel scan: each thread walks its channel through time, UNROLL steps per
        # iteration. Per iteration it first reads the (UNROLL, BLOCK_D) tiles of u and delta
        # (each thread its own channel's next UNROLL steps, from one cache line), then walks
        # the steps, then writes the UNROLL outputs at once. Keeping loads and stores out of
        # the step-by-step part matters: a store may alias a later load, so the compiler could
        # not start the next step's loads before the previous step's store, and every step
        # would pay a memory latency (measured: 2.5 ms at (8, 2048, 4096, 16) that way).
        for s0 in range(0, BLOCK_T, UNROLL):
            tk = c * BLOCK_T + s0 + offs_k                             # (UNROLL,) time steps
            mk = (tk < L)[:, None] & mask_d[None, :]                   # (UNROLL, BD)
            # (one = 1 at run time, unspecialised: as for A, it keeps the time axis inside a thread)
            offs = row[None, :] + tk[:, None] * one
            u_blk = tl.load(u_ptr + offs, mask=mk, other=0.0,
                            eviction_policy=EV_STREAM).to(tl.float32)
            _, dt_blk = _load_delta(delta_ptr, offs, mk, bias[None, :], HAS_BIAS, SOFTPLUS,
                                    EV_STREAM)                         # past L: δ = 0, identity
            dtu_blk = dt_blk * u_blk
            if SUMMARY:
                dt_total += tl.sum(dt_blk, axis=0)
            y_blk = tl.zeros((UNROLL, BLOCK_D), dtype=tl.float32)
            for k in tl.static_range(UNROLL):
                # Step k of the block: pick its column (a sum over UNROLL values in registers)
                pick = offs_k[:, None] == k
                dt = tl.sum(tl.where(pick, dt_blk, 0.0), axis=0)       # (BD,)
                dtu = tl.sum(tl.where(pick, dtu_blk, 0.0), axis=0)
                t = c * BLOCK_T + s0 + k
                # N = BLOCK_N: read row min(t, L - 1) without a mask, so that no lane is masked
                # (past L the row is harmless: δ = 0 there and the output is dropped)
                t_row = tl.minimum(t, L - 1) if EVEN_N else t
                m_n = mask_n & (offs_n * 0 + t < L)
                if PACKED:
                    if EVEN_N:
                        BC = tl.load(Bt_ptr + (bc + t_row * N) * 2 + pair, eviction_policy=EV_ROWS)
                    else:
                        BC = tl.load(Bt_ptr + (bc + t_row * N) * 2 + pair, mask=m_n[:, None],
                                     other=0.0, eviction_policy=EV_ROWS)
                    Bt, Ct = tl.split(BC.to(tl.float32))              # (BN,) each
                elif EVEN_N:
                    Bt = tl.load(Bt_ptr + bc + t_row * N + offs_n,
                                 eviction_policy=EV_ROWS).to(tl.float32)
                    if not SUMMARY:
                        Ct = tl.load(Ct_ptr + bc + t_row * N + offs_n,
                                     eviction_policy=EV_ROWS).to(tl.float32)
                else:
                    Bt = tl.load(Bt_ptr + bc + t_row * N + offs_n, mask=m_n, other=0.0,
                                 eviction_policy=EV_ROWS).to(tl.float32)
                    if not SUMMARY:
                        Ct = tl.load(Ct_ptr + bc + t_row * N + offs_n, mask=m_n, other=0.0,
                                     eviction_policy=EV_ROWS).to(tl.float32)
                # Discretise and step: h = exp(δA) h + δ B u, then read out C h
                h = tl.exp2(dt[None, :] * A2) * h + dtu[None, :] * Bt[:, None]
                if not SUMMARY:
                    y = tl.sum(h * Ct[:, None], axis=0)
                    y_blk = tl.where(pick, y[None, :], y_blk)
            # --- Skip connection and gate for the block of steps, then one store ----------------
            if not SUMMARY:
                if HAS_D:
                    y_blk += Dskip[None, :] * u_blk
                if HAS_Z:
                    z = tl.load(z_ptr + offs, mask=mk, other=0.0,
                                eviction_policy=EV_STREAM).to(tl.float32)
                    y_blk *= z * _sigmoid(z)
                tl.store(out_ptr + offs, y_blk.to(out_ptr.dtype.element_ty), mask=mk)

        # --- Checkpoint the state at the end of the chunk, for the backward pass ---------------
        # (steps past L are the identity, so the last checkpoint is the state at L - 1)
        if CHECKPOINTS and not SUMMARY:
            tl.store(ckpt_ptr + (ckpt_row[None, :] + c) * N + offs_n[:, None], h, mask=mnd)
    if SUMMARY:
        tl.store(hseg_ptr + (seg_row[None, :] + pid_s) * N + offs_n[:, None], h, mask=mnd)
        tl.store(dseg_ptr + seg_row + pid_s, dt_total, mask=mask_d)
    elif not CHECKPOINTS:  # only the last state, which the last segment holds
        tl.store(ckpt_ptr + ckpt_row[None, :] * N + offs_n[:, None], h,
                 mask=mnd & (offs_n * 0 + pid_s == n_segs - 1)[:, None])


# ---------------------------------------------------------------------------------------------
# Backward
# ---------------------------------------------------------------------------------------------


@triton.jit
def _selective_scan_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, ckpt_ptr, gout_ptr,  # inputs
    gu_ptr, gdelta_ptr, gz_ptr,           # (batch, dim, L), in the dtypes of u, delta, z
    gA_ptr, gD_ptr, gbias_ptr,            # per-batch partial sums (batch, dim, N), (batch, dim): f32
    gB_ptr, gC_ptr,                       # (batch, groups, N, L) float32, accumulated atomically
    dim, L, N, n_groups, dim_per_group, n_chunks,
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
    bias, Dskip = _channel_params(bias_ptr, D_ptr, offs_d, mask_d, HAS_BIAS, HAS_D, BLOCK_D)

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
        raw, dt = _load_delta(delta_ptr, x_offs, m2, bias[:, None], HAS_BIAS, SOFTPLUS, "")
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
        _, dt_prev = _load_delta(delta_ptr, x_offs - 1, m2p, bias[:, None], HAS_BIAS, SOFTPLUS, "")
        B_prev = tl.load(B_ptr + bc_offs - 1, mask=m_prev[:, None] & mask_n[None, :],
                         other=0.0).to(tl.float32)
        a_prev = tl.exp(dt_prev[:, :, None] * A[:, None, :])
        b_prev = (dt_prev * u_prev)[:, :, None] * B_prev[None, :, :]
        has_prev = (offs_n * 0 + c) > 0                               # c > 0, as a (BN,) mask
        h0 = tl.load(ckpt_ptr + (ckpt_row[:, None] + tl.maximum(c - 1, 0)) * N + offs_n[None, :],
                     mask=mdn & has_prev[None, :], other=0.0)
        a_cum, h_loc = tl.associative_scan((a_prev, b_prev), 1, _combine)
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
            sig = _sigmoid(z)
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
        _, dt_next = _load_delta(delta_ptr, x_offs + 1, m2n, bias[:, None], HAS_BIAS, SOFTPLUS, "")
        a_next = tl.exp(dt_next[:, :, None] * A[:, None, :])
        r = gy[:, :, None] * Ct[None, :, :] + tl.where(is_last, carry[:, None, :], 0.0)
        _, lam = tl.associative_scan((a_next, r), 1, _combine, reverse=True)   # ∂loss/∂h_t

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
            gdt = gdt * _sigmoid(raw)                # softplus'(x) = σ(x)
        gdt = tl.where(m2, gdt, 0.0)
        gbias_acc += tl.sum(gdt, axis=1)
        tl.store(gu_ptr + x_offs, gu.to(gu_ptr.dtype.element_ty), mask=m2)
        tl.store(gdelta_ptr + x_offs, gdt.to(gdelta_ptr.dtype.element_ty), mask=m2)

        # a_s λ_s at the chunk's first step s flows into the last step of the chunk to the left
        carry = a_first * tl.sum(tl.where(is_first, lam, 0.0), axis=1)

    part = pid_b * dim + offs_d                       # per-batch partials, summed on the host
    tl.store(gA_ptr + part[:, None] * N + offs_n[None, :], gA_acc, mask=mdn)
    if HAS_D:
        tl.store(gD_ptr + part, gD_acc, mask=mask_d)
    if HAS_BIAS:
        tl.store(gbias_ptr + part, gbias_acc, mask=mask_d)


# ---------------------------------------------------------------------------------------------
# Backward, version 2: as the loop forward, walking each chunk forward then backward (issue 10)
# ---------------------------------------------------------------------------------------------


@triton.jit(do_not_specialize=["stride_an", "one"])
def _selective_scan_bwd_loop_kernel(
    u_ptr, delta_ptr, A_ptr, BC_ptr, D_ptr, z_ptr, bias_ptr, ckpt_ptr, gout_ptr,  # inputs
    gu_ptr, gdelta_ptr, gz_ptr,           # (batch, dim, L), in the dtypes of u, delta, z
    gA_ptr, gD_ptr, gbias_ptr,            # per-batch partial sums (batch, dim, N), (batch, dim): f32
    gB_ptr, gC_ptr,                       # per-block partial sums (batch, dim blocks, L, N): f32
    scratch_ptr,                          # per program: the states of one chunk, (BLOCK_T + 1, BN, BD)
    dim, L, N, stride_an, one, n_groups, dim_per_group, n_chunks,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr, UNROLL: tl.constexpr,
    EVEN_N: tl.constexpr,
):
    # --- Which part of the problem this program owns: as in the loop forward ------------------
    # The state tiles are (BLOCK_N, BLOCK_D), channels along the last axis: one thread holds one
    # channel's states (or a share of them), so sums over n stay inside a thread.
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    n_dblocks = tl.num_programs(0)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, UNROLL)
    mask_d = offs_d < dim
    mask_n = offs_n < N
    mnd = mask_n[:, None] & mask_d[None, :]
    group = (pid_d * BLOCK_D) // dim_per_group

    # --- Per-channel parameters, and accumulators for their gradients ------------------------
    A2 = tl.load(A_ptr + offs_d[None, :] * N + offs_n[:, None] * stride_an, mask=mnd,
                 other=0.0).to(tl.float32) * LOG2E                    # (BN, BD), A log2(e)
    bias, Dskip = _channel_params(bias_ptr, D_ptr, offs_d, mask_d, HAS_BIAS, HAS_D, BLOCK_D)
    gA_acc = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    gD_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    gbias_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)

    row = (pid_b * dim + offs_d) * L                # each channel's sequence in u, delta, z, gout
    bc = (pid_b * n_groups + group) * L * N * 2     # this group's B and C, packed as (L, N, 2)
    pair = offs_n[:, None] * 2 + tl.arange(0, 2)[None, :]
    part_bc = (pid_b * n_dblocks + pid_d) * L * N   # this program's rows of the B, C partial sums
    ckpt_row = (pid_b * dim + offs_d) * n_chunks
    # This program's scratch: slot j holds h at step (chunk start + j − 1), slot 0 the state
    # before the chunk. At most (BLOCK_T + 1)·N·BLOCK_D floats per program, so it stays in cache.
    scratch = scratch_ptr + (pid_b * n_dblocks + pid_d) * (BLOCK_T + 1) * BLOCK_N * BLOCK_D
    slot = offs_n[:, None] * BLOCK_D + tl.arange(0, BLOCK_D)[None, :]   # (BN, BD) within a slot

    # The adjoint state λ_t = ∂loss/∂h_t and a_{t+1}, carried from step to step, right to left
    lam = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    a_next = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)

    for cc in range(0, n_chunks):
        c = n_chunks - 1 - cc
        # --- Recompute the chunk's states from the checkpoint before it, into the scratch ---------
        has_prev = (offs_n * 0 + c) > 0
        h = tl.load(ckpt_ptr + (ckpt_row[None, :] + tl.maximum(c - 1, 0)) * N + offs_n[:, None],
                    mask=mnd & has_prev[:, None], other=0.0)
        tl.store(scratch + slot, h)
        for s0 in range(0, BLOCK_T, UNROLL):
            tk = c * BLOCK_T + s0 + offs_k
            mk = (tk < L)[:, None] & mask_d[None, :]
            offs = row[None, :] + tk[:, None] * one
            u_blk = tl.load(u_ptr + offs, mask=mk, other=0.0).to(tl.float32)
            _, dt_blk = _load_delta(delta_ptr, offs, mk, bias[None, :], HAS_BIAS, SOFTPLUS, "")
            dtu_blk = dt_blk * u_blk
            h_blk = tl.zeros((UNROLL, BLOCK_N, BLOCK_D), dtype=tl.float32)
            for k in tl.static_range(UNROLL):
                pick = offs_k[:, None] == k
                dt = tl.sum(tl.where(pick, dt_blk, 0.0), axis=0)
                dtu = tl.sum(tl.where(pick, dtu_blk, 0.0), axis=0)
                t = c * BLOCK_T + s0 + k
                if EVEN_N:
                    BC = tl.load(BC_ptr + bc + tl.minimum(t, L - 1) * N * 2 + pair)
                else:
                    m_n = mask_n & (offs_n * 0 + t < L)
                    BC = tl.load(BC_ptr + bc + t * N * 2 + pair, mask=m_n[:, None], other=0.0)
                Bt, _ = tl.split(BC.to(tl.float32))
                h = tl.exp2(dt[None, :] * A2) * h + dtu[None, :] * Bt[:, None]
                h_blk = tl.where(pick[:, :, None], h[None, :, :], h_blk)
            # one store per block of steps (a store inside the steps would serialise them)
            tl.store(scratch + (s0 + 1 + offs_k[:, None, None]) * BLOCK_N * BLOCK_D + slot[None, :, :],
                     h_blk)
        tl.debug_barrier()  # the scratch is written and read by different threads' layouts

        # --- Walk the chunk backwards: the adjoint recurrence and every gradient ---------------
        h_cur = tl.load(scratch + BLOCK_T * BLOCK_N * BLOCK_D + slot)   # h at the chunk's last step
        for sb in range(0, BLOCK_T, UNROLL):
            s0 = BLOCK_T - UNROLL - sb
            tk = c * BLOCK_T + s0 + offs_k
            mk = (tk < L)[:, None] & mask_d[None, :]
            offs = row[None, :] + tk[:, None] * one
            u_blk = tl.load(u_ptr + offs, mask=mk, other=0.0).to(tl.float32)
            raw_blk, dt_blk = _load_delta(delta_ptr, offs, mk, bias[None, :], HAS_BIAS, SOFTPLUS, "")
            gy_blk = tl.load(gout_ptr + offs, mask=mk, other=0.0).to(tl.float32)
            if HAS_Z:
                z_blk = tl.load(z_ptr + offs, mask=mk, other=0.0).to(tl.float32)
                sig_z = _sigmoid(z_blk)
                gout_blk = gy_blk
                gy_blk = gout_blk * z_blk * sig_z
                y_blk = tl.zeros((UNROLL, BLOCK_D), dtype=tl.float32)
            if HAS_D:
                gD_acc += tl.sum(gy_blk * u_blk, axis=0)
            lamB_blk = tl.zeros((UNROLL, BLOCK_D), dtype=tl.float32)
            glA_blk = tl.zeros((UNROLL, BLOCK_D), dtype=tl.float32)
            gB_blk = tl.zeros((UNROLL, BLOCK_N), dtype=tl.float32)
            gC_blk = tl.zeros((UNROLL, BLOCK_N), dtype=tl.float32)
            for kk in tl.static_range(UNROLL):
                k = UNROLL - 1 - kk
                pick = offs_k[:, None] == k
                dt = tl.sum(tl.where(pick, dt_blk, 0.0), axis=0)
                # (δu is formed inside the pick: a hoisted dt_blk * u_blk tile compiles differently
                # and timed no faster on the H100)
                dtu = tl.sum(tl.where(pick, dt_blk * u_blk, 0.0), axis=0)
                gy = tl.sum(tl.where(pick, gy_blk, 0.0), axis=0)
                t = c * BLOCK_T + s0 + k
                if EVEN_N:
                    BC = tl.load(BC_ptr + bc + tl.minimum(t, L - 1) * N * 2 + pair)
                else:
                    m_n = mask_n & (offs_n * 0 + t < L)
                    BC = tl.load(BC_ptr + bc + t * N * 2 + pair, mask=m_n[:, None], other=0.0)
                Bt, Ct = tl.split(BC.to(tl.float32))
                h_prev = tl.load(scratch + (s0 + k) * BLOCK_N * BLOCK_D + slot)   # h_{t-1}
                if HAS_Z:
                    y_blk = tl.where(pick, tl.sum(h_cur * Ct[:, None], axis=0)[None, :], y_blk)
                # λ_t = a_{t+1} λ_{t+1} + C_t ∂y_t
                lam = a_next * lam + Ct[:, None] * gy[None, :]
                a = tl.exp2(dt[None, :] * A2)
                g_loga = lam * a * h_prev        # ∂loss/∂(δ_t A), since ∂h_t/∂(δA) = a_t h_{t-1}
                gA_acc += g_loga * dt[None, :]
                glA_blk = tl.where(pick, tl.sum(g_loga * A2, axis=0)[None, :], glA_blk)
                lamB_blk = tl.where(pick, tl.sum(lam * Bt[:, None], axis=0)[None, :], lamB_blk)
                # B and C are shared by the channels: sum this program's channels for step t
                gB_blk = tl.where(pick, tl.sum(lam * dtu[None, :], axis=1)[None, :], gB_blk)
                gC_blk = tl.where(pick, tl.sum(h_cur * gy[None, :], axis=1)[None, :], gC_blk)
                a_next = a
                h_cur = h_prev
            # --- Gradients of the block of steps, then one store each -----------------------------
            gu_blk = dt_blk * lamB_blk
            if HAS_D:
                gu_blk += Dskip[None, :] * gy_blk
            gdt_blk = glA_blk / LOG2E + u_blk * lamB_blk
            if SOFTPLUS:
                gdt_blk = gdt_blk * _sigmoid(raw_blk)       # softplus'(x) = σ(x)
            gdt_blk = tl.where(mk, gdt_blk, 0.0)
            gbias_acc += tl.sum(gdt_blk, axis=0)
            if HAS_Z:
                if HAS_D:
                    y_blk += Dskip[None, :] * u_blk
                gz_blk = gout_blk * y_blk * sig_z * (1.0 + z_blk * (1.0 - sig_z))
                tl.store(gz_ptr + offs, gz_blk.to(gz_ptr.dtype.element_ty), mask=mk)
            tl.store(gu_ptr + offs, gu_blk.to(gu_ptr.dtype.element_ty), mask=mk)
            tl.store(gdelta_ptr + offs, gdt_blk.to(gdelta_ptr.dtype.element_ty), mask=mk)
            m_bc = (tk < L)[:, None] & mask_n[None, :]
            bc_offs = part_bc + tk[:, None] * N + offs_n[None, :]
            tl.store(gB_ptr + bc_offs, gB_blk, mask=m_bc)
            tl.store(gC_ptr + bc_offs, gC_blk, mask=m_bc)
        tl.debug_barrier()  # the next chunk overwrites the scratch

    part = pid_b * dim + offs_d
    tl.store(gA_ptr + part[None, :] * N + offs_n[:, None], gA_acc, mask=mnd)
    if HAS_D:
        tl.store(gD_ptr + part, gD_acc, mask=mask_d)
    if HAS_BIAS:
        tl.store(gbias_ptr + part, gbias_acc, mask=mask_d)


# ---------------------------------------------------------------------------------------------
# Host side: tile sizes, launches, autograd
# ---------------------------------------------------------------------------------------------

#: Upper bound on BLOCK_D · BLOCK_T · BLOCK_N, the size of one (channels, time, state) register tile.
TILE_BUDGET = 1024


def _pow2_dividing(n):
    return n & -n  # the largest power of two that divides n


#: Backward tiles measured on the H100 for the shapes where the generic rule of ``choose_blocks``
#: loses (benchmarks/NOTES.md, section 3), as (BLOCK_T, BLOCK_D) per situation. The B and C gradients
#: are summed atomically once per program and chunk, so their count is batch·dim·L·N / BLOCK_D: at
#: N = 64 with BLOCK_D = 1 that is 8.6 G float atomics and they, not the scans, set the time
#: (fwd+bwd 132 ms at (16, 1), 59 ms at (8, 4)).
TUNED_TILES = {
    "n64": (8, 4),          # 16 < BLOCK_N <= 64
    "few_channels": (32, 4),  # BLOCK_N <= 16 and batch·dim < 8192 (the long-sequence shape)
    "half": (16, 2),        # BLOCK_N <= 16, 16-bit inputs, batch·dim >= 8192
}


def choose_blocks(dim, L, N, groups=1, block_t=None, block_d=None, batch=None, dtype=None,
                  has_z=False):
    """Pick (BLOCK_D, BLOCK_T, BLOCK_N) for a problem: N padded to a power of two; a chunk of up to
    32 steps (the checkpoint spacing); as many channels as the tile budget allows, such that a
    block never straddles two groups of B/C (BLOCK_D divides dim // groups). These are the tiles
    of the chunked forward and of the backward: BLOCK_T = 32, BLOCK_D = 2 was the fastest
    backward measured on the H100 at N = 16 (benchmarks/NOTES.md, section 2).

    When neither block is given and ``batch`` is, the tiles measured best on the H100 for that
    situation (``TUNED_TILES``, section 3 of the notes) replace the generic rule; not for 16-bit
    inputs with a gate z at N = 64, where the (8, 4) tile measured slower than the generic one
    (209 ms vs 150 ms fwd+bwd in bf16, presumably register spills)."""
    block_n = max(triton.next_power_of_2(N), 2)
    per_group = dim // groups
    if block_t is None and block_d is None and batch is not None:
        half = dtype in (torch.float16, torch.bfloat16)
        key = None
        if 16 < block_n <= 64:
            key = None if (half and has_z) else "n64"
        elif block_n <= 16 and batch * dim < 8192:
            key = "few_channels"
        elif block_n <= 16 and half:
            key = "half"
        if key is not None:
            block_t, block_d = TUNED_TILES[key]
            block_t = min(block_t, max(triton.next_power_of_2(L), 2))
            block_d = min(block_d, triton.next_power_of_2(dim))
            if groups > 1:
                block_d = min(block_d, _pow2_dividing(per_group))
    if block_t is None:
        block_t = min(32, max(triton.next_power_of_2(L), 2), max(TILE_BUDGET // block_n, 2))
    limit = max(TILE_BUDGET // (block_t * block_n), 1)
    if block_d is None:
        block_d = min(16, limit, triton.next_power_of_2(dim))
        if groups > 1:
            block_d = min(block_d, _pow2_dividing(per_group))
    if block_t & (block_t - 1) or block_d & (block_d - 1):
        raise ValueError(f"block_t and block_d must be powers of two, got {block_t}, {block_d}")
    if groups > 1 and per_group % block_d:
        raise ValueError(f"block_d must divide dim // groups = {per_group}, got {block_d}")
    return block_d, block_t, block_n


def _cache_hints(hints):
    """Eviction hints of the loop forward's loads: keep the B/C rows (read by every program of the
    batch element) in cache and let the streamed u, delta, z go first; or no hints."""
    if hints:
        return dict(EV_ROWS="evict_last", EV_STREAM="evict_first")
    return dict(EV_ROWS="", EV_STREAM="")


def _pack_bc(B4, C4):
    """B and C of the loop kernels: (batch, groups, L, N, 2), B_t[n] and C_t[n] side by side."""
    return torch.stack((B4, C4), dim=-1).transpose(2, 3).contiguous()


def _as_4d(X):
    """B or C as (batch, groups, N, L), contiguous: the shared layout is one group."""
    return (X.unsqueeze(1) if X.dim() == 3 else X).contiguous()


def _interpreting():
    import os

    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _check_device(u):
    if not u.is_cuda and not _interpreting():
        raise ValueError(
            f"u must be a CUDA tensor for the compiled Triton kernels, got device {u.device}; for CPU "
            "tensors set TRITON_INTERPRET=1 before triton is imported (importing ssmbook.kernels "
            "first does it on machines without CUDA), or use backend='torch'"
        )


#: Compute capability from which the Triton path takes bfloat16 inputs and the loop forward uses
#: eviction hints. Below it (Colab's T4 is sm_75) bfloat16 has no arithmetic units; the kernels
#: would only load and store it, in conversions Triton emulates on a GPU generation it no longer
#: lists as supported (Triton >= 3.3), and the hints compile to plain L1 loads (no ``createpolicy``).
AMPERE = (8, 0)


def gpu_of(device):
    """(name, (major, minor)) of a CUDA device, or None for any other device."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    i = device.index if device.index is not None else torch.cuda.current_device()
    return torch.cuda.get_device_name(i), tuple(torch.cuda.get_device_capability(i))


def triton_dtypes(device):
    """The input dtypes the Triton path takes on ``device``: float32 and float16 everywhere,
    bfloat16 from compute capability 8.0 (Ampere) on."""
    gpu = gpu_of(device)
    if gpu is not None and gpu[1] < AMPERE:
        return (torch.float32, torch.float16)
    return (torch.float32, torch.float16, torch.bfloat16)


def _check_capability(u):
    # bfloat16 on a GPU older than Ampere: refused with what to use instead (the torch path, or
    # float16/float32 inputs). Not a silent fallback: an explicit backend="triton" gets the kernel
    # or an error; ssmbook.selective's backend="auto" routes such inputs to torch itself.
    gpu = gpu_of(u.device)
    if gpu is None or u.dtype in triton_dtypes(u.device):
        return
    name, (major, minor) = gpu
    raise ValueError(
        f"u has dtype {u.dtype}, which the Triton kernels do not take on {name} (sm_{major}{minor}, "
        f"compute capability {major}.{minor}; bfloat16 needs {AMPERE[0]}.{AMPERE[1]} or newer): "
        "pass float16 or float32 inputs, or use backend='torch' (which computes in float32)")


def _hints_supported(device):
    gpu = gpu_of(device)
    return gpu is None or gpu[1] >= AMPERE


#: Knobs of the launches, read at every call (benchmarks sweep them; tests flip ``forward``).
#: forward: "loop" (a channel per thread or few lanes, version 2), "chunked" (associative scan, v1) or
#: "auto" (choose_forward: the loop where there are enough channels and N <= LOOP_MAX_N).
#: loop_block_d: channels per program of the loop kernel (None: choose_loop_block decides);
#: unroll: time steps per unrolled iteration of the loop kernel (None: 64 // BLOCK_N, at least 1).
#: fwd_warps / bwd_warps: num_warps of the chunked forward and of the backward (None: Triton's 4;
#: 2 measured best for the backward on the H100).
#: backward: "loop" (version 2), "chunked" (version 1) or "auto" (choose_backward);
#: bwd_loop_block_d / bwd_unroll: channels per program and unrolled steps of the loop backward
#: (None: choose_loop_backward decides); bwd_loop_t: its chunk length, i.e. the checkpoint spacing
#: and the depth of its scratch (None: 16; a block_t given to the call wins).
#: packed_bc: the loop forward reads B and C packed as (L, N, 2) (True) or as two (L, N) tensors
#: (False); None: packed above 16 states, and for 16-bit inputs below 8192 channels. The loop
#: backward always packs. cache_hints: eviction hints on the loop forward's loads (None: float32
#: inputs with N <= 16). segments: split the sequence of the loop forward into this many segments
#: walked by separate programs (None: choose_segments).
CONFIG = dict(forward="auto", loop_block_d=None, unroll=None, fwd_warps=None, bwd_warps=2,
              backward="auto", bwd_loop_block_d=None, bwd_unroll=None, bwd_loop_t=None,
              packed_bc=None, cache_hints=None, segments=None)
LOOP_MAX_N = 64


def _check_loop_block(name, block_d, groups, per_group):
    if block_d & (block_d - 1):
        raise ValueError(f"{name} must be a power of two, got {block_d}")
    if groups > 1 and per_group % block_d:
        raise ValueError(f"{name} must divide dim // groups = {per_group}, got {block_d}")


def choose_loop_block(dim, groups=1, block_d=None, batch=None, block_n=None, dtype=None):
    """(BLOCK_D, num_warps) of the loop forward: one warp per program, and a block that never
    straddles two groups of B/C (BLOCK_D divides dim // groups). Generic rule: 32 channels, one per
    thread (measured on the H100: 32 channels per program beat 64 and 128). When ``batch`` and
    ``block_n`` are given, the H100 measurements of section 3 of benchmarks/NOTES.md decide: fewer
    channels than lanes per program means more programs (warps) in flight, and Triton then spreads
    the N states of a channel over the spare lanes: at (8, 2048, 4096, 16) 16 channels (fp32,
    1.25 ms vs 1.70) or 8 (bf16, 1.19 vs 1.60). Section 4 (B and C packed above 16 states, and
    segments below 8192 channels): at N = 64 8 channels (fp32) or 16 (16-bit); at 4096 channels,
    (2, 2048, 16384, 16), 16 (fp32) or 8 (bf16) with 8 segments."""
    per_group = dim // groups
    if block_d is None:
        block_d = 32
        if batch is not None and block_n is not None:
            if block_n <= 16:
                # also below 8192 channels, where the sequence is split into segments
                # (choose_segments): 1.42 ms fp32 at (2, 2048, 16384, 16) vs 2.45 unsplit with 2
                # channels per program, the best before segments (section 4)
                block_d = 16 if dtype == torch.float32 else 8
            elif block_n <= 64:
                # section 4, B and C packed: fp32 8 channels (2.67 ms vs 2.72 at 16), 16-bit 16
                # channels (2.51 vs 2.96 at 32 and 4.87 at 8)
                block_d = 8 if dtype == torch.float32 else 16
        block_d = min(block_d, max(triton.next_power_of_2(dim), 1))
        if groups > 1:
            block_d = min(block_d, _pow2_dividing(per_group))
    _check_loop_block("loop_block_d", block_d, groups, per_group)
    return block_d, min(max(block_d // 32, 1), 8)


def choose_forward(batch, dim, block_n):
    """Which forward kernel: the loop kernel has batch·dim / 32 warps of parallelism (one thread
    per channel), so it needs about one warp per scheduler of the GPU (H100: 132 SMs × 4) to
    beat the chunked kernel; its N states per thread cap it at LOOP_MAX_N. Measured on the H100
    (benchmarks/NOTES.md, section 2): at N = 16, 16384 channels 1.52 ms (loop) vs 3.37 ms
    (chunked), 4096 channels 5.99 ms (loop); at N = 64 the chunked kernel is 7x slower than the
    loop even then. Section 3: with 2 channels per program (``choose_loop_block``) the loop kernel
    takes 2.43 ms at 4096 channels, (2, 2048, 16384, 16), against 5.30 ms for the chunked one, so
    the loop is used from 4096 channels on."""
    if block_n > LOOP_MAX_N:
        return "chunked"
    if block_n > 16 or batch * dim >= 4096:
        return "loop"
    return "chunked"


def choose_backward(batch, dim, block_n):
    """Which backward kernel. The loop kernel (step by step, like the loop forward) up to
    LOOP_MAX_N states, but at N <= 16 only from 8192 channels: measured on the H100
    (benchmarks/NOTES.md, section 4),
    fwd+bwd at (8, 2048, 4096, 16) 7.2 ms (loop) vs 13.3 (chunked), at (8, 2048, 4096, 64)
    31.8 vs 58.2, but with 4096 channels, (2, 2048, 16384, 16), 19.5 vs 15.3: too few warps."""
    if block_n > LOOP_MAX_N:
        return "chunked"
    if block_n > 16 or batch * dim >= 8192:
        return "loop"
    return "chunked"


def choose_loop_backward(dim, groups, block_n, block_d=None, unroll=None):
    """(BLOCK_D, UNROLL, num_warps) of the loop backward: one warp per program; 16 channels at
    N <= 16 (the N states of a channel then share two lanes), 8 above (N/4 lanes each); a block
    inside one group of B/C; UNROLL steps per unrolled iteration, 4 at N <= 16, 1 above (registers
    hold UNROLL rows of B, C and h). Measured best on the H100 (benchmarks/NOTES.md, section 4)."""
    per_group = dim // groups
    if block_d is None:
        block_d = min(16 if block_n <= 16 else 8, max(triton.next_power_of_2(dim), 1))
        if groups > 1:
            block_d = min(block_d, _pow2_dividing(per_group))
    _check_loop_block("bwd_loop_block_d", block_d, groups, per_group)
    if unroll is None:
        unroll = 4 if block_n <= 16 else 1
    if unroll & (unroll - 1):
        raise ValueError(f"CONFIG['bwd_unroll'] must be a power of two, got {unroll}")
    return block_d, unroll, min(max(block_d // 32, 1), 8)


def choose_segments(batch, dim, block_d, n_chunks, block_n, dtype):
    """How many segments the loop forward splits the sequence into (1: no split). Each segment
    but the last is walked twice (once for its summary), so a split pays only where the programs
    of batch × channel blocks leave warp schedulers idle. Measured on the H100 (benchmarks/NOTES.md,
    section 4): with 16384 channels every split was slower (fp32 N = 16: 1.05 ms unsplit, 1.44 at
    2 segments, 1.20 at 4); with 4096 channels, (2, 2048, 16384, 16), 8 segments of 16 channels
    (fp32) or 8 (bf16) per program took 1.42 / 2.11 ms against 2.45 / 2.52 unsplit."""
    if block_n <= 16 and batch * dim < 8192:
        return max(1, min(8, n_chunks))
    return 1


def choose_unroll(block_n, dtype):
    """Steps per unrolled iteration of the loop kernel, as measured on the H100 (section 2 of
    benchmarks/NOTES.md): register use grows with UNROLL · N, and past the register file the
    kernel spills and slows down several times (UNROLL = 8 and 32 at N = 16 did)."""
    if block_n <= 16:  # 16-bit: 8 (section 4: 2.56 ms vs 2.85 at U = 4 on the long bf16 shape)
        return 16 if dtype == torch.float32 else 8
    if block_n <= 64:  # with B and C packed (section 4): fp32 U = 4 2.67 ms vs U = 2 4.57 at 8 channels
        return 4 if dtype == torch.float32 else 2
    return 1


def _forward(u, delta, A, B4, C4, D, z, delta_bias, delta_softplus, blocks, checkpoints=True):
    """Launch a forward kernel. ``checkpoints``: store the state at every chunk end for the
    backward pass; without, only the last state is stored, (batch, dim, 1, N)."""
    batch, dim, L = u.shape
    groups, N = B4.shape[1], B4.shape[2]
    BD, BT, BN = blocks
    n_chunks = triton.cdiv(L, BT)
    out = torch.empty_like(u)
    ckpt = torch.empty(batch, dim, n_chunks if checkpoints else 1, N, device=u.device,
                       dtype=torch.float32)
    dummy = u  # stands in for absent optional pointers (never read: the constexpr flags are off)
    flags = dict(HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                 SOFTPLUS=bool(delta_softplus), CHECKPOINTS=bool(checkpoints))
    optional = (D if D is not None else dummy, z if z is not None else dummy,
                delta_bias if delta_bias is not None else dummy)
    method = CONFIG["forward"]
    if method == "auto":
        method = choose_forward(batch, dim, BN)
    if method == "loop":
        # B and C transposed to (batch, groups, L, N), or packed as (batch, groups, L, N, 2): the
        # loop reads one time step's row of each. They are N/dim times smaller than u, so the copy
        # is cheap. Packed measured faster above 16 states, slower at 16 (benchmarks/NOTES.md §4).
        fp32 = u.dtype == torch.float32
        packed = CONFIG["packed_bc"]
        if packed is None:  # section 4: packed wins above 16 states, and for bf16 at 4096 channels
            packed = BN > 16 or (batch * dim < 8192 and not fp32)
        # Eviction hints (section 4): fp32 N = 16 1.21 -> 1.04 ms at (8, 2048, 4096, 16) and
        # 3.04 -> 2.76 at (2, 2048, 16384, 16), but slower in bf16 (1.20 -> 1.23) and at N = 64
        # (2.29 -> 2.47): only where they won.
        hints = CONFIG["cache_hints"]
        if hints is None:  # measured on Hopper; below Ampere they are not cache policies at all
            hints = fp32 and BN <= 16 and _hints_supported(u.device)
        if packed:
            Bt = Ct = _pack_bc(B4, C4)
        else:
            Bt, Ct = B4.transpose(2, 3).contiguous(), C4.transpose(2, 3).contiguous()
        LBD, warps = choose_loop_block(dim, groups, CONFIG["loop_block_d"], batch, BN, u.dtype)
        # steps per unrolled iteration: registers hold UNROLL steps' exponentials, (UNROLL, N)
        unroll = CONFIG["unroll"] or choose_unroll(BN, u.dtype)
        if unroll & (unroll - 1):
            raise ValueError(f"CONFIG['unroll'] must be a power of two, got {unroll}")
        # Segments: split the sequence over more programs when batch × channel blocks are too few
        # to keep every warp scheduler busy (two launches: summaries, then the walk; see kernel).
        n_segs = CONFIG["segments"] or choose_segments(batch, dim, LBD, n_chunks, BN, u.dtype)
        per_seg = triton.cdiv(n_chunks, max(int(n_segs), 1))
        n_segs = triton.cdiv(n_chunks, per_seg)                 # no empty segment
        hseg = torch.empty(batch, dim, n_segs, N, device=u.device, dtype=torch.float32)
        dseg = torch.empty(batch, dim, n_segs, device=u.device, dtype=torch.float32)
        args = (u, delta, A, Bt, Ct, *optional, out, ckpt, hseg, dseg,
                dim, L, N, 1, 1, groups, dim // groups, n_chunks, per_seg, n_segs)
        meta = dict(**flags, BLOCK_D=LBD, BLOCK_T=BT, BLOCK_N=BN, UNROLL=min(unroll, BT),
                    EVEN_N=BN == N, PACKED=bool(packed), **_cache_hints(hints),
                    SEGMENTED=n_segs > 1, num_warps=warps)
        grid = (triton.cdiv(dim, LBD), batch)
        if n_segs > 1:
            _selective_scan_fwd_loop_kernel[grid + (n_segs - 1,)](*args, **meta, SUMMARY=True)
        _selective_scan_fwd_loop_kernel[grid + (n_segs,)](*args, **meta, SUMMARY=False)
        return out, ckpt
    if method != "chunked":
        raise ValueError(f"CONFIG['forward'] must be 'auto', 'loop' or 'chunked', got {method!r}")
    extra = {"num_warps": CONFIG["fwd_warps"]} if CONFIG["fwd_warps"] else {}
    _selective_scan_fwd_kernel[(triton.cdiv(dim, BD), batch)](
        u, delta, A, B4, C4, *optional, out, ckpt,
        dim, L, N, groups, dim // groups, n_chunks,
        **flags, BLOCK_D=BD, BLOCK_T=BT, BLOCK_N=BN, **extra,
    )
    return out, ckpt


class SelectiveScanFn(torch.autograd.Function):
    """Autograd wrapper: forward kernel, and the backward kernel for every floating input."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                return_last_state=False, block_t=None, block_d=None):
        batch, dim, L, N, groups = check_inputs(u, delta, A, B, C, D, z, delta_bias)
        if u.dtype == torch.float64:
            raise ValueError("u must be float32, float16 or bfloat16 for the Triton kernels, got "
                             "torch.float64")
        _check_device(u)
        _check_capability(u)
        B4, C4 = _as_4d(B), _as_4d(C)
        bn = max(triton.next_power_of_2(N), 2)
        backward = CONFIG["backward"]
        if backward == "auto":
            backward = choose_backward(batch, dim, bn)
        if backward not in ("loop", "chunked"):
            raise ValueError(
                f"CONFIG['backward'] must be 'auto', 'loop' or 'chunked', got {backward!r}")
        if backward == "loop" and bn > LOOP_MAX_N:
            raise ValueError(
                f"the loop backward holds at most {LOOP_MAX_N} states per channel, got N = {N}")
        if backward == "loop" and block_t is None:
            # the loop backward's chunk (checkpoint spacing, scratch depth) is its own choice
            block_t = min(CONFIG["bwd_loop_t"] or 16, max(triton.next_power_of_2(L), 2))
        blocks = choose_blocks(dim, L, N, B4.shape[1], block_t, block_d, batch, u.dtype, z is not None)
        u, delta, A = u.contiguous(), delta.contiguous(), A.contiguous()
        z = z.contiguous() if z is not None else None
        D = D.contiguous() if D is not None else None
        delta_bias = delta_bias.contiguous() if delta_bias is not None else None
        # Checkpoints only when a gradient can be asked for (an inference forward skips them)
        out, ckpt = _forward(u, delta, A, B4, C4, D, z, delta_bias, delta_softplus, blocks,
                             checkpoints=any(ctx.needs_input_grad))
        ctx.save_for_backward(u, delta, A, B4, C4, D, z, delta_bias, ckpt)
        ctx.shared_bc = B.dim() == 3
        ctx.delta_softplus = bool(delta_softplus)
        ctx.blocks = blocks
        ctx.backward = backward
        if return_last_state:
            last = ckpt[:, :, -1, :]
            ctx.mark_non_differentiable(last)
            return out, last
        return out

    @staticmethod
    def backward(ctx, gout, *unused):
        u, delta, A, B4, C4, D, z, delta_bias, ckpt = ctx.saved_tensors
        batch, dim, L = u.shape
        groups, N = B4.shape[1], B4.shape[2]
        BD, BT, BN = ctx.blocks
        n_chunks = ckpt.shape[2]
        gout = gout.contiguous()
        f32 = dict(device=u.device, dtype=torch.float32)
        gu, gdelta = torch.empty_like(u), torch.empty_like(delta)
        gz = torch.empty_like(z) if z is not None else None
        gA = torch.empty(batch, dim, N, **f32)
        gD = torch.empty(batch, dim, **f32) if D is not None else None
        gbias = torch.empty(batch, dim, **f32) if delta_bias is not None else None
        if ctx.backward == "loop":
            gB, gC = _backward_loop(u, delta, A, B4, C4, D, z, delta_bias, ckpt, gout, gu, gdelta, gz,
                                    gA, gD, gbias, ctx.delta_softplus, BT, BN)
            return _finish_backward(ctx, A, B4, C4, D, delta_bias, gu, gdelta, gA, gB, gC, gD, gz, gbias)
        gB = torch.zeros(B4.shape, **f32)   # zeros: the kernel adds into them
        gC = torch.zeros(C4.shape, **f32)
        dummy = gA
        grid = (triton.cdiv(dim, BD), batch)
        _selective_scan_bwd_kernel[grid](
            u, delta, A, B4, C4,
            D if D is not None else dummy, z if z is not None else dummy,
            delta_bias if delta_bias is not None else dummy, ckpt, gout,
            gu, gdelta, gz if gz is not None else dummy,
            gA, gD if gD is not None else dummy, gbias if gbias is not None else dummy,
            gB, gC,
            dim, L, N, groups, dim // groups, n_chunks,
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
            SOFTPLUS=ctx.delta_softplus, BLOCK_D=BD, BLOCK_T=BT, BLOCK_N=BN,
            **({"num_warps": CONFIG["bwd_warps"]} if CONFIG["bwd_warps"] else {}),
        )
        return _finish_backward(ctx, A, B4, C4, D, delta_bias, gu, gdelta, gA, gB, gC, gD, gz, gbias)


def _finish_backward(ctx, A, B4, C4, D, delta_bias, gu, gdelta, gA, gB, gC, gD, gz, gbias):
    # Reduce the per-batch partials of the per-channel parameters; cast to the input dtypes.
    gA = gA.sum(0).to(A.dtype)
    gD = gD.sum(0).to(D.dtype) if D is not None else None
    gbias = gbias.sum(0).to(delta_bias.dtype) if delta_bias is not None else None
    gB, gC = gB.to(B4.dtype), gC.to(C4.dtype)
    if ctx.shared_bc:
        gB, gC = gB.squeeze(1), gC.squeeze(1)
    return gu, gdelta, gA, gB, gC, gD, gz, gbias, None, None, None, None


def _backward_loop(u, delta, A, B4, C4, D, z, delta_bias, ckpt, gout, gu, gdelta, gz, gA, gD, gbias,
                   softplus, BT, BN):
    """Launch the loop backward; returns the B and C gradients as (batch, groups, N, L) float32."""
    batch, dim, L = u.shape
    groups, N = B4.shape[1], B4.shape[2]
    LBD, unroll, warps = choose_loop_backward(dim, groups, BN, CONFIG["bwd_loop_block_d"],
                                              CONFIG["bwd_unroll"])
    n_dblocks = triton.cdiv(dim, LBD)
    f32 = dict(device=u.device, dtype=torch.float32)
    BC = _pack_bc(B4, C4)
    # B and C gradients: one partial sum per program (its channels), (batch, blocks, L, N), then
    # summed here over the blocks of each group: no atomics, and the result is deterministic.
    gBp = torch.empty(batch, n_dblocks, L, N, **f32)
    gCp = torch.empty(batch, n_dblocks, L, N, **f32)
    scratch = torch.empty(batch * n_dblocks * (BT + 1) * BN * LBD, **f32)
    dummy = gA
    _selective_scan_bwd_loop_kernel[(n_dblocks, batch)](
        u, delta, A, BC,
        D if D is not None else dummy, z if z is not None else dummy,
        delta_bias if delta_bias is not None else dummy, ckpt, gout,
        gu, gdelta, gz if gz is not None else dummy,
        gA, gD if gD is not None else dummy, gbias if gbias is not None else dummy,
        gBp, gCp, scratch,
        dim, L, N, 1, 1, groups, dim // groups, ckpt.shape[2],
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=softplus, BLOCK_D=LBD, BLOCK_T=BT, BLOCK_N=BN, UNROLL=min(unroll, BT),
        EVEN_N=BN == N, num_warps=warps,
    )
    # a block never straddles two groups, so the blocks of group g are consecutive
    gB = gBp.view(batch, groups, -1, L, N).sum(2).transpose(2, 3)
    gC = gCp.view(batch, groups, -1, L, N).sum(2).transpose(2, 3)
    return gB, gC


def selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          return_last_state=False, block_t=None, block_d=None):
    """Functional entry point of the Triton selective scan (arguments as ``ssmbook.selective``).

    ``block_t`` (chunk length) and ``block_d`` (channels per program) override the tile sizes
    chosen by :func:`choose_blocks`; tests use them to force several chunks on short sequences.
    """
    return SelectiveScanFn.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                 return_last_state, block_t, block_d)


def source_sections(fn):
    """Split the source of a kernel (or any function) at its ``# --- title ---`` comments.

    Returns a list of ``(title, code)`` pairs in order; the code before the first marker is titled
    ``"signature"``. Joining the codes gives back the whole source: the chapter uses this to show
    a kernel section by section, straight from this file.
    """
    import inspect

    src = inspect.getsource(getattr(fn, "fn", fn))  # a @triton.jit kernel keeps the function in .fn
    sections, title, lines = [], "signature", []
    for line in src.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("# ---") and stripped.strip("# -"):
            if lines:
                sections.append((title, "".join(lines)))
            title, lines = stripped.strip("# -").strip(), []
        lines.append(line)
    sections.append((title, "".join(lines)))
    return sections
