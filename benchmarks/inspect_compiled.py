"""What the loop kernels compile to on this machine's GPU and Triton: registers, spills, the
register layouts Triton chose, and the PTX instruction mix (shuffles, shared-memory round trips,
loads), for a few configurations of an issue-10 shape. Run on the GPU machine:
``python3 benchmarks/inspect_compiled.py OUTDIR`` (writes one .ttgir per compiled kernel there).
"""
import collections
import json
import pathlib
import sys

import torch

from ssmbook import kernels
from ssmbook.kernels import selective_scan_triton
from ssmbook.selective import random_inputs

KS = kernels.selective_scan


def compiled(fn):
    """Every CompiledKernel in a @triton.jit function's cache (layout of the cache varies by version)."""
    out = []
    for entry in getattr(fn, "device_caches", {}).values():
        cache = entry[0] if isinstance(entry, tuple) else entry
        out.extend(cache.values())
    return out


def ptx_mix(ptx):
    ops = collections.Counter()
    for line in ptx.splitlines():
        line = line.strip()
        if not line or line.startswith(("//", ".", "$", "{", "}")):
            continue
        if line.startswith("@"):
            line = line.split(None, 1)[-1]
        ops[line.split()[0].rstrip(";")] += 1
    keys = ("shfl", "ld.shared", "st.shared", "bar.sync", "ld.global", "st.global", "ex2")
    return dict(total=sum(ops.values()),
                **{k: sum(v for op, v in ops.items() if op.startswith(k)) for k in keys})


if __name__ == "__main__":
    outdir = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    shape = tuple(int(x) for x in (sys.argv[2:6] or (8, 2048, 4096, 16)))
    kw = random_inputs(*shape, D=True, delta_bias=True, delta_softplus=True, device="cuda", seed=0)
    for name in ("u", "delta"):
        kw[name].requires_grad_(True)
    out = selective_scan_triton(**kw)       # library defaults: loop forward and loop backward
    out.backward(torch.randn_like(out))
    torch.cuda.synchronize()
    report = []
    for fn in (KS._selective_scan_fwd_loop_kernel, KS._selective_scan_bwd_loop_kernel):
        for i, k in enumerate(compiled(fn)):
            name = f"{fn.fn.__name__}_{i}"
            ttgir = k.asm.get("ttgir", "")
            (outdir / f"{name}.ttgir").write_text(ttgir)
            layouts = [ln for ln in ttgir.splitlines() if ln.startswith(("#blocked", "#linear", "#shared"))]
            report.append(dict(kernel=name, n_regs=getattr(k, "n_regs", None),
                               n_spills=getattr(k, "n_spills", None), layouts=layouts,
                               convert_layout=ttgir.count("convert_layout"), **ptx_mix(k.asm.get("ptx", ""))))
            print(json.dumps(report[-1]), flush=True)
    (outdir / "compiled.json").write_text(json.dumps(report, indent=1))
