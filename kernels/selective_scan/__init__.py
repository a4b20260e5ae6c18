"""Mamba's selective scan in Triton: chunked and recurrent kernels, tuning rules, autograd.Function.

The recurrence, per batch element b, channel d and state index n (see ``ssmbook.selective``)::

    δ_t = softplus(delta_t + bias)      a_t = exp(δ_t A[d, n])      b_t = δ_t B_t[n] u_t
    h_t = a_t h_{t-1} + b_t             y_t = Σ_n C_t[n] h_t[n] + D u_t      out_t = y_t silu(z_t)

Design (the hardware-aware algorithm of the Mamba paper, written in Triton):

* One program owns one batch element and a block of channels, with all N states of each channel.
  The state never leaves the chip. Only u, delta, B, C, z are read from memory and only the output
  is written; the (batch, dim, L, N) tensors of the recurrence (a, b, h) exist only one chunk at a
  time, in registers.
* ``chunk``: time is cut into chunks; inside a chunk the recurrence is solved in parallel by
  ``tl.associative_scan`` with the operator (a₁, b₁) ∘ (a₂, b₂) = (a₂a₁, a₂b₁ + b₂) (chapter 6),
  between chunks the program carries the state.
* ``fused_recurrent``: no parallel scan; each channel's states sit in one thread, which walks time
  step by step. Faster with many channels (``tuning.choose_forward``, ``choose_backward``).
* Both forwards store the state at the end of every chunk (a checkpoint); both backwards recompute
  a chunk's states from the checkpoint before it instead of reading all L·N of them from memory,
  and run the adjoint recurrence λ_t = a_{t+1} λ_{t+1} + C_t ∂y_t for the gradients. Either
  backward reads either forward's checkpoints.
* Inputs may be float32, float16 or bfloat16; every computation and the state are float32.
* N need not be a power of two and L need not be a multiple of the chunk: out-of-range lanes are
  masked so that they act as the identity of the scan (a = 1, b = 0).

Files: ``common`` (jit helpers, device checks), ``chunk``, ``fused_recurrent`` (kernels and their
launchers), ``tuning`` (``KernelConfig`` and the ``choose_*`` rules), ``interface``
(``SelectiveScanFn``, ``selective_scan_triton``).
"""
from .chunk import chunk_bwd_kernel, chunk_fwd_kernel
from .common import (channel_params, check_capability, check_device, combine, gpu_of, interpreting,
                     load_delta, sigmoid, softplus, triton_dtypes)
from .fused_recurrent import recurrent_bwd_kernel, recurrent_fwd_kernel
from .interface import SelectiveScanFn, selective_scan_triton
from .tuning import (LOOP_MAX_N, TILE_BUDGET, KernelConfig, choose_backward, choose_blocks,
                     choose_bwd_segments, choose_forward, choose_loop_backward, choose_loop_block,
                     choose_segments, choose_unroll)

__all__ = [
    "combine", "softplus", "sigmoid", "load_delta", "channel_params",
    "interpreting", "gpu_of", "triton_dtypes", "check_device", "check_capability",
    "chunk_fwd_kernel", "chunk_bwd_kernel", "recurrent_fwd_kernel", "recurrent_bwd_kernel",
    "KernelConfig", "choose_blocks", "choose_loop_block", "choose_forward", "choose_backward",
    "choose_bwd_segments", "choose_loop_backward", "choose_segments", "choose_unroll",
    "LOOP_MAX_N", "TILE_BUDGET",
    "SelectiveScanFn", "selective_scan_triton",
]
