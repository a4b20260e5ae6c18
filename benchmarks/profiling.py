"""Profiling and inspection of the Triton selective-scan kernels on a GPU: a run for ncu, and the compiled code.

    # one forward and one forward+backward after a warm-up, for a profiler to watch:
    ncu --clock-control none -k regex:kernel --launch-skip 4 python3 benchmarks/profiling.py run 8 2048 4096 16 float32
    # registers, spills, layouts and the PTX instruction mix of every compiled kernel (one .ttgir each):
    python3 benchmarks/profiling.py inspect OUTDIR 8 2048 4096 16 float32

(The file is not named profile.py: that name would shadow the standard library's ``profile`` module,
which ``cProfile`` imports, whenever this folder is on ``sys.path``.)
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import pathlib
import sys

import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common

KERNEL_NAMES = ("recurrent_fwd_kernel", "recurrent_bwd_kernel", "chunk_fwd_kernel", "chunk_bwd_kernel")


def compiled(fn):
    """Every CompiledKernel in a @triton.jit function's cache (the cache's layout varies by version)."""
    out = []
    for entry in getattr(fn, "device_caches", {}).values():
        cache = entry[0] if isinstance(entry, tuple) else entry
        out.extend(cache.values())
    return out


def ptx_mix(ptx):
    """Counts of the PTX instructions that tell where time goes: shuffles, shared memory, barriers,
    global loads and stores, and ex2 (the exponentials)."""
    ops = collections.Counter()
    for line in ptx.splitlines():
        line = line.strip()
        if not line or line.startswith(("//", ".", "$", "{", "}")):
            continue
        if line.startswith("@"):
            line = line.split(None, 1)[-1]
        ops[line.split()[0].rstrip(";")] += 1
    keys = ("shfl", "ld.shared", "st.shared", "bar.sync", "ld.global", "st.global", "ex2")
    return dict(total=sum(ops.values()), **{k: sum(v for op, v in ops.items() if op.startswith(k)) for k in keys})


def forward_backward(shape, dtype, config):
    """A forward and a forward+backward of ``selective_scan_triton`` on fresh inputs."""
    from ssmbook.kernels.selective_scan import selective_scan_triton

    kw = common.make_inputs(*shape, dtype, False, "cuda", seed=0)
    selective_scan_triton(**kw, config=config)
    leaves = common.leaves_of(kw)
    out = selective_scan_triton(**{**kw, **leaves}, config=config)
    out.backward(torch.randn_like(out))
    torch.cuda.synchronize()


def inspect(outdir, shape, dtype, config):
    """Write one .ttgir per compiled kernel and a compiled.json summary into ``outdir``."""
    from ssmbook.kernels import selective_scan as ks

    forward_backward(shape, dtype, config)
    outdir.mkdir(parents=True, exist_ok=True)
    report = []
    for kname in KERNEL_NAMES:
        for i, k in enumerate(compiled(getattr(ks, kname))):
            name = f"{kname}_{i}"
            ttgir = k.asm.get("ttgir", "")
            (outdir / f"{name}.ttgir").write_text(ttgir)
            layouts = [ln for ln in ttgir.splitlines() if ln.startswith(("#blocked", "#linear", "#shared"))]
            report.append(dict(kernel=name, n_regs=getattr(k, "n_regs", None),
                               n_spills=getattr(k, "n_spills", None), layouts=layouts,
                               convert_layout=ttgir.count("convert_layout"), **ptx_mix(k.asm.get("ptx", ""))))
            print(json.dumps(report[-1]), flush=True)
    (outdir / "compiled.json").write_text(json.dumps(report, indent=1))
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    for name in ("run", "inspect"):
        p = sub.add_parser(name)
        if name == "inspect":
            p.add_argument("outdir", type=pathlib.Path)
        p.add_argument("shape", type=int, nargs=4, metavar="B D L N")
        p.add_argument("dtype", nargs="?", default="float32")
        p.add_argument("--config", default="{}", help='KernelConfig overrides as JSON, e.g. \'{"forward": "loop"}\'')
    args = ap.parse_args(argv)
    common.ensure_importable()
    from ssmbook.kernels.selective_scan import KernelConfig

    config = dataclasses.replace(KernelConfig(), **json.loads(args.config))
    dtype = common.dtype_of(args.dtype)
    if args.what == "run":
        for _ in range(2):  # the first pass compiles; tell the profiler to skip it (--launch-skip)
            forward_backward(tuple(args.shape), dtype, config)
    else:
        inspect(args.outdir, tuple(args.shape), dtype, config)


if __name__ == "__main__":
    main()
