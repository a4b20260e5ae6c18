"""Quick sanity timing of the Triton selective scan against the torch path (kernel engineer's check).

Run on a CUDA machine: ``python benchmarks/kernel_timing.py [--out results.json]``.
Medians from triton.testing.do_bench; inputs from ssmbook.selective.random_inputs (never zeros).
Byte floor: u, delta, B, C read once and the output written once (no z, D fused), over the
bandwidth measured here with a device-to-device copy.
"""
import argparse
import json

import torch
import triton

from ssmbook.kernels import selective_scan_triton
from ssmbook.selective import random_inputs, selective_scan


def copy_bandwidth():
    x = torch.empty(1 << 28, dtype=torch.float32, device="cuda")  # 1 GiB
    y = torch.empty_like(x)
    ms = triton.testing.do_bench(lambda: y.copy_(x), return_mode="median")
    return 2 * x.numel() * 4 / (ms * 1e-3)


def bench(shape, dtype, with_torch=True):
    batch, dim, L, N = shape
    kw = random_inputs(batch, dim, L, N, z=False, dtype=dtype, device="cuda", seed=0)
    row = dict(shape=list(shape), dtype=str(dtype).replace("torch.", ""))
    fwd = lambda: selective_scan_triton(**kw)  # noqa: E731
    row["triton_fwd_ms"] = triton.testing.do_bench(fwd, return_mode="median")
    leaves = [kw[k].requires_grad_(True) for k in ("u", "delta", "A", "B", "C", "D", "delta_bias")]
    out = selective_scan_triton(**kw)
    g = torch.randn_like(out)

    def fwd_bwd():
        o = selective_scan_triton(**kw)
        torch.autograd.grad(o, leaves, g)

    row["triton_fwd_bwd_ms"] = triton.testing.do_bench(fwd_bwd, return_mode="median")
    if with_torch:
        try:
            with torch.no_grad():
                row["torch_fwd_ms"] = triton.testing.do_bench(
                    lambda: selective_scan(**kw, backend="torch"), return_mode="median", rep=200)
        except torch.OutOfMemoryError:
            row["torch_fwd_ms"] = "out of memory"
        torch.cuda.empty_cache()
    elem = torch.finfo(dtype).bits // 8
    row["bytes"] = (3 * batch * dim * L + 2 * batch * N * L) * elem
    return row


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--out")
    args = p.parse_args()
    bw = copy_bandwidth()
    rows = []
    for shape in [(8, 2048, 4096, 16)]:
        for dtype in (torch.float32, torch.bfloat16):
            r = bench(shape, dtype)
            r["hbm_floor_ms"] = r["bytes"] / bw * 1e3
            rows.append(r)
            print(r, flush=True)
    res = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__,
               copy_bandwidth_GBps=bw / 1e9, rows=rows)
    print(json.dumps(res, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
