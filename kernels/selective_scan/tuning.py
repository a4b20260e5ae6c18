"""Which selective-scan kernel runs with which tiles: KernelConfig and the choose_* rules.

The rules pick, for a problem's shape and dtype, the kernel (chunked scan or recurrent loop, for the
forward and the backward pass), its tiles, its unrolling and its warps; each docstring gives the
measurements behind it (benchmarks/NOTES.md). A :class:`KernelConfig` passed to
``selective_scan_triton(..., config=...)`` overrides any of those choices; its fields left at None
leave the choice to the rules.
"""
import dataclasses

import torch

_METHODS = ("auto", "loop", "chunked")


# Host arithmetic of the launchers. Plain functions, not triton.cdiv / triton.next_power_of_2:
# those are constexpr functions in recent Triton, and each host call of one costs microseconds,
# which the launchers (a dozen calls per selective scan) paid on every call.
def cdiv(a, b):
    """⌈a / b⌉ for positive ints."""
    return -(-a // b)


def next_pow2(n):
    """The smallest power of two ≥ n (1 for n ≤ 1)."""
    return 1 << max(n - 1, 0).bit_length()


def _power_of_two_or_none(name, value):
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value & (value - 1):
        raise ValueError(f"{name} must be a power of two (or None), got {value!r}")


@dataclasses.dataclass(frozen=True)
class KernelConfig:
    """The knobs of the launches (benchmarks sweep them; tests force each kernel). Derive a variant
    with ``dataclasses.replace(config, field=value)``. None: the rules of this module decide.

    * ``forward``: "loop" (each channel walks time, ``recurrent_fwd_kernel``), "chunked" (the
      associative scan, ``chunk_fwd_kernel``) or "auto" (:func:`choose_forward`: the loop where
      N <= LOOP_MAX_N and there are enough channels, or for a long inference pass). ``backward`` likewise (:func:`choose_backward`).
    * ``loop_block_d``: channels per program of the loop forward (:func:`choose_loop_block`);
      ``unroll``: its time steps per unrolled iteration (:func:`choose_unroll`).
    * ``fwd_warps`` / ``bwd_warps``: num_warps of the chunked forward and backward (None: Triton's
      4; 2 measured best for the chunked backward on the H100).
    * ``bwd_loop_block_d`` / ``bwd_unroll``: channels per program and unrolled steps of the loop
      backward (:func:`choose_loop_backward`); ``bwd_loop_t``: its chunk length, i.e. the checkpoint
      spacing and the depth of its scratch (None: 16; a ``block_t`` given to the call wins).
    * ``packed_bc``: the loop forward reads B and C packed as (L, N, 2) (True) or as two (L, N)
      tensors (False); None: packed above 16 states, and for 16-bit inputs below 8192 channels. The
      loop backward always packs. ``cache_hints``: eviction hints on the loop forward's loads (None:
      float32 inputs with N <= 16, from Ampere on). ``segments``: split the sequence of the loop
      forward into this many segments walked by separate programs (None: :func:`choose_segments`);
      ``bwd_segments`` likewise for the loop backward (None: :func:`choose_bwd_segments`).

    Every field is checked here: a ValueError names the field and what it takes.
    """

    forward: str = "auto"
    loop_block_d: int | None = None
    unroll: int | None = None
    fwd_warps: int | None = None
    bwd_warps: int | None = 2
    backward: str = "auto"
    bwd_loop_block_d: int | None = None
    bwd_unroll: int | None = None
    bwd_loop_t: int | None = None
    packed_bc: bool | None = None
    cache_hints: bool | None = None
    segments: int | None = None
    bwd_segments: int | None = None

    def __post_init__(self):
        for name in ("forward", "backward"):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in _METHODS:
                raise ValueError(f"{name} must be 'auto', 'loop' or 'chunked', got {value!r}")
        for name in ("loop_block_d", "unroll", "fwd_warps", "bwd_warps", "bwd_loop_block_d",
                     "bwd_unroll", "bwd_loop_t"):
            _power_of_two_or_none(name, getattr(self, name))
        for name in ("packed_bc", "cache_hints"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"{name} must be True, False or None, got {value!r}")
        for name in ("segments", "bwd_segments"):
            s = getattr(self, name)
            if s is not None and (isinstance(s, bool) or not isinstance(s, int) or s < 1):
                raise ValueError(f"{name} must be a positive int (or None), got {s!r}")


# --- tiles of the chunked kernels ---


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
    block_n = max(next_pow2(N), 2)
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
            block_t = min(block_t, max(next_pow2(L), 2))
            block_d = min(block_d, next_pow2(dim))
            if groups > 1:
                block_d = min(block_d, _pow2_dividing(per_group))
    if block_t is None:
        block_t = min(32, max(next_pow2(L), 2), max(TILE_BUDGET // block_n, 2))
    limit = max(TILE_BUDGET // (block_t * block_n), 1)
    if block_d is None:
        block_d = min(16, limit, next_pow2(dim))
        if groups > 1:
            block_d = min(block_d, _pow2_dividing(per_group))
    if block_t & (block_t - 1) or block_d & (block_d - 1):
        raise ValueError(f"block_t and block_d must be powers of two, got {block_t}, {block_d}")
    if groups > 1 and per_group % block_d:
        raise ValueError(f"block_d must divide dim // groups = {per_group}, got {block_d}")
    return block_d, block_t, block_n



# --- the loop kernels ---


#: The most states per channel the loop kernels hold (a channel's states sit in one thread).
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
        block_d = min(block_d, max(next_pow2(dim), 1))
        if groups > 1:
            block_d = min(block_d, _pow2_dividing(per_group))
    _check_loop_block("loop_block_d", block_d, groups, per_group)
    return block_d, min(max(block_d // 32, 1), 8)


def choose_forward(batch, dim, block_n, L=None, inference=False):
    """Which forward kernel: the loop kernel (one thread per channel walks time) where a channel's
    N states fit in a thread (N <= LOOP_MAX_N) and there are enough channels, the chunked scan
    otherwise. The loop has batch·dim / 32 warps of parallelism, so with few channels it needs
    segments (:func:`choose_segments`). Measured on the H100 (benchmarks/NOTES.md, section 2): at
    N = 16, 16384 channels 1.52 ms (loop) vs 3.37 ms (chunked); at N = 64 the chunked kernel is 7x
    slower even with few channels. Section 3: at 4096 channels, (2, 2048, 16384, 16), 2.43 ms (loop)
    vs 5.30 (chunked), so the loop from 4096 channels on. Below that, at N <= 16, the loop only for
    an ``inference`` forward (no checkpoints) of ``L`` >= 8 · MIN_FWD_SEGMENT_STEPS steps, where it
    splits into MIN_SEGMENTS segments or more. H200, sections 10-11: (1, 2048, 8192, 16) fp32
    inference 1.54 ms chunked vs 0.39 loop in 16 segments, (1, 1536, 4096, 16) bf16 0.74 vs 0.22;
    but at L = 256, (1, 1536, 256, 16) bf16, chunked 0.04 ms vs 0.10 unsplit loop, and with a
    gradient (checkpoints, then the backward) the chunked forward won at (1, 2048, 2048, 16) fp32,
    1.08 ms fwd+bwd vs 1.39."""
    if block_n > LOOP_MAX_N:
        return "chunked"
    if block_n > 16 or batch * dim >= 4096:
        return "loop"
    if inference and L is not None and L >= MIN_SEGMENTS * MIN_FWD_SEGMENT_STEPS:
        return "loop"
    return "chunked"


def choose_backward(batch, dim, block_n, L=None):
    """Which backward kernel. The loop kernel (step by step, like the loop forward) up to
    LOOP_MAX_N states; at N <= 16 below 8192 channels only where it is split into segments
    (:func:`choose_bwd_segments`, which needs ``L``; without it, none). Measured on the H100
    (benchmarks/NOTES.md, section 4), fwd+bwd at (8, 2048, 4096, 16) 7.2 ms (loop) vs 13.3
    (chunked), at (8, 2048, 4096, 64) 31.8 vs 58.2, but with 4096 channels, (2, 2048, 16384, 16),
    unsplit 19.5 vs 15.3: too few warps. Split, the loop wins there (H200, section 10: 7.7 ms at
    16 segments vs 14.5 chunked; (3, 2560, 1000, 16) bf16 1.0 vs 5.2); unsplit at short L it does
    not ((1, 1536, 256, 16) fp32 0.66 vs 0.60)."""
    if block_n > LOOP_MAX_N:
        return "chunked"
    if block_n > 16 or batch * dim >= 8192:
        return "loop"
    if L is not None:
        block_d = choose_loop_backward(dim, 1, block_n)[0]
        if choose_bwd_segments(batch, dim, block_d, cdiv(L, LOOP_BWD_T)) > 1:
            return "loop"
    return "chunked"


#: Chunk length of the loop backward (its checkpoint spacing) unless KernelConfig.bwd_loop_t says.
LOOP_BWD_T = 16

#: Programs (one warp each) a segmented loop kernel aims at: about 8 per warp scheduler of an
#: H200 (132 SMs x 4 schedulers), as many as its 255-register programs can keep resident.
SEGMENT_TARGET_PROGRAMS = 4096

#: The most segments a rule picks, the fewest it splits into (fewer do not pay for the extra
#: summary walk), and the fewest chunks of the loop backward (16 steps each) a segment gets.
MAX_SEGMENTS = 32
MIN_SEGMENTS = 8
MIN_SEGMENT_CHUNKS = 16

#: The fewest time steps a segment of the loop forward at N <= 16 gets (H200, section 10: at
#: (1, 2048, 2048, 16) fp32 segments of 64 steps, 0.15 ms, about as fast as of 128, 0.14).
MIN_FWD_SEGMENT_STEPS = 64


def _segments_for(programs, n_chunks):
    """Segments that bring ``programs`` one-warp programs up to about SEGMENT_TARGET_PROGRAMS, but
    only where that takes MIN_SEGMENTS or more (with fewer, the extra summary walk ate the gain: H200,
    section 10, 1024 programs 6.8 ms unsplit vs 7.2 at 4 segments and 7.6 at 2), at most
    MAX_SEGMENTS and no segment under MIN_SEGMENT_CHUNKS chunks (at L = 256, 16 chunks, 2 and 4
    segments measured 2x slower than none). 1: no split."""
    s = SEGMENT_TARGET_PROGRAMS // max(programs, 1)
    if s < MIN_SEGMENTS:
        return 1
    return max(1, min(s, MAX_SEGMENTS, n_chunks // MIN_SEGMENT_CHUNKS))


def choose_bwd_segments(batch, dim, block_d, n_chunks):
    """Segments of the loop backward (1: unsplit) for ``n_chunks`` chunks and programs of
    ``block_d`` channels: :func:`_segments_for` the batch x channel-block programs. Measured on the
    H200 (benchmarks/NOTES.md, section 10), fwd+bwd: (1, 5120, 16384, 16) bf16, 320 programs,
    18.9 ms unsplit, 11.3 at 8, 10.3 at 16 segments; (2, 2048, 16384, 16) fp32, 256 programs, 17.6,
    8.1, 7.7; (1, 768, 16384, 64) fp32, 96 programs, 46.1 (chunked), 17.6 at 8, 15.7 at 32;
    (2, 4096, 6000, 16) fp32, 512 programs, 7.4 unsplit, 5.5 at 8; but 1024 programs,
    (8, 2048, 4096, 16) fp32, 6.8 unsplit against 7.2 at 4 and 7.6 at 2."""
    return _segments_for(batch * cdiv(dim, block_d), n_chunks)


def choose_loop_backward(dim, groups, block_n, block_d=None, unroll=None):
    """(BLOCK_D, UNROLL, num_warps) of the loop backward: one warp per program; 16 channels at
    N <= 16 (the N states of a channel then share two lanes), 8 above (N/4 lanes each); a block
    inside one group of B/C; UNROLL steps per unrolled iteration, 4 at N <= 16, 1 above (registers
    hold UNROLL rows of B, C and h). Measured best on the H100 (benchmarks/NOTES.md, section 4)."""
    per_group = dim // groups
    if block_d is None:
        block_d = min(16 if block_n <= 16 else 8, max(next_pow2(dim), 1))
        if groups > 1:
            block_d = min(block_d, _pow2_dividing(per_group))
    _check_loop_block("bwd_loop_block_d", block_d, groups, per_group)
    if unroll is None:
        unroll = 4 if block_n <= 16 else 1
    if unroll & (unroll - 1):
        raise ValueError(f"bwd_unroll must be a power of two, got {unroll}")
    return block_d, unroll, min(max(block_d // 32, 1), 8)


def choose_segments(batch, dim, block_d, n_chunks, block_n, dtype, block_t=LOOP_BWD_T):
    """How many segments the loop forward splits the sequence of ``n_chunks`` chunks of
    ``block_t`` steps into (1: no split). Each segment but the last is walked twice (once,
    lighter, for its summary), so a split pays only where the programs of batch × channel blocks
    leave warp schedulers idle. Measured on the H100 (benchmarks/NOTES.md, section 4): with 16384
    channels every split was slower (fp32 N = 16: 1.05 ms unsplit, 1.44 at 2 segments, 1.20 at
    4; the H200 alike, section 9); with 4096 channels, (2, 2048, 16384, 16), 8 segments of 16
    channels (fp32) or 8 (bf16) per program took 1.42 / 2.11 ms against 2.45 / 2.52 unsplit. The
    count falls with the channels, 32768 / (batch · dim) segments (8 at 4096 channels, 5 at 6144,
    4 at 8192, 16 at 2048), none where that is under 4 (2 segments lost most at 16384 channels),
    at most MAX_SEGMENTS and no segment under MIN_FWD_SEGMENT_STEPS steps. Below 4096 channels
    (H200, section 10): (1, 2048, 8192, 16) fp32 0.64 ms at 8 segments, 0.39 at 16; (1, 1536,
    4096, 16) fp32 0.32 at 8, 0.16 at 32. The old rule, 8 segments below 8192 channels and none
    from there, made a 1.35x step in time per element between batch 3 and 4 at dim 2048 on the
    H200 (section 9). Above 16 states, as in the loop backward (:func:`choose_bwd_segments`):
    H200, section 10, (1, 768, 16384, 64) fp32, 96 programs, 7.34 ms unsplit, 1.82 at 8 segments,
    0.91 at 32; (2, 1536, 8192, 64) bf16, 192 programs, 3.87, 1.66, 1.41 at 16; but (4, 3072,
    3000, 64) bf16, 768 programs, 1.64 unsplit, 2.20 at 2."""
    if block_n > 16:  # N = 64: the rule of the loop backward (section 10)
        return _segments_for(batch * cdiv(dim, block_d), n_chunks)
    segments = 32768 // (batch * dim)
    if segments < 4:
        return 1
    longest = n_chunks * block_t // MIN_FWD_SEGMENT_STEPS
    return max(1, min(MAX_SEGMENTS, segments, longest, n_chunks))


def choose_unroll(block_n, dtype):
    """Steps per unrolled iteration of the loop kernel, as measured on the H100 (section 2 of
    benchmarks/NOTES.md): register use grows with UNROLL · N, and past the register file the
    kernel spills and slows down several times (UNROLL = 8 and 32 at N = 16 did)."""
    if block_n <= 16:  # 16-bit: 8 (section 4: 2.56 ms vs 2.85 at U = 4 on the long bf16 shape)
        return 16 if dtype == torch.float32 else 8
    if block_n <= 64:
        # with B and C packed (section 4): fp32 U = 4 2.67 ms vs U = 2 4.57 at 8 channels; 16-bit
        # U = 4 too (H200, section 9: 0.48 ms vs 0.64 at U = 2 at (32, 1024, 512, 64) bf16)
        return 4
    return 1
