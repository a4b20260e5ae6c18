"""Time the chunked backward kernel against an earlier version of kernels/selective_scan.py.

Run on a CUDA machine from the repository root::

    python benchmarks/chunked_backward_timing.py --old PATH/TO/old_selective_scan.py --out r.json

The old file is loaded as a sibling module of ``ssmbook.kernels.selective_scan`` (its relative
imports resolve the same way), and both versions run the chunked backward (CONFIG["backward"] =
"chunked") on the same inputs. Timed: the backward alone, ``torch.autograd.grad`` of a kept
forward graph (the kernel plus the host's few small reductions), median of
``triton.testing.do_bench``; each version timed twice, interleaved, to show the spread. Before
timing, both versions' gradients are compared per entry with the float64 torch path on CUDA.
"""
import argparse
import importlib.util
import json
import sys

import torch
import triton

from ssmbook import kernels
from ssmbook.selective import random_inputs, selective_scan

GRADS = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
SHAPES = [(1, 8, 64, 16), (2, 64, 1024, 16), (4, 256, 2048, 16), (2, 2048, 4096, 16),
          (1, 64, 1024, 256)]


def load_old(path):
    name = "ssmbook.kernels._selective_scan_old"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "ssmbook.kernels"
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def per_entry(g, ref, floor=1e-6):
    g, ref = g.double(), ref.double()
    return ((g - ref).abs() / (ref.abs() + floor * ref.abs().max())).max().item()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--old", required=True)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    old = load_old(args.old)
    versions = {"old": old, "new": kernels.selective_scan}
    for mod in versions.values():
        mod.CONFIG["backward"] = "chunked"
    rows = []
    for shape in SHAPES:
        for dtype in (torch.float32, torch.bfloat16):
            kw = random_inputs(*shape, dtype=dtype, device="cuda", seed=1)
            g = torch.Generator().manual_seed(2)
            # the regime of the cancellation: δ ≈ softplus(3 + randn), A = −(1 … N)
            kw["delta"] = (3.0 + torch.randn(shape[:3], generator=g)).to(dtype).cuda()
            kw["A"] = -torch.arange(1, shape[3] + 1, dtype=torch.float32).repeat(shape[1], 1).cuda()
            gout = torch.randn(shape[:3], generator=g).to(dtype).cuda()
            kw64 = {k: (v.detach().double().requires_grad_(True) if isinstance(v, torch.Tensor)
                        else v) for k, v in kw.items()}
            out64 = selective_scan(**kw64, backend="torch")
            ref = torch.autograd.grad(out64, [kw64[n] for n in GRADS], gout.double())
            row = dict(shape=shape, dtype=str(dtype).replace("torch.", ""),
                       blocks=kernels.choose_blocks(shape[1], shape[2], shape[3], 1,
                                                    batch=shape[0], dtype=dtype))
            graphs = {}
            for vname, mod in versions.items():
                leaves = {n: kw[n].detach().clone().requires_grad_(True) for n in GRADS}
                out = mod.selective_scan_triton(**{**kw, **leaves})
                grads = torch.autograd.grad(out, list(leaves.values()), gout, retain_graph=True)
                row[f"{vname}_err_A"] = per_entry(grads[2], ref[2])
                row[f"{vname}_err_max_other"] = max(per_entry(a, b) for n, a, b in
                                                    zip(GRADS, grads, ref) if n != "A")
                graphs[vname] = (out, list(leaves.values()))
            for rep in range(2):
                for vname, (out, leaves) in graphs.items():
                    ms = triton.testing.do_bench(
                        lambda: torch.autograd.grad(out, leaves, gout, retain_graph=True),
                        warmup=25, rep=200, return_mode="median")
                    row.setdefault(f"{vname}_ms", []).append(ms)
            rows.append(row)
            print(f"{str(shape):22} {row['dtype']:8} blocks {row['blocks']} "
                  f"old {row['old_ms'][0]:.4f}/{row['old_ms'][1]:.4f} ms  "
                  f"new {row['new_ms'][0]:.4f}/{row['new_ms'][1]:.4f} ms  "
                  f"new/old {min(row['new_ms']) / min(row['old_ms']):.3f}  "
                  f"err_A old {row['old_err_A']:.2e} new {row['new_err_A']:.2e}  "
                  f"others old {row['old_err_max_other']:.2e} new {row['new_err_max_other']:.2e}",
                  flush=True)
            del graphs
    result = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__,
                  triton=triton.__version__, rows=rows,
                  note="backward alone (autograd.grad of a kept graph), do_bench median, two "
                       "interleaved runs per version; errors: max per-entry |g - r| / (|r| + 1e-6 "
                       "max|r|) against the float64 torch path")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
