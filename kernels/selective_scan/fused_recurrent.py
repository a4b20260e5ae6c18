"""The recurrent selective-scan kernels (each channel walks time step by step) and their launchers.

No parallel scan: a channel's N states sit in one thread (or a few lanes of a warp), which walks
time one step at a time, several independent channels side by side per thread. With enough channels
to give every warp scheduler a warp this is 2-3x faster than the chunked scan on an H100
(benchmarks/NOTES.md, sections 2-4); ``tuning.choose_forward`` and ``choose_backward`` pick between
the two. The forward writes the same checkpoints as the chunked forward, so either backward reads
either forward's. It can also split the sequence into segments walked by separate programs,
composing their end states first. The backward recomputes a chunk's states step by step into a small
per-program scratch, then walks the chunk backwards with the adjoint state in registers; the B and
C gradients are per-program partial sums, added on the host.
"""
import torch
import triton
import triton.language as tl

from .common import (LOG2E, channel_params, forward_outputs, hints_supported, launch_flags,
                     load_delta, or_dummy, sigmoid)
from .tuning import cdiv, choose_loop_backward, choose_loop_block, choose_segments, choose_unroll


# --- forward kernel ---


@triton.jit(do_not_specialize=["stride_an", "one"])
def recurrent_fwd_kernel(
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
    bias, Dskip = channel_params(bias_ptr, D_ptr, offs_d, mask_d, HAS_BIAS, HAS_D, BLOCK_D)

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
            _, dt_blk = load_delta(delta_ptr, offs, mk, bias[None, :], HAS_BIAS, SOFTPLUS,
                                   EV_STREAM)                          # past L: δ = 0, identity
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
                    y_blk *= z * sigmoid(z)
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


# --- backward kernels ---


@triton.jit
def _loop_block(A_ptr, stride_an, pid_d, dim, N, dim_per_group, BLOCK_D: tl.constexpr,
                BLOCK_N: tl.constexpr):
    """The block of a loop-backward program: its channels and states (indices and masks, the state
    tile (BLOCK_N, BLOCK_D) with the channels along the last axis), its group of B/C, and its A
    pre-scaled by log2(e), as in the loop forward."""
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < dim
    mask_n = offs_n < N
    mnd = mask_n[:, None] & mask_d[None, :]
    group = (pid_d * BLOCK_D) // dim_per_group
    A2 = tl.load(A_ptr + offs_d[None, :] * N + offs_n[:, None] * stride_an, mask=mnd,
                 other=0.0).to(tl.float32) * LOG2E                    # (BN, BD), A log2(e)
    return offs_d, offs_n, mask_d, mask_n, mnd, group, A2


@triton.jit
def _load_bc_step(bc_ptr, t, L, N, pair, offs_n, mask_n, EVEN_N: tl.constexpr):
    """(B_t, C_t) of one step from the packed (L, N, 2) rows, as float32. With EVEN_N no lane is
    padding, so the load needs no mask: the step is clamped into the sequence instead."""
    if EVEN_N:
        bc = tl.load(bc_ptr + tl.minimum(t, L - 1) * N * 2 + pair)
    else:
        m_n = mask_n & (offs_n * 0 + t < L)
        bc = tl.load(bc_ptr + t * N * 2 + pair, mask=m_n[:, None], other=0.0)
    return tl.split(bc.to(tl.float32))


@triton.jit(do_not_specialize=["stride_an", "one"])
def recurrent_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, BC_ptr, D_ptr, z_ptr, bias_ptr, ckpt_ptr, gout_ptr,  # inputs
    gu_ptr, gdelta_ptr, gz_ptr,           # (batch, dim, L), in the dtypes of u, delta, z
    gA_ptr, gD_ptr, gbias_ptr,            # per-batch partial sums, f32: (dim, N), (dim,), (dim,) per batch
    gB_ptr, gC_ptr,                       # per-block partial sums (batch, dim blocks, L, N): f32
    scratch_ptr,                          # per program: the states of one chunk, (BLOCK_T + 1, BN, BD)
    kseg_ptr, dseg_ptr,   # per segment: its carry from a zero λ (.., n_segs, N) and Σδ (.., n_segs)
    dim, L, N, stride_an, one, n_groups, dim_per_group, n_chunks,
    stride_gp,                            # elements from one batch's partials to the next's
    chunks_per_seg, n_segs,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr, UNROLL: tl.constexpr,
    EVEN_N: tl.constexpr, SEGMENTED: tl.constexpr,
):
    # --- Which part of the problem this program owns: as in the loop forward ------------------
    # The state tiles are (BLOCK_N, BLOCK_D), channels along the last axis: one thread holds one
    # channel's states (or a share of them), so sums over n stay inside a thread.
    # SEGMENTED: program (d, b, s) owns the chunks of segment s only (see below).
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    pid_s = tl.program_id(2)
    n_dblocks = tl.num_programs(0)
    offs_k = tl.arange(0, UNROLL)
    program = (pid_b * n_dblocks + pid_d) * n_segs + pid_s   # this program's scratch

    # --- Per-channel parameters, and accumulators for their gradients ------------------------
    offs_d, offs_n, mask_d, mask_n, mnd, group, A2 = _loop_block(
        A_ptr, stride_an, pid_d, dim, N, dim_per_group, BLOCK_D, BLOCK_N)
    bias, Dskip = channel_params(bias_ptr, D_ptr, offs_d, mask_d, HAS_BIAS, HAS_D, BLOCK_D)
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
    scratch = scratch_ptr + program * (BLOCK_T + 1) * BLOCK_N * BLOCK_D
    slot = offs_n[:, None] * BLOCK_D + tl.arange(0, BLOCK_D)[None, :]   # (BN, BD) within a slot

    # The adjoint state λ_t = ∂loss/∂h_t and a_{t+1}, carried from step to step, right to left:
    # each step forms λ_t = a_{t+1} λ_{t+1} + C_t ∂y_t, so the product a_next · lam is what enters
    # a chunk from the one to its right (zero past the last step).
    lam = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    a_next = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    # SEGMENTED (more programs than batch × channel blocks): the adjoint recurrence is linear, so
    # what enters segment s from its right is composed from the segments after it. A first launch
    # (recurrent_bwd_summary_kernel) walked each segment j from a zero λ and kept what it hands
    # on to its left, κ_j, and Σδ over it; segment j maps an incoming carry κ to
    # exp(A Σδ_j) κ + κ_j (the product of its decays). Composing those maps from the last
    # segment down to s + 1 gives this segment's incoming carry; a_next = 1 then passes it on.
    if SEGMENTED:
        seg_row = (pid_b * dim + offs_d) * n_segs
        for jj in range(0, n_segs - 1 - pid_s):
            j = n_segs - 1 - jj
            d_j = tl.load(dseg_ptr + seg_row + j, mask=mask_d, other=0.0)
            k_j = tl.load(kseg_ptr + (seg_row[None, :] + j) * N + offs_n[:, None], mask=mnd,
                          other=0.0)
            lam = tl.exp2(d_j[None, :] * A2) * lam + k_j
        a_next = tl.full((BLOCK_N, BLOCK_D), 1.0, dtype=tl.float32)

    c_lo = pid_s * chunks_per_seg
    c_hi = tl.minimum(c_lo + chunks_per_seg, n_chunks)
    for cc in range(0, c_hi - c_lo):
        c = c_hi - 1 - cc
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
            _, dt_blk = load_delta(delta_ptr, offs, mk, bias[None, :], HAS_BIAS, SOFTPLUS, "")
            dtu_blk = dt_blk * u_blk
            h_blk = tl.zeros((UNROLL, BLOCK_N, BLOCK_D), dtype=tl.float32)
            for k in tl.static_range(UNROLL):
                pick = offs_k[:, None] == k
                dt = tl.sum(tl.where(pick, dt_blk, 0.0), axis=0)
                dtu = tl.sum(tl.where(pick, dtu_blk, 0.0), axis=0)
                t = c * BLOCK_T + s0 + k
                Bt, _ = _load_bc_step(BC_ptr + bc, t, L, N, pair, offs_n, mask_n, EVEN_N)
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
            raw_blk, dt_blk = load_delta(delta_ptr, offs, mk, bias[None, :], HAS_BIAS, SOFTPLUS, "")
            gy_blk = tl.load(gout_ptr + offs, mask=mk, other=0.0).to(tl.float32)
            if HAS_Z:
                z_blk = tl.load(z_ptr + offs, mask=mk, other=0.0).to(tl.float32)
                sig_z = sigmoid(z_blk)
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
                Bt, Ct = _load_bc_step(BC_ptr + bc, t, L, N, pair, offs_n, mask_n, EVEN_N)
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
                gdt_blk = gdt_blk * sigmoid(raw_blk)       # softplus'(x) = σ(x)
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

    row_gp = (pid_b * n_segs + pid_s) * stride_gp   # one row of partials per batch and segment
    part = row_gp + offs_d
    tl.store(gA_ptr + row_gp + offs_d[None, :] * N + offs_n[:, None], gA_acc, mask=mnd)
    if HAS_D:
        tl.store(gD_ptr + part, gD_acc, mask=mask_d)
    if HAS_BIAS:
        tl.store(gbias_ptr + part, gbias_acc, mask=mask_d)


@triton.jit(do_not_specialize=["stride_an", "one"])
def recurrent_bwd_summary_kernel(
    delta_ptr, A_ptr, BC_ptr, z_ptr, bias_ptr, gout_ptr,     # inputs
    kseg_ptr, dseg_ptr,   # outputs per segment: carry from a zero λ (.., n_segs, N), Σδ (.., n_segs)
    dim, L, N, stride_an, one, n_groups, dim_per_group, n_chunks, chunks_per_seg, n_segs,
    HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr, UNROLL: tl.constexpr,
    EVEN_N: tl.constexpr,
):
    # The summaries of the segmented loop backward: program (d, b, j) walks segment j + 1 (every
    # segment but the first, whose carry goes nowhere) from its last step to its first with a zero
    # λ, by λ_t = a_{t+1} λ_{t+1} + C_t ∂y_t, and stores a_{t0} λ_{t0} (what it hands to the segment
    # on its left) and Σδ over it. No states are needed: λ does not depend on h.
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    seg = tl.program_id(2) + 1
    offs_k = tl.arange(0, UNROLL)
    offs_d, offs_n, mask_d, mask_n, mnd, group, A2 = _loop_block(
        A_ptr, stride_an, pid_d, dim, N, dim_per_group, BLOCK_D, BLOCK_N)
    bias, no_skip = channel_params(bias_ptr, bias_ptr, offs_d, mask_d, HAS_BIAS, False, BLOCK_D)
    row = (pid_b * dim + offs_d) * L
    bc = (pid_b * n_groups + group) * L * N * 2
    pair = offs_n[:, None] * 2 + tl.arange(0, 2)[None, :]
    lam = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    a_next = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    dt_total = tl.zeros((BLOCK_D,), dtype=tl.float32)
    c_lo = seg * chunks_per_seg
    c_hi = tl.minimum(c_lo + chunks_per_seg, n_chunks)
    for cc in range(0, c_hi - c_lo):
        c = c_hi - 1 - cc
        for sb in range(0, BLOCK_T, UNROLL):
            s0 = BLOCK_T - UNROLL - sb
            tk = c * BLOCK_T + s0 + offs_k
            mk = (tk < L)[:, None] & mask_d[None, :]
            offs = row[None, :] + tk[:, None] * one
            _, dt_blk = load_delta(delta_ptr, offs, mk, bias[None, :], HAS_BIAS, SOFTPLUS, "")
            gy_blk = tl.load(gout_ptr + offs, mask=mk, other=0.0).to(tl.float32)
            if HAS_Z:
                z_blk = tl.load(z_ptr + offs, mask=mk, other=0.0).to(tl.float32)
                gy_blk = gy_blk * z_blk * sigmoid(z_blk)
            dt_total += tl.sum(dt_blk, axis=0)
            for kk in tl.static_range(UNROLL):
                k = UNROLL - 1 - kk
                pick = offs_k[:, None] == k
                dt = tl.sum(tl.where(pick, dt_blk, 0.0), axis=0)
                gy = tl.sum(tl.where(pick, gy_blk, 0.0), axis=0)
                t = c * BLOCK_T + s0 + k
                _, Ct = _load_bc_step(BC_ptr + bc, t, L, N, pair, offs_n, mask_n, EVEN_N)
                lam = a_next * lam + Ct[:, None] * gy[None, :]
                a_next = tl.exp2(dt[None, :] * A2)
    seg_row = (pid_b * dim + offs_d) * n_segs
    tl.store(kseg_ptr + (seg_row[None, :] + seg) * N + offs_n[:, None], a_next * lam, mask=mnd)
    tl.store(dseg_ptr + seg_row + seg, dt_total, mask=mask_d)


# --- launchers ---


def _cache_hints(hints):
    """Eviction hints of the loop forward's loads: keep the B/C rows (read by every program of the
    batch element) in cache and let the streamed u, delta, z go first; or no hints."""
    if hints:
        return dict(EV_ROWS="evict_last", EV_STREAM="evict_first")
    return dict(EV_ROWS="", EV_STREAM="")


def _pack_bc(B4, C4):
    """B and C of the loop kernels: (batch, groups, L, N, 2), B_t[n] and C_t[n] side by side (one
    stack of the transposed views: its result is contiguous in that layout)."""
    return torch.stack((B4.transpose(2, 3), C4.transpose(2, 3)), dim=-1)


def recurrent_forward(u, delta, A, B4, C4, D, z, delta_bias, delta_softplus, blocks, config,
                      checkpoints=True):
    """Launch the loop forward (twice when segmented: summaries, then the walk) on B, C as
    (batch, groups, N, L); BLOCK_T and BLOCK_N from ``blocks``, the rest from ``config`` (a
    KernelConfig: loop_block_d, unroll, packed_bc, cache_hints, segments; None fields chosen by
    the rules of ``tuning``). Returns ``(out, ckpt, bc)``: as :func:`chunk.chunk_forward`, and the
    packed B/C rows when the forward packed them (the loop backward reads the same), else None."""
    batch, dim, L = u.shape
    groups, N = B4.shape[1], B4.shape[2]
    _, BT, BN = blocks
    n_chunks = cdiv(L, BT)
    out, ckpt = forward_outputs(u, N, n_chunks, checkpoints)
    # B and C transposed to (batch, groups, L, N), or packed as (batch, groups, L, N, 2): the
    # loop reads one time step's row of each. They are N/dim times smaller than u, so the copy
    # is cheap. Packed measured faster above 16 states, slower at 16 (benchmarks/NOTES.md §4).
    fp32 = u.dtype == torch.float32
    packed = config.packed_bc
    if packed is None:  # section 4: packed wins above 16 states, and for bf16 at 4096 channels
        packed = BN > 16 or (batch * dim < 8192 and not fp32)
    # Eviction hints (section 4): fp32 N = 16 1.21 -> 1.04 ms at (8, 2048, 4096, 16) and
    # 3.04 -> 2.76 at (2, 2048, 16384, 16), but slower in bf16 (1.20 -> 1.23) and at N = 64
    # (2.29 -> 2.47): only where they won.
    hints = config.cache_hints
    if hints is None:  # measured on Hopper; below Ampere they are not cache policies at all
        hints = fp32 and BN <= 16 and hints_supported(u.device)
    if packed:
        Bt = Ct = _pack_bc(B4, C4)
    else:
        Bt, Ct = B4.transpose(2, 3).contiguous(), C4.transpose(2, 3).contiguous()
    LBD, warps = choose_loop_block(dim, groups, config.loop_block_d, batch, BN, u.dtype)
    # steps per unrolled iteration: registers hold UNROLL steps' exponentials, (UNROLL, N)
    unroll = config.unroll or choose_unroll(BN, u.dtype)
    # Segments: split the sequence over more programs when batch × channel blocks are too few
    # to keep every warp scheduler busy (two launches: summaries, then the walk; see kernel).
    n_segs = config.segments or choose_segments(batch, dim, LBD, n_chunks, BN, u.dtype, BT)
    per_seg = cdiv(n_chunks, max(int(n_segs), 1))
    n_segs = cdiv(n_chunks, per_seg)                 # no empty segment
    hseg = dseg = out  # never read unless segmented
    if n_segs > 1:
        hseg = torch.empty(batch, dim, n_segs, N, device=u.device, dtype=torch.float32)
        dseg = torch.empty(batch, dim, n_segs, device=u.device, dtype=torch.float32)
    args = (u, delta, A, Bt, Ct, *or_dummy(u, D, z, delta_bias), out, ckpt, hseg, dseg,
            dim, L, N, 1, 1, groups, dim // groups, n_chunks, per_seg, n_segs)
    meta = dict(**launch_flags(D, z, delta_bias, delta_softplus), CHECKPOINTS=bool(checkpoints),
                BLOCK_D=LBD, BLOCK_T=BT, BLOCK_N=BN, UNROLL=min(unroll, BT),
                EVEN_N=BN == N, PACKED=bool(packed), **_cache_hints(hints),
                SEGMENTED=n_segs > 1, num_warps=warps)
    grid = (cdiv(dim, LBD), batch)
    if n_segs > 1:
        recurrent_fwd_kernel[grid + (n_segs - 1,)](*args, **meta, SUMMARY=True)
    recurrent_fwd_kernel[grid + (n_segs,)](*args, **meta, SUMMARY=False)
    return out, ckpt, (Bt if packed else None)


def backward_segments(n_chunks, config):
    """(segments, chunks per segment) of the loop backward: ``config.bwd_segments`` (None: 1, the
    sequence unsplit; ``SelectiveScanFn.forward`` puts the count of ``choose_bwd_segments`` there)
    made to leave no segment empty. Segmenting splits the sequence over more
    programs, each walking its own chunks once the carries entering them are known."""
    per_seg = cdiv(n_chunks, config.bwd_segments or 1)
    return cdiv(n_chunks, per_seg), per_seg


def recurrent_backward(u, delta, A, B4, C4, D, z, delta_bias, ckpt, gout, grads, delta_softplus,
                       blocks, config, bc=None):
    """Launch the loop backward. ``grads`` as in :func:`chunk.chunk_backward`; BLOCK_T (the
    checkpoint spacing) and BLOCK_N from ``blocks``, channels per program and unrolled steps from
    ``config`` (bwd_loop_block_d, bwd_unroll; None: ``choose_loop_backward``; bwd_segments, see
    :func:`backward_segments`: gA, gD, gbias then hold batch × segments rows of partials);
    ``bc``: B and C packed by the forward (None: packed here). Returns the B and C gradients as one float32 tensor
    (2, batch, groups, N, L): B's, then C's."""
    batch, dim, L = u.shape
    groups, N = B4.shape[1], B4.shape[2]
    _, BT, BN = blocks
    gu, gdelta, gz, gA, gD, gbias = grads
    LBD, unroll, warps = choose_loop_backward(dim, groups, BN, config.bwd_loop_block_d,
                                              config.bwd_unroll)
    n_dblocks = cdiv(dim, LBD)
    n_chunks = ckpt.shape[2]
    f32 = dict(device=u.device, dtype=torch.float32)
    n_segs, per_seg = backward_segments(n_chunks, config)
    if gA.shape[0] != batch * n_segs:  # the caller sizes the partials with backward_segments
        raise ValueError(f"grads must hold {batch * n_segs} rows of per-channel partials "
                         f"(batch × segments), got {gA.shape[0]}")
    BC = _pack_bc(B4, C4) if bc is None else bc
    # B and C gradients: one partial sum per program (its channels), (batch, blocks, L, N), then
    # summed here over the blocks of each group: no atomics, and the result is deterministic.
    # B's and C's partials share one buffer, so that one reduction sums both.
    gBCp = torch.empty(2, batch, n_dblocks, L, N, **f32)
    scratch = torch.empty(batch * n_dblocks * n_segs * (BT + 1) * BN * LBD, **f32)
    kseg = dseg = scratch  # never read unless segmented
    flags = launch_flags(D, z, delta_bias, delta_softplus)
    tiles = dict(BLOCK_D=LBD, BLOCK_T=BT, BLOCK_N=BN, UNROLL=min(unroll, BT), EVEN_N=BN == N,
                 num_warps=warps)
    if n_segs > 1:
        kseg = torch.empty(batch, dim, n_segs, N, **f32)
        dseg = torch.empty(batch, dim, n_segs, **f32)
        recurrent_bwd_summary_kernel[(n_dblocks, batch, n_segs - 1)](
            delta, A, BC, *or_dummy(gout, z, delta_bias), gout, kseg, dseg,
            dim, L, N, 1, 1, groups, dim // groups, n_chunks, per_seg, n_segs,
            HAS_Z=flags["HAS_Z"], HAS_BIAS=flags["HAS_BIAS"], SOFTPLUS=flags["SOFTPLUS"], **tiles,
        )
    recurrent_bwd_kernel[(n_dblocks, batch, n_segs)](
        u, delta, A, BC, *or_dummy(gA, D, z, delta_bias), ckpt, gout,
        gu, gdelta, *or_dummy(gA, gz), gA, *or_dummy(gA, gD, gbias),
        gBCp[0], gBCp[1], scratch, kseg, dseg,
        dim, L, N, 1, 1, groups, dim // groups, n_chunks, gA.stride(0), per_seg, n_segs,
        **flags, SEGMENTED=n_segs > 1, **tiles,
    )
    # a block never straddles two groups, so the blocks of group g are consecutive
    gBC = gBCp.view(2, batch, groups, -1, L, N)
    gBC = gBC.squeeze(3) if gBC.shape[3] == 1 else gBC.sum(3)
    return gBC.transpose(3, 4)
