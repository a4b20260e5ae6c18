"""The Triton selective scan as a torch.autograd.Function and its functional entry point.

``SelectiveScanFn`` validates the arguments (``ssmbook._checks.selective_scan_inputs``), picks the
forward and backward kernels and their tiles (the rules of ``tuning``, overridden by a
``KernelConfig``), runs the forward, keeps its checkpoints and computes the gradient of every
floating input in the backward. Inputs may be float32, float16 or bfloat16; every computation and
the state are float32.
"""
import dataclasses

import torch

from ..._checks import ArgumentTypeError, selective_scan_inputs
from .chunk import chunk_backward, chunk_forward
from .common import check_capability, check_device
from .fused_recurrent import backward_segments, recurrent_backward, recurrent_forward
from .tuning import (LOOP_BWD_T, LOOP_MAX_N, KernelConfig, cdiv, choose_backward, choose_blocks,
                     choose_bwd_segments, choose_forward, choose_loop_backward, next_pow2)


def _as_4d(X):
    """B or C as (batch, groups, N, L), contiguous: the shared layout is one group."""
    return (X.unsqueeze(1) if X.dim() == 3 else X).contiguous()


def _forward(method, u, delta, A, B4, C4, D, z, delta_bias, delta_softplus, blocks, config,
             checkpoints=True):
    """Launch the forward kernel ``method`` ("loop" or "chunked"). ``checkpoints``: store the
    state at every chunk end for the backward pass; without, only the last state is stored,
    (batch, dim, 1, N). Returns ``(out, ckpt, bc)``: ``bc`` the B/C rows packed by the loop
    forward (the loop backward reuses them), or None."""
    if method == "loop":
        return recurrent_forward(u, delta, A, B4, C4, D, z, delta_bias, delta_softplus, blocks,
                                 config, checkpoints=checkpoints)
    out, ckpt = chunk_forward(u, delta, A, B4, C4, D, z, delta_bias, delta_softplus, blocks,
                              checkpoints=checkpoints, num_warps=config.fwd_warps)
    return out, ckpt, None


#: The configuration of a call that passes none (KernelConfig is frozen, so one instance serves).
_DEFAULT_CONFIG = KernelConfig()


def _check_config(config):
    if config is None:
        return _DEFAULT_CONFIG
    if not isinstance(config, KernelConfig):
        raise ArgumentTypeError(f"config must be a KernelConfig or None, got {type(config).__name__}")
    return config


class SelectiveScanFn(torch.autograd.Function):
    """Autograd wrapper: forward kernel, and the backward kernel for every floating input.

    ``apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state, block_t,
    block_d, config)``, the arguments of :func:`selective_scan_triton` in order."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                return_last_state=False, block_t=None, block_d=None, config=None):
        config = _check_config(config)
        batch, dim, L, N, groups = selective_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
        if u.dtype == torch.float64:
            raise ValueError("u must be float32, float16 or bfloat16 for the Triton kernels, got "
                             "torch.float64")
        check_device(u)
        check_capability(u)
        B4, C4 = _as_4d(B), _as_4d(C)
        bn = max(next_pow2(N), 2)
        needs_grad = any(ctx.needs_input_grad)
        forward, backward = config.forward, config.backward
        if forward == "auto":
            forward = choose_forward(batch, dim, bn, L, inference=not needs_grad)
        if backward == "auto":
            backward = choose_backward(batch, dim, bn, L)
        if backward == "loop" and bn > LOOP_MAX_N:
            raise ValueError(
                f"the loop backward holds at most {LOOP_MAX_N} states per channel, got N = {N}")
        # The chunk length (checkpoint spacing) follows the loop backward when a gradient can be
        # asked for, else the loop forward: both were measured at LOOP_BWD_T steps (an inference
        # forward need not take the chunked backward's longer chunk).
        loop_chunks = backward == "loop" if needs_grad else forward == "loop"
        if loop_chunks and block_t is None:
            block_t = min(config.bwd_loop_t or LOOP_BWD_T, max(next_pow2(L), 2))
        blocks = choose_blocks(dim, L, N, B4.shape[1], block_t, block_d, batch, u.dtype, z is not None)
        if backward == "loop" and needs_grad and config.bwd_segments is None:
            # Segments of the loop backward: the rule's count for the tiles this call uses (its
            # groups, chunk and block, which choose_backward, deciding the kernel from the shape
            # alone, takes at their defaults), kept in the config the backward reads.
            bwd_block_d = choose_loop_backward(dim, B4.shape[1], bn, config.bwd_loop_block_d)[0]
            segments = choose_bwd_segments(batch, dim, bwd_block_d, cdiv(L, blocks[1]))
            if segments > 1:
                config = dataclasses.replace(config, bwd_segments=segments)
        u, delta, A = u.contiguous(), delta.contiguous(), A.contiguous()
        z = z.contiguous() if z is not None else None
        D = D.contiguous() if D is not None else None
        delta_bias = delta_bias.contiguous() if delta_bias is not None else None
        # Checkpoints only when a gradient can be asked for (an inference forward skips them)
        out, ckpt, bc = _forward(forward, u, delta, A, B4, C4, D, z, delta_bias, delta_softplus,
                                 blocks, config, checkpoints=needs_grad)
        if backward != "loop":
            bc = None  # only the loop backward reads packed rows
        ctx.save_for_backward(u, delta, A, B4, C4, D, z, delta_bias, ckpt, bc)
        ctx.shared_bc = B.dim() == 3
        ctx.delta_softplus = bool(delta_softplus)
        ctx.blocks = blocks
        ctx.backward = backward
        ctx.config = config
        if return_last_state:
            last = ckpt[:, :, -1, :]
            ctx.mark_non_differentiable(last)
            return out, last
        return out

    @staticmethod
    def backward(ctx, gout, *unused):
        u, delta, A, B4, C4, D, z, delta_bias, ckpt, bc = ctx.saved_tensors
        batch, dim, L = u.shape
        N = B4.shape[2]
        gout = gout.contiguous()
        gu, gdelta = torch.empty_like(u), torch.empty_like(delta)
        gz = torch.empty_like(z) if z is not None else None
        # The partial sums of the per-channel parameters' gradients share one float32 buffer, a
        # row per batch element (and per segment of a segmented loop backward): A's (dim, N),
        # then D's and the bias's (dim,) each, so that one reduction sums all three (none for a
        # single row). The kernels step from row to row by its stride.
        rows = batch
        if ctx.backward == "loop":
            rows *= backward_segments(ckpt.shape[2], ctx.config)[0]
        parts = torch.empty(rows, dim * (N + 2), device=u.device, dtype=torch.float32)
        gA = parts[:, : dim * N].view(rows, dim, N)
        gD = parts[:, dim * N : dim * (N + 1)] if D is not None else None
        gbias = parts[:, dim * (N + 1) :] if delta_bias is not None else None
        grads = (gu, gdelta, gz, gA, gD, gbias)
        inputs = (u, delta, A, B4, C4, D, z, delta_bias, ckpt, gout, grads, ctx.delta_softplus,
                  ctx.blocks)
        if ctx.backward == "loop":
            gBC = recurrent_backward(*inputs, ctx.config, bc=bc)
        else:
            gBC = chunk_backward(*inputs, num_warps=ctx.config.bwd_warps)
        total = parts[0] if rows == 1 else parts.sum(0)
        gA = total[: dim * N].view(dim, N).to(A.dtype)
        gD = total[dim * N : dim * (N + 1)].to(D.dtype) if D is not None else None
        gbias = total[dim * (N + 1) :].to(delta_bias.dtype) if delta_bias is not None else None
        if B4.dtype == C4.dtype:
            gBC = gBC.to(B4.dtype)  # both in one cast
        gB, gC = gBC[0].to(B4.dtype), gBC[1].to(C4.dtype)
        if ctx.shared_bc:
            gB, gC = gB.squeeze(1), gC.squeeze(1)
        return gu, gdelta, gA, gB, gC, gD, gz, gbias, None, None, None, None, None


def selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          return_last_state=False, block_t=None, block_d=None, config=None):
    """Functional entry point of the Triton selective scan (arguments as ``ssmbook.selective``).

    ``block_t`` (chunk length) and ``block_d`` (channels per program) override the tile sizes
    chosen by :func:`choose_blocks`; tests use them to force several chunks on short sequences.
    ``config``: a :class:`KernelConfig` choosing kernels and launch parameters (None: the defaults,
    ``KernelConfig()``).
    """
    return SelectiveScanFn.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                 return_last_state, block_t, block_d, config)
