"""Compile the kernels offline for a GPU that is not there: every variant the host code launches.

The host code (``SelectiveScanFn`` and the choosers it calls) decides which kernel runs with which
constexpr flags, tile sizes and ``num_warps``. This module runs that host code with the kernels
replaced by recorders, so nothing executes: each launch is kept as (kernel, arguments, options).
Each recorded launch is then turned into a Triton ``ASTSource`` by Triton's own binder (the same
specialisation a real launch would get: pointer dtypes, 16-byte alignment, integers equal to 1)
and compiled with ``triton.compile(..., target=GPUTarget("cuda", capability, 32))`` down to PTX and,
with the ``ptxas`` that Triton ships, to a cubin, whose register and spill counts ptxas reports.

Needs the compiling Triton, not its interpreter: run it in a process where ``TRITON_INTERPRET`` is
0 (``python -m ssmbook.kernels.targets`` starts itself so and prints a table).
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import tempfile

#: (name, shape (batch, dim, L, N, groups), dtype name, options (D, z, delta_bias, softplus),
#: needs a gradient[, KernelConfig fields that the rules would not pick there: the loop forward
#: at odd N with few channels, the segmented loop backward]). Shapes chosen so that the choosers
#: take each of their branches: the chunked forward and backward at chapter sizes (N = 16, few
#: channels, tuned tiles); the loop
#: kernels with many channels (N = 16, unsegmented; 16-bit tiles); the segmented loop forward
#: (4096 channels); N = 64 (packed B/C, n64 tiles); N = 256 (chunked only); odd N and groups
#: (in the chunked and in the loop kernels);
#: inference (no checkpoints); every option off.
CASES = [
    ("chapter N=16", (1, 8, 64, 16, 0), "float32", (True, True, True, True), True),
    ("chapter N=16 bf16", (1, 8, 64, 16, 0), "bfloat16", (True, True, True, True), True),
    ("chapter N=16 fp16", (1, 8, 64, 16, 0), "float16", (True, True, True, True), True),
    ("many channels N=16", (8, 2048, 256, 16, 0), "float32", (True, True, True, True), True),
    ("many channels N=16 bf16", (8, 2048, 256, 16, 0), "bfloat16", (True, True, True, True), True),
    ("4096 channels, segments", (2, 2048, 1024, 16, 0), "float32", (True, True, True, True), True),
    ("N=64", (2, 64, 256, 64, 0), "float32", (True, True, True, True), True),
    ("N=64 bf16", (2, 64, 256, 64, 0), "bfloat16", (True, True, True, True), True),
    ("N=256", (1, 8, 64, 256, 0), "float32", (True, True, True, True), True),
    ("odd N, groups", (2, 12, 37, 5, 3), "float32", (False, True, False, True), True),
    ("odd N, groups, loop", (2, 12, 37, 5, 3), "float32", (False, True, False, True), True,
     {"forward": "loop"}),
    ("N=40, groups", (1, 16, 100, 40, 2), "float32", (True, False, True, True), True),
    ("inference", (1, 8, 64, 16, 0), "float32", (True, True, True, True), False),
    ("inference, many channels", (8, 2048, 256, 16, 0), "bfloat16", (True, True, True, True), False),
    ("options off", (1, 8, 64, 16, 0), "float32", (False, False, False, False), True),
    ("segmented loop backward", (2, 2048, 1024, 16, 0), "float32", (True, True, True, True), True,
     {"backward": "loop", "bwd_segments": 4}),
    ("segmented loop backward bf16, N=64", (1, 64, 256, 64, 0), "bfloat16",
     (True, True, True, True), True, {"backward": "loop", "bwd_segments": 4}),
]

TARGETS = [("cuda", 75, 32), ("cuda", 80, 32), ("cuda", 90, 32)]

#: The kernels, by the module of ``ssmbook.kernels.selective_scan`` whose launchers call them.
KERNELS = {"chunk": ("chunk_fwd_kernel", "chunk_bwd_kernel"),
           "fused_recurrent": ("recurrent_fwd_kernel", "recurrent_bwd_kernel",
                               "recurrent_bwd_summary_kernel")}
KERNEL_NAMES = tuple(name for names in KERNELS.values() for name in names)


class _Recorder:
    """Stands in for a @triton.jit kernel: ``kernel[grid](*args, **meta)`` only records."""

    def __init__(self, name, jit_fn, log):
        self.name, self.jit_fn, self.log = name, jit_fn, log

    def __getitem__(self, grid):
        def launch(*args, **meta):
            self.log.append((self.name, self.jit_fn, args, meta))
        return launch


@contextlib.contextmanager
def _recording(log):
    import importlib

    from .selective_scan import interface

    modules = {m: importlib.import_module(f"{__package__}.selective_scan.{m}") for m in KERNELS}
    saved = [(mod, name, getattr(mod, name)) for m, mod in modules.items() for name in KERNELS[m]]
    saved_check = interface.check_device
    try:
        for mod, name, fn in saved:
            setattr(mod, name, _Recorder(name, fn, log))
        interface.check_device = lambda u: None   # CPU tensors stand in for CUDA ones: nothing runs
        yield
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
        interface.check_device = saved_check


def _inputs(batch, dim, L, N, groups, D, z, delta_bias, delta_softplus, dtype):
    """Arguments of ``selective_scan_triton`` with the shapes and dtypes of a case (their values do
    not matter: nothing runs). A, D and delta_bias stay float32 with 16-bit activations."""
    import torch

    act = dict(dtype=dtype)
    par = dict(dtype=torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype)
    bc = (batch, N, L) if groups == 0 else (batch, groups, N, L)
    return dict(u=torch.randn(batch, dim, L, **act), delta=torch.rand(batch, dim, L, **act),
                A=-torch.rand(dim, N, **par), B=torch.randn(*bc, **act), C=torch.randn(*bc, **act),
                D=torch.randn(dim, **par) if D else None,
                z=torch.randn(batch, dim, L, **act) if z else None,
                delta_bias=torch.rand(dim, **par) if delta_bias else None,
                delta_softplus=delta_softplus)


def record_launches(cases=CASES, config=None):
    """Run the host code of each case with recording kernels (``config``: a KernelConfig, None for
    the defaults); return the distinct launches as a list of dicts (kernel, jit function, args,
    meta, cases that launch it). Two launches are the same variant when their constexprs, options
    and argument dtypes agree."""
    import dataclasses

    import torch

    from .selective_scan import KernelConfig, selective_scan_triton

    variants = {}
    for name, (batch, dim, L, N, groups), dtype, (D, z, bias, softplus), grad, *fields in cases:
        case_config = config
        if fields:
            case_config = dataclasses.replace(config or KernelConfig(), **fields[0])
        log = []
        kw = _inputs(batch, dim, L, N, groups, D, z, bias, softplus, getattr(torch, dtype))
        if grad:
            for key in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias"):
                if kw[key] is not None:
                    kw[key].requires_grad_(True)
        with _recording(log):
            out = selective_scan_triton(**kw, config=case_config)
            if grad:
                out.backward(torch.ones_like(out))
        for kname, fn, args, meta in log:
            key = (kname, _variant_key(fn, args, meta))
            entry = variants.setdefault(key, dict(kernel=kname, fn=fn, args=args, meta=meta, cases=[]))
            entry["cases"].append(name)
    return list(variants.values())


def _variant_key(fn, args, meta):
    import torch

    sig = []
    for p, a in zip(fn.arg_names, args):
        if isinstance(a, torch.Tensor):
            sig.append((p, str(a.dtype)))
        elif a == 1 and p not in getattr(fn, "do_not_specialize", ()):
            sig.append((p, 1))
    return (tuple(sig), tuple(sorted(meta.items())))


def describe(variant):
    """A short text of a variant's compile-time choices."""
    meta = variant["meta"]
    flags = "".join(k[4] if k.startswith("HAS_") else "" for k, v in meta.items() if v is True)
    dt = next((str(a.dtype).replace("torch.", "") for a in variant["args"]
               if hasattr(a, "dtype")), "?")
    keys = ("BLOCK_D", "BLOCK_T", "BLOCK_N", "UNROLL", "num_warps")
    tiles = " ".join(f"{k.split('_')[-1][0] if k != 'num_warps' else 'w'}{meta[k]}"
                     for k in keys if k in meta)
    extra = [k for k in ("SOFTPLUS", "CHECKPOINTS", "PACKED", "EVEN_N", "SEGMENTED", "SUMMARY")
             if meta.get(k)]
    ev = "hints" if meta.get("EV_ROWS") else ""
    return " ".join(x for x in (dt, tiles, flags, ",".join(extra), ev) if x)


def _ptxas_report(ptx, arch):
    """Registers, spill stores/loads (bytes) of a PTX module, from ``ptxas -v`` of Triton's ptxas."""
    from triton.backends.nvidia.compiler import get_ptxas

    try:
        ptxas = get_ptxas(arch).path if _takes_arch(get_ptxas) else get_ptxas().path
    except Exception:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "k.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        res = subprocess.run([ptxas, "-v", f"--gpu-name=sm_{arch}", src, "-o", src + ".o"],
                             capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(res.stderr)
    return _parse_ptxas(res.stderr)


def _parse_ptxas(log):
    """Registers and spill bytes from a ``ptxas -v`` log; None when the log has none."""
    if "registers" not in log:
        return None
    regs = [int(x) for x in re.findall(r"Used (\d+) registers", log)]
    stores = [int(x) for x in re.findall(r"(\d+) bytes spill stores", log)]
    loads = [int(x) for x in re.findall(r"(\d+) bytes spill loads", log)]
    return dict(registers=max(regs, default=0), spill_stores=max(stores, default=0),
                spill_loads=max(loads, default=0))


def _takes_arch(fn):
    import inspect

    return len(inspect.signature(fn).parameters) > 0


def compile_variant(variant, target, cubin=True):
    """Compile one recorded launch for ``target`` = (backend, capability, warp size). Returns a
    dict: ptx (text), has_cubin, registers, spill_stores, spill_loads (None without ptxas)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature

    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise RuntimeError("compile_variant needs the compiling Triton: unset TRITON_INTERPRET")
    tgt = GPUTarget(*target)
    backend = make_backend(tgt)
    fn, args, meta = variant["fn"], variant["args"], dict(variant["meta"])
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound, spec, options = binder(*args, **meta)
    options, signature, constexprs, attrs = fn._pack_args(backend, meta, bound, spec, options)
    src = ASTSource(fn, signature, constexprs, attrs)
    # Triton runs ptxas with -v and prints its log when asked to (TRITON_DUMP_PTXAS_LOG): read the
    # registers and spills from there rather than running ptxas a second time
    saved = os.environ.get("TRITON_DUMP_PTXAS_LOG")
    os.environ["TRITON_DUMP_PTXAS_LOG"] = "1"
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            compiled = triton.compile(src, target=tgt, options=options.__dict__)
    finally:
        if saved is None:
            os.environ.pop("TRITON_DUMP_PTXAS_LOG")
        else:
            os.environ["TRITON_DUMP_PTXAS_LOG"] = saved
    ptx = compiled.asm["ptx"]
    out = dict(ptx=ptx, has_cubin=bool(compiled.asm.get("cubin")))
    report = _parse_ptxas(log.getvalue())
    if report is None and cubin and out["has_cubin"]:
        report = _ptxas_report(ptx, target[1])  # a Triton without the log knob, or a cached cubin
    out.update(report or dict(registers=None, spill_stores=None, spill_loads=None))
    return out


def main(argv=None):
    """Compile every recorded variant for every target; print one line per (target, variant)
    and a JSON summary last. ``--targets 75,80`` picks capabilities; ``--shard k/n`` compiles
    only every n-th (target, variant) pair from the k-th on, so that n processes share the work."""
    import argparse
    import json
    import time

    p = argparse.ArgumentParser()
    p.add_argument("--targets", default=",".join(str(t[1]) for t in TARGETS))
    p.add_argument("--shard", default="0/1")
    p.add_argument("--json", default=None, help="write the table here")
    args = p.parse_args(argv)
    import triton

    k, n = (int(x) for x in args.shard.split("/"))
    variants = record_launches()
    jobs = [(cap, v) for cap in (int(c) for c in args.targets.split(",")) for v in variants]
    rows = []
    for cap, v in jobs[k::n]:
        t0 = time.perf_counter()
        res = compile_variant(v, ("cuda", cap, 32))
        row = dict(target=f"sm_{cap}", kernel=v["kernel"], variant=describe(v),
                   meta={key: val for key, val in v["meta"].items()}, cases=v["cases"],
                   ptx=f".target sm_{cap}" in res["ptx"], cubin=res["has_cubin"],
                   registers=res["registers"], spill_stores=res["spill_stores"],
                   spill_loads=res["spill_loads"], seconds=round(time.perf_counter() - t0, 2),
                   createpolicy="createpolicy" in res["ptx"],
                   bf16_math=bool(re.search(r"\b(fma|mul|add|sub)\.rn(\.ftz)?\.bf16", res["ptx"])))
        rows.append(row)
        print(f"{row['target']} {row['kernel']:34} regs {row['registers']!s:>4} spills "
              f"{row['spill_stores']!s:>4}/{row['spill_loads']!s:<4} ptx {row['ptx']} cubin "
              f"{row['cubin']} {row['seconds']:6.2f}s  {row['variant']}", flush=True)
    summary = dict(triton=triton.__version__, variants=len(variants), shard=args.shard, rows=rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    print(json.dumps(dict(triton=triton.__version__, variants=len(variants), compiled=len(rows),
                          all_ptx=all(r["ptx"] for r in rows),
                          all_cubin=all(r["cubin"] for r in rows))))
    return summary


if __name__ == "__main__":
    import sys

    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        # importing ssmbook.kernels switched the interpreter on (no CUDA here): start again
        # with the compiler
        env = {**os.environ, "TRITON_INTERPRET": "0"}
        sys.exit(subprocess.run([sys.executable, "-m", "ssmbook.kernels.targets", *sys.argv[1:]],
                                env=env).returncode)
    main()
