"""One forward and one forward+backward of the Triton selective scan at an issue-10 shape, for a
profiler to watch (``ncu``): ``ncu --clock-control none -k regex:selective_scan ... python3
benchmarks/profile_kernels.py 8 2048 4096 16 float32``. Warms up (compiles) first, then runs once."""
import sys

import torch

from ssmbook.kernels import selective_scan_triton
from ssmbook.selective import random_inputs

if __name__ == "__main__":
    batch, dim, L, N = map(int, sys.argv[1:5])
    dtype = getattr(torch, sys.argv[5] if len(sys.argv) > 5 else "float32")
    kw = random_inputs(batch, dim, L, N, D=True, delta_bias=True, delta_softplus=True, dtype=dtype,
                       device="cuda", seed=0)
    for name in ("u", "delta", "A", "B", "C", "D", "delta_bias"):
        kw[name].requires_grad_(True)
    for _ in range(2):  # the first pass compiles; the profiler is told to skip it (--launch-skip)
        out = selective_scan_triton(**kw)
        out.backward(torch.randn_like(out))
    torch.cuda.synchronize()
