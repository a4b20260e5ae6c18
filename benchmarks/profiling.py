"""Profiling and inspection of the Triton selective-scan kernels on a GPU: a run for ncu, and the compiled code.

    # one forward and one forward+backward after a warm-up, for a profiler to watch:
    ncu --clock-control none -k regex:kernel --launch-skip 4 python3 benchmarks/profiling.py run 8 2048 4096 16 float32
    # registers, spills, layouts and the PTX instruction mix of every compiled kernel (one .ttgir each):
    python3 benchmarks/profiling.py inspect OUTDIR 8 2048 4096 16 float32
    # where a call's time goes: do_bench, graph replay (no launch gaps), host time per call, and the
    # device time of each kernel launched (torch.profiler), for one forward or forward+backward:
    python3 benchmarks/profiling.py breakdown 32 768 256 16 float32 --pass fwd [--z] [--config JSON]

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
import time

import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common

KERNEL_NAMES = ("recurrent_fwd_kernel", "recurrent_bwd_kernel", "recurrent_bwd_summary_kernel",
                "chunk_fwd_kernel", "chunk_bwd_kernel")


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


def breakdown(shape, dtype, config, pass_, with_z, reps=20):
    """Where the time of one call goes. Returns a dict: ``do_bench_ms`` (the grid's timer, which
    clears the L2 before each run), ``graph_ms`` (the same call captured in a CUDA graph and
    replayed, L2 also cleared: no host in the way), ``host_ms`` (host time per call, calls issued
    back to back without waiting for the GPU) and ``kernels``: device ms per call of each kernel
    name (torch.profiler over ``reps`` calls)."""
    from torch.profiler import ProfilerActivity, profile

    from ssmbook.kernels.selective_scan import selective_scan_triton

    kw = common.make_inputs(*shape, dtype, with_z, "cuda", seed=0)
    if pass_ == "fwd":
        def fn():
            return selective_scan_triton(**kw, config=config)
    else:
        leaves = common.leaves_of(kw)
        kw2, lv = {**kw, **leaves}, list(leaves.values())
        dout = torch.randn_like(kw["u"])

        def fn():
            return torch.autograd.grad(selective_scan_triton(**kw2, config=config), lv, dout)
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    result = dict(shape=list(shape), dtype=str(dtype).replace("torch.", ""), z=with_z, pass_=pass_)
    result["do_bench_ms"] = common.bench_ms(fn, "cuda")
    # host time: the GPU falls behind after a few calls, so this is the launch rate of the host
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    result["host_ms"] = (time.perf_counter() - t0) * 1e3 / reps
    torch.cuda.synchronize()
    try:
        result["graph_ms"] = common.bench_ms(common.cuda_graphed(fn), "cuda")
    except Exception as ex:  # capture can fail (e.g. autograd with graph-unsafe ops)
        result["graph_ms"] = None
        result["graph_error"] = f"{type(ex).__name__}: {ex}"[:200]
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    kernels = collections.Counter()
    for ev in prof.key_averages():
        t = getattr(ev, "device_time_total", None)
        if t is None:
            t = getattr(ev, "cuda_time_total", 0)
        if t:
            kernels[ev.key[:80]] += t / 1e3 / reps
    result["kernels"] = dict(kernels.most_common(12))
    print(json.dumps(result), flush=True)
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    for name in ("run", "inspect", "breakdown"):
        p = sub.add_parser(name)
        if name == "breakdown":
            p.add_argument("--pass", dest="pass_", choices=("fwd", "fwd+bwd"), default="fwd")
            p.add_argument("--z", action="store_true", help="with the gate z")
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
    if args.what == "breakdown":
        breakdown(tuple(args.shape), dtype, config, args.pass_, args.z)
    elif args.what == "run":
        for _ in range(2):  # the first pass compiles; tell the profiler to skip it (--launch-skip)
            forward_backward(tuple(args.shape), dtype, config)
    else:
        inspect(args.outdir, tuple(args.shape), dtype, config)


if __name__ == "__main__":
    main()
