"""A first Triton kernel: the first-order recurrence h_t = a_t h_{t-1} + b_t by a parallel scan.

One program per row, the whole row in one block: the smallest complete example of the pattern
that the selective-scan kernels build on (program id → offsets → masked loads →
``tl.associative_scan`` with the pair operator → masked store).  Import it as
``ssmbook.kernels.toy_scan`` (the package switches on the interpreter on a CPU-only machine).
"""
import torch
import triton
import triton.language as tl

from .selective_scan.common import check_device


@triton.jit
def first_order(a_left, b_left, a_right, b_right):
    # (a_l, b_l) then (a_r, b_r): h ↦ a_r (a_l h + b_l) + b_r
    return a_right * a_left, a_right * b_left + b_right


@triton.jit
def toy_scan_kernel(a_ptr, b_ptr, h_ptr, L, BLOCK_L: tl.constexpr):
    row = tl.program_id(0)                        # this program owns one row of (rows, L)
    offs = row * L + tl.arange(0, BLOCK_L)
    mask = tl.arange(0, BLOCK_L) < L              # BLOCK_L is a power of two ≥ L
    a = tl.load(a_ptr + offs, mask=mask, other=1.0)   # padding (a, b) = (1, 0): the identity
    b = tl.load(b_ptr + offs, mask=mask, other=0.0)
    _, h = tl.associative_scan((a, b), 0, first_order)
    tl.store(h_ptr + offs, h, mask=mask)


def toy_scan(a, b):
    """h[r, t] = a[r, t] h[r, t-1] + b[r, t] (h[r, -1] = 0) for float32 tensors a, b (rows, L)."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        raise TypeError("a and b must be torch tensors")
    if a.dim() != 2 or a.shape != b.shape or a.shape[1] < 1:
        raise ValueError(f"a and b must have one shape (rows, L) with L ≥ 1, got {tuple(a.shape)}, {tuple(b.shape)}")
    if a.dtype != torch.float32 or b.dtype != torch.float32 or a.device != b.device:
        raise ValueError(f"a and b must be float32 on one device, got {a.dtype}, {b.dtype}")
    check_device(a, name="a")
    a, b = a.contiguous(), b.contiguous()
    rows, L = a.shape
    h = torch.empty_like(a)
    toy_scan_kernel[(rows,)](a, b, h, L, BLOCK_L=triton.next_power_of_2(L))   # grid: one per row
    return h
