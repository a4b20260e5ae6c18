"""Benchmark the selective scan on a grid of shapes read from JSON: Triton, official CUDA, torch paths, oracle.

    # on the GPU machine (the official extension built by benchmarks/official.py):
    python benchmarks/bench_selective_scan.py --grid mamba --official-so /tmp/ext --out $OUT/mamba.json
    # anywhere, in seconds (what tests/test_bench_scripts.py runs):
    python benchmarks/bench_selective_scan.py --grid tiny --device cpu --impls torch,oracle --out /tmp/t.json

A grid (``benchmarks/grids/<name>.json``, schema in :func:`load_grid`) lists cells (batch, dim, L, N,
dtype, z); every cell is timed forward and forward+backward for each implementation:

* ``triton``: ``selective_scan_triton`` of ``kernels/`` with the library's default KernelConfig;
* ``official``: mamba_ssm's ``selective_scan_fn`` (its CUDA extension, built for sm_90 from the sdist);
* ``torch``: ``selective_scan(backend="torch")``; ``torch_parallel_scan``: ``ssmbook.scan.linear_recurrence``
  on the expanded (batch, dim, N, L) problem (skipped where it would not fit); ``oracle``: the loop.

Agreement, per cell: the largest per-entry relative error (:func:`common.entry_err`) of the output
and of every gradient, Triton against the official kernel on the full cell, and every implementation
against the float64 oracle on a subsample of cells (batch element 0, the first few channels, the full
length: the gradient of the output is zero elsewhere, so the kernels' gradients on the full cell must
equal the oracle's on the slice).  An implementation that misses the norm-wise tolerance there is not
timed.  Times are medians of ``triton.testing.do_bench`` (L2 cleared before each run) on fresh random
inputs; beside them the HBM floor and the exp floor (``common.py``).  The JSON is written after every
cell, so a run cut short keeps what it measured; ``report.py`` prints its tables.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import pathlib
import sys
import time
import traceback

import torch
import torch.nn.functional as F

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common

common.ensure_importable()
from ssmbook import scan as S
from ssmbook.selective import selective_scan, selective_scan_ref

IMPLS = ("triton", "official", "torch", "torch_parallel_scan", "oracle")
PASSES = ("fwd", "fwd+bwd")
GRIDS = HERE / "grids"
AGREEMENT = ("largest per-entry relative error |o - r| / (|r| + 1e-3 max|r|) of the output and every "
             "gradient: triton against official on the full cell; each implementation against the float64 "
             "oracle on batch element 0 and the first oracle.channels channels of the oracle-checked cells, "
             "with the output's gradient zero outside that slice")
CELL_KEYS = {"batch": int, "dim": int, "L": int, "N": int, "dtype": str, "z": bool}


# --- the grid ---
def load_grid(path_or_name):
    """Read and check a grid file; a bare name means ``benchmarks/grids/<name>.json``.

    Keys: ``name``; ``cells``, a non-empty list of {batch, dim, L, N: positive ints, dtype: float32 /
    bfloat16 / float16, z: bool}; optional ``impls`` (subset of IMPLS, default triton and official),
    ``passes`` (subset of PASSES, default both), ``delta_softplus`` (bool, default true), ``sweep``
    ("L" or "batch": the axis along which report.py looks for cliffs; the other sizes must then be
    equal in every cell), ``oracle`` ({every, max_L, channels}: which cells are checked against the
    float64 oracle), ``timing`` ({warmup_ms, rep_ms}) and ``time_per_token`` ({contexts, batch,
    d_model, n_layer}).
    """
    p = pathlib.Path(path_or_name)
    if not p.exists() and not p.suffix:
        p = GRIDS / f"{path_or_name}.json"
    if not p.exists():
        raise FileNotFoundError(f"grid {path_or_name!r}: no file {p}")
    grid = json.loads(p.read_text())
    grid.setdefault("impls", ["triton", "official"])
    grid.setdefault("passes", list(PASSES))
    grid.setdefault("delta_softplus", True)
    grid.setdefault("oracle", {"every": 1, "max_L": 4096, "channels": 4})
    grid.setdefault("timing", {"warmup_ms": 25, "rep_ms": 100})
    if not isinstance(grid.get("name"), str):
        raise ValueError(f"{p}: 'name' must be a string")
    if not isinstance(grid.get("cells"), list) or not grid["cells"]:
        raise ValueError(f"{p}: 'cells' must be a non-empty list")
    for i, cell in enumerate(grid["cells"]):
        if set(cell) != set(CELL_KEYS):
            raise ValueError(f"{p}: cell {i} must have exactly the keys {sorted(CELL_KEYS)}, got {sorted(cell)}")
        for k, t in CELL_KEYS.items():
            if type(cell[k]) is not t or (t is int and cell[k] < 1):
                raise ValueError(f"{p}: cell {i}: {k} must be a {'positive int' if t is int else t.__name__}, "
                                 f"got {cell[k]!r}")
        if cell["dtype"] not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"{p}: cell {i}: dtype must be float32, bfloat16 or float16, got {cell['dtype']!r}")
    bad = [x for x in grid["impls"] if x not in IMPLS] + [x for x in grid["passes"] if x not in PASSES]
    if bad:
        raise ValueError(f"{p}: unknown implementations or passes {bad} (known: {IMPLS}, {PASSES})")
    if grid.get("sweep") is not None:
        axis = grid["sweep"]
        if axis not in ("L", "batch"):
            raise ValueError(f"{p}: 'sweep' must be 'L' or 'batch', got {axis!r}")
        fixed = {tuple((k, v) for k, v in c.items() if k != axis) for c in grid["cells"]}
        if len(fixed) != 1:
            raise ValueError(f"{p}: a sweep over {axis} must keep every other size fixed")
    o = grid["oracle"]
    if not (isinstance(o, dict) and all(isinstance(o.get(k), int) and o[k] >= 1
                                        for k in ("every", "max_L", "channels"))):
        raise ValueError(f"{p}: 'oracle' must be {{every, max_L, channels}} of positive ints, got {o!r}")
    grid["path"] = str(p)
    return grid


def oracle_cells(grid):
    """Indices of the cells checked against the float64 oracle: every ``every``-th with L <= max_L."""
    o = grid["oracle"]
    short = [i for i, c in enumerate(grid["cells"]) if c["L"] <= o["max_L"]]
    return set(short[::o["every"]])


#: ms per run at batch·dim·L = 8·2048·4096 as (N = 16, N = 64): the H100 times of chapter 6's
#: committed run (ssmbook/data/benchmarks/) divided by 1.4, the H200's larger memory bandwidth.
MODEL_MS = {("triton", "fwd"): (1.0, 1.9), ("triton", "fwd+bwd"): (5.1, 23.6),
            ("official", "fwd"): (1.65, 6.0), ("official", "fwd+bwd"): (5.6, 21.0)}
#: The torch paths and the oracle as multiples of the Triton time (rough: they are far slower).
SLOWER = {"torch": 20, "torch_parallel_scan": 60, "oracle": 3000}


def model_ms(cell, impl, pass_):
    """Rough H200 time of one run: MODEL_MS scaled by batch·dim·L (at least 0.02 ms, a launch)."""
    e = cell["batch"] * cell["dim"] * cell["L"] / (8 * 2048 * 4096)
    base = MODEL_MS[("official" if impl == "official" else "triton", pass_)][0 if cell["N"] <= 16 else 1]
    return max(0.02, e * base) * SLOWER.get(impl, 1)


def estimate_seconds(grid, compile_s=3.0, oracle_ms_per_step=0.4):
    """Wall time of a grid on an H200 by :func:`model_ms`: per measurement ``do_bench``'s five
    estimating runs, warm-up and timed runs (each at least one run), a third more for the L2 clears
    and host overhead; per cell one checking fwd+bwd per implementation, the oracle on its subsample
    (``oracle_ms_per_step`` per time step, forward+backward on the host), and ``compile_s`` of
    Triton compilation (new specialisations as L and the strides change)."""
    warm, rep = grid["timing"]["warmup_ms"], grid["timing"]["rep_ms"]
    checked = oracle_cells(grid)
    total = 0.0
    for i, cell in enumerate(grid["cells"]):
        total += compile_s if "triton" in grid["impls"] else 0.2
        if i in checked:
            total += cell["L"] * oracle_ms_per_step / 1e3
        for impl in grid["impls"]:
            for pass_ in grid["passes"]:
                t = model_ms(cell, impl, pass_)
                total += 1.33 * (5 * t + max(warm, t) + max(rep, t)) / 1e3 + 0.05
            total += model_ms(cell, impl, "fwd+bwd") / 1e3
    return total


# --- implementations ---
def torch_parallel_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """The selective scan as ssmbook.scan.linear_recurrence on the expanded (batch, dim, N, L) problem."""
    cdt = torch.float32 if u.dtype != torch.float64 else torch.float64
    dt = delta.to(cdt)
    if delta_bias is not None:
        dt = dt + delta_bias.to(cdt)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    uc = u.to(cdt)
    a = torch.exp(dt[:, :, None, :] * A.to(cdt)[None, :, :, None])                 # (b, d, N, L)
    b = (dt * uc)[:, :, None, :] * B.to(cdt)[:, None, :, :]
    h = S.linear_recurrence(a, b)
    y = torch.einsum("bdnl,bnl->bdl", h, C.to(cdt))
    if D is not None:
        y = y + uc * D.to(cdt)[:, None]
    if z is not None:
        y = y * F.silu(z.to(cdt))
    return y.to(u.dtype)


def peak_bytes(name, batch, dim, L, N, backward):
    """Rough peak memory of the torch implementations, in units of one float32 (b, d, N, L) tensor:
    torch_parallel_scan keeps ~8 alive in the forward, and autograd about two per Hillis–Steele level;
    the torch path materialises Ā, B̄u and the stacked states (~4 alive, ~6 with autograd's saved
    tensors); the loop oracle saves ~6 (b, d, N) tensors per time step.  The fused kernels need none."""
    t = batch * dim * N * L * 4
    levels = max(1, math.ceil(math.log2(max(L, 2))))
    if name == "torch_parallel_scan":
        return t * (2 * levels + 8 if backward else 8)
    if name == "torch":
        return t * (6 if backward else 4)
    if name == "oracle":
        return t * 6 if backward else 0
    return 0


def implementations(device, official_fn, want):
    """name -> callable with ``selective_scan_fn``'s keyword arguments, for the names in ``want``."""
    impls = {}
    for name in want:
        if name == "triton":
            from ssmbook.kernels.selective_scan import selective_scan_triton

            impls[name] = selective_scan_triton
        elif name == "official":
            impls[name] = official_fn
        elif name == "torch":
            impls[name] = functools.partial(selective_scan, backend="torch")
        elif name == "torch_parallel_scan":
            impls[name] = torch_parallel_scan
        elif name == "oracle":
            impls[name] = selective_scan_ref
    return impls


# --- agreement ---
def slice_problem(kw, ch):
    """Batch element 0 and the first ``ch`` channels, in float64 on the host."""
    out = {}
    for k, v in kw.items():
        if not isinstance(v, torch.Tensor):
            out[k] = v
        elif k in ("u", "delta", "z"):
            out[k] = v[:1, :ch].double().cpu()
        elif k in ("B", "C"):
            out[k] = v[:1].double().cpu()
        else:
            out[k] = v[:ch].double().cpu()
    return out


def on_slice(name, t, ch):
    """The part of a full-cell output or gradient that the sliced oracle problem computes."""
    if name in ("out", "u", "delta", "z"):
        return t[:1, :ch]
    if name in ("B", "C"):
        return t[:1]
    return t[:ch]


def errors(out, grads, ref_out, ref_grads, view=lambda name, t: t):
    """Per-entry and norm-wise errors of the output and every gradient against a reference."""
    pairs = [("out", out, ref_out)] + [(k, grads[k], ref_grads[k]) for k in grads]
    per = {("out" if k == "out" else "d" + k): common.entry_err(view(k, a), b) for k, a, b in pairs}
    norm = {("out" if k == "out" else "d" + k): common.rel_err(view(k, a), b) for k, a, b in pairs}
    return {"entry": per, "worst_entry": max(per.values()), "norm": norm,
            "worst_norm_grad": max(v for k, v in norm.items() if k != "out"), "out_norm": norm["out"]}


def oracle_reference(kw, dout, ch):
    """Output and gradients of the float64 loop oracle on the slice, for a gradient of the output
    that is ``dout`` on the slice and zero elsewhere (returned as the full-cell ``dout_masked``)."""
    small = slice_problem(kw, ch)
    d = dout[:1, :ch].double().cpu()
    out, grads = common.outputs_and_grads(selective_scan_ref, small, d)
    masked = torch.zeros_like(dout)
    masked[:1, :ch] = dout[:1, :ch]
    return out, grads, masked


# --- one cell ---
def time_cell(fn, kw, dout, device, pass_, timing):
    if pass_ == "fwd":
        return common.bench_ms(lambda: fn(**kw), device, timing["warmup_ms"], timing["rep_ms"])
    leaves = common.leaves_of(kw)
    kw2, lv = {**kw, **leaves}, list(leaves.values())

    def fwd_bwd():
        out = fn(**kw2)
        torch.autograd.grad(out, lv, dout)

    return common.bench_ms(fwd_bwd, device, timing["warmup_ms"], timing["rep_ms"])


def run_cell(i, cell, grid, impls, device, bw, exp_rate, mem_limit, checked):
    """Check and time one cell: (records, one per pass; the cell's agreement entry)."""
    dtype = common.dtype_of(cell["dtype"])
    b, d, L, N = cell["batch"], cell["dim"], cell["L"], cell["N"]
    kw = common.make_inputs(b, d, L, N, dtype, cell["z"], device, seed=i + 1)
    kw["delta_softplus"] = grid["delta_softplus"]
    dout = torch.randn(kw["u"].shape, generator=torch.Generator(device=device).manual_seed(10_000 + i),
                       device=device).to(dtype)
    agree = dict(cell, index=i)
    ch = min(d, grid["oracle"]["channels"])
    ref = oracle_reference(kw, dout, ch) if i in checked else None
    skip, full = {}, {}
    for name, fn in impls.items():
        for pass_ in grid["passes"]:
            need = peak_bytes(name, b, d, L, N, pass_ == "fwd+bwd")
            if name == "oracle" and pass_ == "fwd+bwd" and L > 1024:
                skip[(name, pass_)] = "loop oracle forward+backward timed up to L = 1024 only"
            elif mem_limit is not None and need > mem_limit:
                skip[(name, pass_)] = f"needs ~{need / 2**30:.0f} GiB of intermediates"
        if all((name, p) in skip for p in grid["passes"]) or name == "oracle":
            continue
        try:
            if ref is not None:
                out, grads = common.outputs_and_grads(fn, kw, ref[2])
                e = errors(out, grads, ref[0], ref[1], view=lambda k, t: on_slice(k, t, ch))
                agree[f"{name}_vs_oracle"] = e
                tol = common.TOL[dtype]
                if not e["out_norm"] < tol:
                    skip[(name, "fwd")] = f"relative error {e['out_norm']:.2e} >= {tol:g} against the float64 oracle"
                if not e["worst_norm_grad"] < tol:
                    skip[(name, "fwd+bwd")] = (f"gradient relative error {e['worst_norm_grad']:.2e} >= {tol:g} "
                                               "against the float64 oracle")
            if name in ("triton", "official") and "official" in impls and "triton" in impls:
                full[name] = common.outputs_and_grads(fn, kw, dout)
        except Exception as e:
            msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
            for p in grid["passes"]:
                skip[(name, p)] = msg
            if "out of memory" in msg.lower():
                torch.cuda.empty_cache()
    if len(full) == 2:
        agree["triton_vs_official"] = errors(*full["triton"], *full["official"])
    del full
    records = []
    for pass_ in grid["passes"]:
        backward = pass_ == "fwd+bwd"
        hbm, ex = common.floors_ms(b, d, L, N, dtype, cell["z"], backward, bw, exp_rate)
        rec = dict(cell, pass_=pass_, bytes_min=common.min_bytes(b, d, L, N, dtype, cell["z"], backward),
                   exps=common.exp_count(b, d, L, N, backward), hbm_floor_ms=hbm, exp_floor_ms=ex, results={})
        for name, fn in impls.items():
            if (name, pass_) in skip:
                rec["results"][name] = {"skipped": skip[(name, pass_)]}
                continue
            try:
                ms = time_cell(fn, kw, dout, device, pass_, grid["timing"])
                rec["results"][name] = {"median_ms": ms, "GBps_effective": rec["bytes_min"] / (ms * 1e-3) / 1e9}
            except Exception as e:
                rec["results"][name] = {"skipped": f"{type(e).__name__}: {e}"[:300]}
                if "out of memory" in str(e).lower():
                    torch.cuda.empty_cache()
        r = rec["results"]
        if "median_ms" in r.get("triton", {}) and "median_ms" in r.get("official", {}):
            rec["ratio"] = r["triton"]["median_ms"] / r["official"]["median_ms"]
        records.append(rec)
    return records, agree


def summary_line(rec):
    parts = [f"{rec['batch']}x{rec['dim']}x{rec['L']}x{rec['N']} {rec['dtype']:8s} z={int(rec['z'])} "
             f"{rec['pass_']:7s} floors hbm {rec['hbm_floor_ms']:.3f} exp {(rec['exp_floor_ms'] or 0):.3f} |"]
    for name, r in rec["results"].items():
        parts.append(f"{name} {r['median_ms']:.3f}" if "median_ms" in r else f"{name} -")
    if "ratio" in rec:
        parts.append(f"| triton/official {rec['ratio']:.2f}")
    return " ".join(parts)


# --- main ---
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", required=True, help="a grid file, or the name of one in benchmarks/grids/")
    ap.add_argument("--out", required=True, help="JSON to write (after every cell)")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--impls", default=None, help="comma-separated; default: the grid's")
    ap.add_argument("--official-so", default=None, help="the built extension, or its build folder")
    ap.add_argument("--official-parts", default=None, help="folder of selective_scan_cuda.so.part* (gzip)")
    ap.add_argument("--official-src", default=str(common.OFFICIAL_SRC))
    ap.add_argument("--max-seconds", type=float, default=None, help="start no new cell after this long")
    args = ap.parse_args(argv)

    t_start = time.time()
    grid = load_grid(args.grid)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    want = [s.strip() for s in args.impls.split(",")] if args.impls else list(grid["impls"])
    unknown = [w for w in want if w not in IMPLS]
    if unknown:
        raise SystemExit(f"unknown implementations {unknown} (known: {', '.join(IMPLS)})")
    env = common.environment(device)
    print(f"environment: {json.dumps(env)}", flush=True)
    skipped = {}
    official_fn = None
    if "official" in want:
        official_fn, why = common.load_official(args.official_so, args.official_parts, args.official_src)
        if official_fn is None:
            skipped["official"] = why
            want.remove("official")
    if "triton" in want and device == "cpu" and not common.interpreting():
        skipped["triton"] = "CPU without TRITON_INTERPRET=1"
        want.remove("triton")
    impls = implementations(device, official_fn, want)
    bw = common.copy_bandwidth(device)
    exp_meas, exp_rate = None, None
    if device == "cuda":
        try:
            exp_meas = common.exp_throughput()
            exp_rate = exp_meas["per_s"]
        except Exception as e:
            exp_meas = {"skipped": f"{type(e).__name__}: {e}"}
            exp_rate = env["sm_count"] * common.MUFU_PER_CLOCK_PER_SM * (env.get("sm_clock_max_MHz") or 1980) * 1e6
    print(f"copy bandwidth {bw['GBps']:.0f} GB/s; exp rate {exp_rate}", flush=True)
    mem_limit = int(0.6 * torch.cuda.get_device_properties(0).total_memory) if device == "cuda" else None
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"environment": env, "grid": {k: v for k, v in grid.items() if k != "cells"},
              "copy_bandwidth": bw, "exp_throughput": exp_meas,
              "assumptions": {"bytes_min": common.min_bytes.__doc__.strip(),
                              "hbm_floor": "bytes_min / measured copy bandwidth (bytes read + written / time)",
                              "exps": common.exp_count.__doc__.strip(),
                              "exp_floor": "exps / the measured ex2 rate (one ex2 per exp)",
                              "timing": common.bench_ms.__doc__.strip(),
                              "agreement": AGREEMENT},
              "implementations": list(impls), "skipped_implementations": skipped,
              "estimated_seconds": round(estimate_seconds(grid), 1),
              "selective_scan": [], "agreement": [], "time_per_token": None, "complete": False}

    def save():
        result["wall_seconds"] = round(time.time() - t_start, 1)
        out.write_text(json.dumps(result, indent=1))

    if grid.get("time_per_token"):
        import time_per_token

        cfg = dict(grid["time_per_token"])
        contexts = cfg.pop("contexts")
        result["time_per_token"] = time_per_token.bench_time_per_token(contexts, device, print, **cfg)
        save()
    checked = oracle_cells(grid)
    for i, cell in enumerate(grid["cells"]):
        if args.max_seconds is not None and time.time() - t_start > args.max_seconds:
            result["stopped"] = f"--max-seconds {args.max_seconds:g} reached before cell {i}"
            break
        try:
            records, agree = run_cell(i, cell, grid, impls, device, bw["GBps"], exp_rate, mem_limit, checked)
        except Exception:
            result.setdefault("failed_cells", []).append(dict(cell, index=i, error=traceback.format_exc()[-2000:]))
            print(traceback.format_exc(), flush=True)
            continue
        result["selective_scan"] += records
        result["agreement"].append(agree)
        for rec in records:
            print(summary_line(rec), flush=True)
        if device == "cuda":
            torch.cuda.empty_cache()
        save()
    result["complete"] = "stopped" not in result
    save()
    print(f"wrote {out} in {result['wall_seconds']} s (estimated {result['estimated_seconds']} s)", flush=True)
    return result


if __name__ == "__main__":
    main()
