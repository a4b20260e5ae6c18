"""Timing of the Triton selective scan against the official CUDA kernel (kernel engineer's check).

Run on a CUDA machine from the repository root::

    python benchmarks/kernel_timing.py sweep  --out results.json   # round 1: variants, one shape
    python benchmarks/kernel_timing.py sweep2 --out results.json   # round 2: backward tiles, loop blocks
    python benchmarks/kernel_timing.py sweep3 --out results.json   # round 2: second sweep
    python benchmarks/kernel_timing.py final  --out results.json   # the issue's shapes

The official ``selective_scan_fn`` (mamba_ssm 2.3.2, built for sm_90 by ``benchmarks/official.py``) is
loaded from ``.device/`` when present and timed in the same run on the same inputs: ratios against it
are the targets of issue 10. Medians from ``triton.testing.do_bench``; inputs from
``official.random_problem`` (never zeros). Before timing, every variant's forward and gradients are
compared with the official kernel on the timed inputs (relative L2 error, printed).

Floors: HBM = (u, delta, [z], out at batch·dim·L + B, C at batch·N·L) bytes / copy bandwidth measured
here; exp = batch·dim·L·N exponentials / 4.18e12 per s (132 SMs × 16 ex2 per clock × 1.98 GHz).
"""
import argparse
import json
import pathlib
import sys

import torch
import triton

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import official  # noqa: E402

from ssmbook import kernels  # noqa: E402
from ssmbook.kernels import selective_scan_triton  # noqa: E402

CFG = kernels.selective_scan.CONFIG
GRADS = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]


def copy_bandwidth():
    x = torch.empty(1 << 28, dtype=torch.float32, device="cuda")  # 1 GiB
    y = torch.empty_like(x)
    ms = triton.testing.do_bench(lambda: y.copy_(x), return_mode="median")
    return 2 * x.numel() * 4 / (ms * 1e-3)


def load_official():
    parts = HERE.parent / ".device" / "so"
    src = HERE.parent / ".device" / "mamba_ssm-2.3.2.post1"
    if not parts.exists():
        return None
    so = official.join_parts(parts, pathlib.Path("/tmp/ssm_official/selective_scan_cuda.so"))
    return official.load_selective_scan_fn(so, src)


def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm())


def time_pair(fn, kw, rep_fwd=100, rep_bwd=200):
    """Median forward time and forward+backward time (gradients of every floating input)."""
    fwd = triton.testing.do_bench(lambda: fn(**kw), return_mode="median", rep=rep_fwd)
    both = time_fb(fn, kw, rep=rep_bwd)
    return fwd, both


def grads(fn, kw, g):
    leaves = {k: kw[k].detach().clone().requires_grad_(True) for k in GRADS if kw.get(k) is not None}
    out = fn(**{**kw, **leaves})
    gr = torch.autograd.grad(out, list(leaves.values()), g)
    return out, dict(zip(leaves, gr))


def compare(fn, ref_fn, kw):
    """Worst relative error of the forward and of every gradient, fn against ref_fn."""
    g = torch.randn_like(kw["u"])
    o1, g1 = grads(fn, kw, g)
    o2, g2 = grads(ref_fn, kw, g)
    errs = {"out": rel(o1, o2), **{k: rel(g1[k], g2[k]) for k in g1}}
    return max(errs.values()), errs


def floors(batch, dim, L, N, dtype, with_z, bw):
    el = torch.finfo(dtype).bits // 8
    byts = ((4 if with_z else 3) * batch * dim * L + 2 * batch * N * L) * el
    return byts / bw * 1e3, batch * dim * L * N / 4.18e12 * 1e3


DEFAULTS = dict(CFG)  # the library's defaults, restored before every variant


def configure(**kw):
    # (Until the issue-10 final run this reset bwd_warps to None = 4 warps instead of the
    # library's 2: that run's fwd+bwd column is the backward at 4 warps; see NOTES.md.)
    CFG.clear()
    CFG.update(DEFAULTS)
    CFG.update(kw)


def _fwd_row(rows, name, off, kw, dtype, **cfg):
    configure(**cfg)
    err = compare(selective_scan_triton, off, kw)[0] if off is not None else None
    f = triton.testing.do_bench(lambda: selective_scan_triton(**kw), return_mode="median")
    rows.append(dict(variant=name, dtype=str(dtype), fwd=f, err_vs_official=err))
    print(rows[-1], flush=True)


def _official_row(rows, name, off, kw, dtype, both=False):
    if off is None:
        return
    if both:
        f, b = time_pair(off, kw)
    else:
        f, b = triton.testing.do_bench(lambda: off(**kw), return_mode="median"), None
    rows.append(dict(variant=name, dtype=str(dtype), fwd=f, fwd_bwd=b))
    print(rows[-1], flush=True)


def sweep(off, bw, rows):
    """Round 4 of issue 10: unroll 16 and 32 across dtypes, z and the long shape; backward tiles."""
    for shape, dtype, with_z, unrolls in [((8, 2048, 4096, 16), torch.float32, False, (16, 32)),
                                          ((8, 2048, 4096, 16), torch.bfloat16, False, (16, 32)),
                                          ((8, 2048, 4096, 16), torch.float32, True, (16,)),
                                          ((2, 2048, 16384, 16), torch.float32, False, (16,)),
                                          ((8, 2048, 4096, 64), torch.float32, False, (2, 4))]:
        kw = official.random_problem(*shape, dtype, with_z, "cuda", seed=1)
        _official_row(rows, f"official {shape} z={with_z}", off, kw, dtype)
        for u in unrolls:
            _fwd_row(rows, f"loop U={u} {shape} z={with_z}", off, kw, dtype, forward="loop", unroll=u)
        if shape[3] == 16 and dtype == torch.float32 and not with_z and shape[0] == 8:
            for bt, bd, nw in [(32, 1, 2), (16, 2, 2), (32, 2, 1), (64, 1, 2)]:
                configure(forward="loop", unroll=16, bwd_warps=nw)
                fn = lambda **k: selective_scan_triton(**k, block_t=bt, block_d=bd)  # noqa: E731
                f, b = time_pair(fn, kw, rep_bwd=150)
                rows.append(dict(variant=f"bwd BT={bt} BD={bd} warps={nw}", dtype=str(dtype), fwd=f, fwd_bwd=b))
                print(rows[-1], flush=True)
        del kw
    configure()


def time_fb(fn, kw, rep=150):
    """Median forward+backward time only (gradients of every floating input)."""
    leaves = {k: kw[k].detach().requires_grad_(True) for k in GRADS if kw.get(k) is not None}
    kw2 = {**kw, **leaves}
    g = torch.randn_like(kw["u"])

    def fb():
        out = fn(**kw2)
        torch.autograd.grad(out, list(leaves.values()), g)

    return triton.testing.do_bench(fb, return_mode="median", rep=rep)


def sweep2(off, bw, rows):
    """Issue 10, round 2: backward tiles (BLOCK_T, BLOCK_D, warps) at the shapes never tuned (N = 64,
    the long sequence, bf16), v1's tiles among them; the loop forward with fewer channels per program
    (more warps) at the long shape."""
    plan = [((8, 2048, 4096, 64), torch.float32,
             [(16, 1, 2), (32, 1, 4), (32, 1, 2), (16, 2, 2), (16, 1, 4), (8, 2, 2), (8, 4, 2), (16, 2, 4)]),
            ((2, 2048, 16384, 16), torch.float32,
             [(32, 2, 2), (64, 2, 4), (64, 2, 2), (32, 1, 2), (16, 2, 2), (32, 4, 2), (64, 1, 2)]),
            ((8, 2048, 4096, 16), torch.bfloat16,
             [(32, 2, 2), (32, 1, 2), (16, 2, 2), (64, 2, 2), (32, 2, 1), (32, 4, 2)])]
    for shape, dtype, tiles in plan:
        kw = official.random_problem(*shape, dtype, False, "cuda", seed=1)
        for bt, bd, nw in tiles:
            configure(bwd_warps=nw)
            fn = lambda **k: selective_scan_triton(**k, block_t=bt, block_d=bd)  # noqa: E731
            b = time_fb(fn, kw)  # (errors: the CUDA test suite covers these tiles' correctness)
            rows.append(dict(variant=f"bwd BT={bt} BD={bd} warps={nw}", shape=list(shape), dtype=str(dtype),
                             fwd_bwd=b))
            print(rows[-1], flush=True)
        del kw
        torch.cuda.empty_cache()
    for dtype in (torch.float32, torch.bfloat16):
        shape = (2, 2048, 16384, 16)
        kw = official.random_problem(*shape, dtype, False, "cuda", seed=1)
        _official_row(rows, f"official {shape}", off, kw, dtype)
        _fwd_row(rows, f"chunked {shape}", off, kw, dtype, forward="chunked")
        for lbd in (16, 8, 4):
            for u in ((16, 4) if dtype == torch.float32 else (4,)):
                _fwd_row(rows, f"loop LBD={lbd} U={u} {shape}", off, kw, dtype, forward="loop",
                         loop_block_d=lbd, unroll=u)
        del kw
        torch.cuda.empty_cache()
    configure()


def sweep3(off, bw, rows):
    """Round 2, second sweep: more channels per backward program where round 2's first sweep found
    the B/C atomics to dominate; fewer channels per loop-forward program (more warps) everywhere."""
    plan = [((8, 2048, 4096, 64), torch.float32, [(8, 4, 2), (8, 8, 2), (4, 8, 2), (4, 16, 2), (8, 8, 4), (4, 4, 2)]),
            ((2, 2048, 16384, 16), torch.float32, [(32, 4, 2), (32, 8, 2), (16, 8, 2), (16, 4, 2)]),
            ((8, 2048, 4096, 16), torch.float32, [(32, 2, 2), (16, 2, 2), (16, 4, 2), (32, 4, 2), (8, 4, 2)]),
            ((8, 2048, 4096, 16), torch.bfloat16, [(16, 2, 2), (16, 4, 2), (8, 4, 2), (8, 8, 2)])]
    for shape, dtype, tiles in plan:
        kw = official.random_problem(*shape, dtype, False, "cuda", seed=1)
        for bt, bd, nw in tiles:
            configure(bwd_warps=nw)
            fn = lambda **k: selective_scan_triton(**k, block_t=bt, block_d=bd)  # noqa: E731
            b = time_fb(fn, kw)
            rows.append(dict(variant=f"bwd BT={bt} BD={bd} warps={nw}", shape=list(shape), dtype=str(dtype),
                             fwd_bwd=b))
            print(rows[-1], flush=True)
        del kw
        torch.cuda.empty_cache()
    for shape, dtype, lbds, u in [((2, 2048, 16384, 16), torch.float32, (4, 2, 1), 16),
                                  ((2, 2048, 16384, 16), torch.bfloat16, (4, 2, 1), 4),
                                  ((8, 2048, 4096, 16), torch.float32, (32, 16, 8), 16),
                                  ((8, 2048, 4096, 16), torch.bfloat16, (32, 16, 8), 4),
                                  ((8, 2048, 4096, 64), torch.float32, (32, 16, 8), 2)]:
        kw = official.random_problem(*shape, dtype, False, "cuda", seed=1)
        for lbd in lbds:
            configure(forward="loop", loop_block_d=lbd, unroll=u)
            f = triton.testing.do_bench(lambda: selective_scan_triton(**kw), return_mode="median")
            rows.append(dict(variant=f"loop LBD={lbd} U={u}", shape=list(shape), dtype=str(dtype), fwd=f))
            print(rows[-1], flush=True)
        del kw
        torch.cuda.empty_cache()
    configure()


def sweep4(off, bw, rows):
    """Issue 10, round 3: the loop backward (``_selective_scan_bwd_loop_kernel``), fwd+bwd per
    (channels per program, unrolled steps, chunk length), against the chunked backward and the
    official kernel; each variant's gradients are compared with the chunked backward's first."""
    plan = [((8, 2048, 4096, 16), torch.float32,
             [(16, 4, 32), (16, 2, 32), (8, 4, 32), (8, 2, 32), (16, 4, 16), (32, 2, 32), (4, 4, 32), (16, 4, 64)]),
            ((8, 2048, 4096, 16), torch.bfloat16, [(16, 4, 32), (8, 4, 32), (8, 2, 32), (16, 2, 32)]),
            ((8, 2048, 4096, 64), torch.float32, [(4, 2, 32), (8, 2, 32), (4, 1, 32), (2, 2, 32), (4, 2, 16)]),
            ((2, 2048, 16384, 16), torch.float32, [(2, 4, 32), (4, 4, 32), (8, 4, 32), (16, 4, 32), (4, 2, 32)])]
    for shape, dtype, variants in plan:
        kw = official.random_problem(*shape, dtype, False, "cuda", seed=1)
        configure(backward="chunked")
        torch.manual_seed(0)
        g = torch.randn_like(kw["u"])
        _, ref_g = grads(selective_scan_triton, kw, g)
        b = time_fb(selective_scan_triton, kw)
        rows.append(dict(variant="chunked bwd (default)", shape=list(shape), dtype=str(dtype), fwd_bwd=b))
        print(rows[-1], flush=True)
        if off is not None:
            rows.append(dict(variant="official", shape=list(shape), dtype=str(dtype), fwd_bwd=time_fb(off, kw)))
            print(rows[-1], flush=True)
        for lbd, unroll, bt in variants:
            configure(backward="loop", bwd_loop_block_d=lbd, bwd_unroll=unroll, bwd_loop_t=bt)
            try:
                _, lg = grads(selective_scan_triton, kw, g)
                err = max(rel(lg[k], ref_g[k]) for k in ref_g)
                b = time_fb(selective_scan_triton, kw)
            except Exception as e:  # a variant that fails to compile or run is recorded, not fatal
                err, b = repr(e)[:200], None
            rows.append(dict(variant=f"loop bwd LBD={lbd} U={unroll} BT={bt}", shape=list(shape),
                             dtype=str(dtype), fwd_bwd=b, err_vs_chunked=err))
            print(rows[-1], flush=True)
        del kw, ref_g, g
        torch.cuda.empty_cache()
    configure()


def sweep5(off, bw, rows):
    """Round 3, second sweep: the loop kernels read B and C packed as (L, N, 2) (one load per row of
    both); forward (channels per program, unroll) and backward (channels, unroll, chunk) again."""
    fwd_plan = [((8, 2048, 4096, 16), torch.float32, [(32, 16), (16, 16), (16, 8), (16, 4), (8, 16), (8, 4)]),
                ((8, 2048, 4096, 16), torch.bfloat16, [(16, 4), (8, 4), (8, 8), (8, 16), (16, 16), (4, 4)]),
                ((8, 2048, 4096, 64), torch.float32, [(16, 2), (8, 2), (16, 4), (8, 4)]),
                ((8, 2048, 4096, 64), torch.bfloat16, [(32, 2), (16, 2), (8, 2)]),
                ((2, 2048, 16384, 16), torch.float32, [(2, 16), (4, 16), (2, 4), (1, 16)]),
                ((2, 2048, 16384, 16), torch.bfloat16, [(2, 4), (4, 4), (2, 16)])]
    for shape, dtype, variants in fwd_plan:
        kw = official.random_problem(*shape, dtype, False, "cuda", seed=1)
        if off is not None:
            _official_row(rows, f"official {shape}", off, kw, dtype)
        for lbd, unroll in variants:
            _fwd_row(rows, f"loop LBD={lbd} U={unroll} {shape}", off, kw, dtype, forward="loop",
                     loop_block_d=lbd, unroll=unroll)
        del kw
        torch.cuda.empty_cache()
    bwd_plan = [((8, 2048, 4096, 16), torch.float32, [(16, 4, 16), (16, 4, 8), (16, 2, 8), (8, 4, 16)]),
                ((8, 2048, 4096, 16), torch.bfloat16, [(16, 4, 16), (16, 4, 8), (16, 2, 16)]),
                ((8, 2048, 4096, 64), torch.float32, [(4, 2, 16), (4, 2, 8), (8, 2, 8), (8, 1, 16)]),
                ((2, 2048, 16384, 16), torch.float32, [(8, 4, 16), (8, 4, 8), (4, 4, 8)])]
    for shape, dtype, variants in bwd_plan:
        kw = official.random_problem(*shape, dtype, False, "cuda", seed=1)
        if off is not None:
            rows.append(dict(variant="official", shape=list(shape), dtype=str(dtype), fwd_bwd=time_fb(off, kw)))
            print(rows[-1], flush=True)
        configure(backward="chunked")
        rows.append(dict(variant="chunked bwd (default)", shape=list(shape), dtype=str(dtype),
                         fwd_bwd=time_fb(selective_scan_triton, kw)))
        print(rows[-1], flush=True)
        for lbd, unroll, bt in variants:
            configure(backward="loop", bwd_loop_block_d=lbd, bwd_unroll=unroll, bwd_loop_t=bt)
            err = compare(selective_scan_triton, off, kw)[0] if off is not None else None
            b = time_fb(selective_scan_triton, kw)
            rows.append(dict(variant=f"loop bwd LBD={lbd} U={unroll} BT={bt}", shape=list(shape),
                             dtype=str(dtype), fwd_bwd=b, err_vs_official=err))
            print(rows[-1], flush=True)
        del kw
        torch.cuda.empty_cache()
    configure()


def _time(kind, fn, kw):
    """Median time of a forward ("fwd") or a forward+backward ("fb") of fn on the inputs kw."""
    if kind == "fwd":
        return triton.testing.do_bench(lambda: fn(**kw), return_mode="median")
    return time_fb(fn, kw)


def _run_plan(rows, plan, off=None):
    """Time a plan of (pass, shape, dtype, z, CONFIG overrides) entries, fresh inputs per entry; with
    ``off``, the official kernel too, once per (pass, shape, dtype, z)."""
    seen = set()
    for kind, shape, dtype, with_z, cfg in plan:
        kw = official.random_problem(*shape, dtype, with_z, "cuda", seed=1)
        if off is not None and (kind, shape, dtype, with_z) not in seen:
            seen.add((kind, shape, dtype, with_z))
            rows.append(dict(variant=f"official {kind}", shape=list(shape), dtype=str(dtype), z=with_z,
                             ms=_time(kind, off, kw)))
            print(rows[-1], flush=True)
        configure(**cfg)
        rows.append(dict(variant=f"{kind} {cfg}", shape=list(shape), dtype=str(dtype), z=with_z,
                         ms=_time(kind, selective_scan_triton, kw)))
        print(rows[-1], flush=True)
        del kw
        torch.cuda.empty_cache()
    configure()


def sweep6(off, bw, rows):
    """Round 3, third sweep: forward tiles with the gate z and for the long bf16 shape; loop-backward
    tiles at N = 64 and with z. Each entry: (pass, shape, dtype, z, CONFIG overrides)."""
    L16, L64, LONG = (8, 2048, 4096, 16), (8, 2048, 4096, 64), (2, 2048, 16384, 16)
    f32, b16 = torch.float32, torch.bfloat16
    plan = [("fwd", L16, f32, True, dict(loop_block_d=lbd, unroll=u)) for lbd, u in ((16, 16), (16, 8), (32, 16), (8, 4), (8, 16))]
    plan += [("fwd", L16, b16, True, dict(loop_block_d=lbd, unroll=u)) for lbd, u in ((8, 4), (8, 8), (16, 4), (8, 16))]
    plan += [("fwd", L16, f32, False, dict(loop_block_d=lbd, unroll=u)) for lbd, u in ((16, 16), (16, 8))]
    plan += [("fwd", LONG, b16, False, dict(loop_block_d=2, unroll=u, packed_bc=p)) for u, p in ((4, False), (16, False), (8, False), (16, True))]
    plan += [("fb", L64, f32, False, dict(bwd_loop_block_d=lbd, bwd_unroll=u, bwd_loop_t=bt))
             for lbd, u, bt in ((8, 1, 16), (16, 1, 16), (4, 1, 16), (8, 1, 32), (8, 2, 16))]
    plan += [("fb", L64, b16, False, dict(bwd_loop_block_d=lbd, bwd_unroll=u)) for lbd, u in ((8, 1), (16, 1), (4, 2))]
    plan += [("fb", L16, f32, True, dict(bwd_loop_block_d=16, bwd_unroll=u)) for u in (4, 2)]
    _run_plan(rows, plan, off)


def sweep7(off, bw, rows):
    """Round 3: eviction hints on the loop kernels' loads (B/C rows evict_last, streams evict_first)."""
    L16, L64, LONG = (8, 2048, 4096, 16), (8, 2048, 4096, 64), (2, 2048, 16384, 16)
    f32, b16 = torch.float32, torch.bfloat16
    plan = []
    for shape, dtype in ((L16, f32), (L16, b16), (L64, f32), (LONG, f32)):
        plan += [("fwd", shape, dtype, False, dict(cache_hints=h)) for h in (False, True)]
    for shape, dtype in ((L16, f32), (L64, f32)):
        plan += [("fb", shape, dtype, False, dict(cache_hints=h)) for h in (False, True)]
    _run_plan(rows, plan)


def sweep8(off, bw, rows):
    """Round 3: forward time with the chunk checkpoints stored (an input needs a gradient) and
    without (inference), per shape; and the long shape's loop-forward variants again."""
    L16, L64, LONG = (8, 2048, 4096, 16), (8, 2048, 4096, 64), (2, 2048, 16384, 16)
    for shape, dtype, cfgs in [(L16, torch.float32, [{}]), (L64, torch.float32, [{}]),
                               (LONG, torch.float32, [{}, dict(packed_bc=False), dict(packed_bc=False, cache_hints=True),
                                                      dict(unroll=4), dict(loop_block_d=4)]),
                               (LONG, torch.bfloat16, [{}, dict(packed_bc=False)])]:
        kw = official.random_problem(*shape, dtype, False, "cuda", seed=1)
        for cfg in cfgs:
            configure(**cfg)
            for grad in (False, True):
                kw["u"].requires_grad_(grad)
                t = triton.testing.do_bench(lambda: selective_scan_triton(**kw), return_mode="median")
                rows.append(dict(variant=f"fwd {cfg} checkpoints={grad}", shape=list(shape), dtype=str(dtype), ms=t))
                print(rows[-1], flush=True)
            kw["u"].requires_grad_(False)
        del kw
        torch.cuda.empty_cache()
    configure()


def sweep9(off, bw, rows):
    """Round 3: the loop forward split into segments (inference forward, no checkpoints), per shape."""
    L16, L64, LONG = (8, 2048, 4096, 16), (8, 2048, 4096, 64), (2, 2048, 16384, 16)
    f32, b16 = torch.float32, torch.bfloat16
    plan = [(L16, f32, [dict(segments=s) for s in (1, 2, 4)] + [dict(segments=2, loop_block_d=32)]),
            (L16, b16, [dict(segments=s) for s in (1, 2, 4)] + [dict(segments=2, loop_block_d=16)]),
            (L64, f32, [dict(segments=s) for s in (1, 2)]),
            (L64, b16, [dict(segments=s) for s in (1, 2)]),
            (LONG, f32, [dict(segments=s) for s in (1, 2, 4, 8)] + [dict(segments=4, loop_block_d=8)]),
            (LONG, b16, [dict(segments=s) for s in (1, 2, 4, 8)] + [dict(segments=4, loop_block_d=8)])]
    for shape, dtype, cfgs in plan:
        kw = official.random_problem(*shape, dtype, False, "cuda", seed=1)
        for cfg in cfgs:
            _fwd_row(rows, f"loop {cfg} {shape}", off, kw, dtype, forward="loop", **cfg)
        del kw
        torch.cuda.empty_cache()
    configure()


def sweep10(off, bw, rows):
    """Round 3: the long shape (4096 channels), channels per program × segments of the loop forward."""
    LONG = (2, 2048, 16384, 16)
    _run_plan(rows, [("fwd", LONG, dtype, False, dict(forward="loop", loop_block_d=lbd, segments=segs))
                     for dtype in (torch.float32, torch.bfloat16) for lbd in (4, 8, 16) for segs in (2, 4, 8)])


def sweep11(off, bw, rows):
    """Round 3: more segments than the default 8 at the long shape."""
    LONG = (2, 2048, 16384, 16)
    _run_plan(rows, [("fwd", LONG, dtype, False, dict(forward="loop", loop_block_d=lbd, segments=segs))
                     for dtype, lbd in ((torch.float32, 16), (torch.bfloat16, 8), (torch.bfloat16, 16))
                     for segs in (8, 16, 32)])


def final(off, bw, rows, bwd_tiles=None):
    """The issue's shapes, fp32 and bf16, with and without z: ours (default tiles) and official."""
    configure()
    for shape in [(8, 2048, 4096, 16), (8, 2048, 4096, 64), (2, 2048, 16384, 16)]:
        for dtype in (torch.float32, torch.bfloat16):
            for with_z in (False, True):
                kw = official.random_problem(*shape, dtype, with_z, "cuda", seed=3)
                row = dict(shape=list(shape), dtype=str(dtype).replace("torch.", ""), z=with_z)
                row["hbm_floor_ms"], row["exp_floor_ms"] = floors(*shape, dtype, with_z, bw)
                row["triton_fwd_ms"], row["triton_fwd_bwd_ms"] = time_pair(selective_scan_triton, kw)
                if off is not None:
                    row["worst_rel_err_vs_official"] = compare(selective_scan_triton, off, kw)[0]
                    row["official_fwd_ms"], row["official_fwd_bwd_ms"] = time_pair(off, kw)
                    row["fwd_ratio"] = row["triton_fwd_ms"] / row["official_fwd_ms"]
                    row["fwd_bwd_ratio"] = row["triton_fwd_bwd_ms"] / row["official_fwd_bwd_ms"]
                row["fwd_over_floor"] = row["triton_fwd_ms"] / max(row["hbm_floor_ms"], row["exp_floor_ms"])
                rows.append(row)
                print(json.dumps(row), flush=True)
                del kw
                torch.cuda.empty_cache()


def table(rows):
    print("\nshape dtype z | triton fwd, fwd+bwd | official fwd, fwd+bwd | ratios | fwd/floor")
    for r in rows:
        if "triton_fwd_ms" in r:
            print(f"{r['shape']} {r['dtype']} z={int(r['z'])} | {r['triton_fwd_ms']:.3f} {r['triton_fwd_bwd_ms']:.3f} | "
                  f"{r.get('official_fwd_ms', float('nan')):.3f} {r.get('official_fwd_bwd_ms', float('nan')):.3f} | "
                  f"{r.get('fwd_ratio', float('nan')):.2f} {r.get('fwd_bwd_ratio', float('nan')):.2f} | {r['fwd_over_floor']:.1f}")
        else:
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()})


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["sweep", "sweep2", "sweep3", "sweep4", "sweep5", "sweep6", "sweep7", "sweep8", "sweep9", "sweep10", "sweep11", "final"])
    p.add_argument("--out")
    args = p.parse_args()
    bw = copy_bandwidth()
    off = load_official()
    rows = []
    try:
        dict(sweep=sweep, sweep2=sweep2, sweep3=sweep3, sweep4=sweep4, sweep5=sweep5, sweep6=sweep6, sweep7=sweep7, sweep8=sweep8, sweep9=sweep9, sweep10=sweep10, sweep11=sweep11, final=final)[args.what](off, bw, rows)
    finally:
        res = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__,
                   copy_bandwidth_GBps=bw / 1e9, official_loaded=off is not None, rows=rows)
        if args.out:
            with open(args.out, "w") as f:
                json.dump(res, f, indent=1)
        table(rows)
