"""Time Triton kernel variants listed in a JSON tuning grid (one entry = one pass, shape, dtype, z, KernelConfig).

    python benchmarks/tune.py benchmarks/archive/grids/loop_forward_tiles.json --out $OUT/tune.json
    python benchmarks/tune.py GRID --out t.json --impl torch --device cpu      # the driver itself, on a CPU

A tuning grid is ``{"name", "description", "official": bool, "entries": [...]}``; each entry has

* ``pass``: ``"fwd"`` (inference forward), ``"fwd_ckpt"`` (forward with an input that needs a
  gradient, so that the chunk checkpoints are stored) or ``"fwd+bwd"``;
* ``shape``: ``[batch, dim, L, N]``; ``dtype``; ``z``: bool;
* ``config``: KernelConfig fields to override (``{}``: the library defaults);
* ``call`` (optional): ``block_t`` / ``block_d`` arguments of ``selective_scan_triton``.

Every entry gets fresh inputs (``common.make_inputs``, seeded by its position).  With ``"official":
true`` and the official kernel loadable, it is timed once per (pass, shape, dtype, z) on the same
inputs, and each variant's worst norm-wise error (output and gradients) against it is recorded.
Rows are written to the JSON after every entry.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time

import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common

common.ensure_importable()

TUNE_PASSES = ("fwd", "fwd_ckpt", "fwd+bwd")
ENTRY_KEYS = {"pass", "shape", "dtype", "z", "config"}
CALL_KEYS = {"block_t", "block_d"}


def load_tuning_grid(path):
    """Read a tuning grid and check every entry (ValueError naming the entry and the key)."""
    grid = json.loads(pathlib.Path(path).read_text())
    if not isinstance(grid.get("entries"), list) or not grid["entries"]:
        raise ValueError(f"{path}: 'entries' must be a non-empty list")
    grid.setdefault("official", False)
    for i, e in enumerate(grid["entries"]):
        missing, extra = ENTRY_KEYS - set(e), set(e) - ENTRY_KEYS - {"call"}
        if missing or extra:
            raise ValueError(f"{path}: entry {i}: missing keys {sorted(missing)}, unknown keys {sorted(extra)}")
        if e["pass"] not in TUNE_PASSES:
            raise ValueError(f"{path}: entry {i}: pass must be one of {TUNE_PASSES}, got {e['pass']!r}")
        if not (isinstance(e["shape"], list) and len(e["shape"]) == 4
                and all(isinstance(v, int) and v >= 1 for v in e["shape"])):
            raise ValueError(f"{path}: entry {i}: shape must be [batch, dim, L, N] of positive ints, got {e['shape']!r}")
        common.dtype_of(e["dtype"])
        if not isinstance(e["z"], bool) or not isinstance(e["config"], dict):
            raise ValueError(f"{path}: entry {i}: z must be a bool and config a dict")
        if set(e.get("call", {})) - CALL_KEYS:
            raise ValueError(f"{path}: entry {i}: call may only set {sorted(CALL_KEYS)}, got {sorted(e['call'])}")
    return grid


def kernel_variant(config, call):
    """``selective_scan_triton`` with ``config`` (KernelConfig overrides) and ``call`` arguments bound."""
    from ssmbook.kernels.selective_scan import KernelConfig, selective_scan_triton

    cfg = dataclasses.replace(KernelConfig(), **config)

    def fn(**kw):
        return selective_scan_triton(**kw, **call, config=cfg)

    return fn


def torch_variant(config, call):
    """The torch path (ignores the kernel configuration): lets the driver run where Triton cannot."""
    from ssmbook.selective import selective_scan

    def fn(**kw):
        return selective_scan(**kw, backend="torch")

    return fn


def time_entry(fn, kw, pass_, device, timing):
    """Median ms of one pass of ``fn`` on the inputs ``kw``."""
    if pass_ == "fwd":
        return common.bench_ms(lambda: fn(**kw), device, **timing)
    if pass_ == "fwd_ckpt":
        kw2 = {**kw, "u": kw["u"].detach().clone().requires_grad_(True)}
        return common.bench_ms(lambda: fn(**kw2), device, **timing)
    leaves = common.leaves_of(kw)
    kw2, lv = {**kw, **leaves}, list(leaves.values())
    dout = torch.randn_like(kw["u"])

    def fwd_bwd():
        torch.autograd.grad(fn(**kw2), lv, dout)

    return common.bench_ms(fwd_bwd, device, **timing)


def worst_error(fn, ref_fn, kw):
    """Worst norm-wise error of the output and every gradient of fn against ref_fn."""
    dout = torch.randn_like(kw["u"])
    o1, g1 = common.outputs_and_grads(fn, kw, dout)
    o2, g2 = common.outputs_and_grads(ref_fn, kw, dout)
    return max([common.rel_err(o1, o2)] + [common.rel_err(g1[k], g2[k]) for k in g1])


def run(grid, device, variant, official_fn, out_path, timing, label="triton", log=print):
    """Time every entry of ``grid``; returns (and writes) the result dictionary."""
    t0 = time.time()
    result = {"environment": common.environment(device), "grid": {k: v for k, v in grid.items() if k != "entries"},
              "official_loaded": official_fn is not None, "rows": [], "complete": False}
    if str(device).startswith("cuda"):
        result["copy_bandwidth_GBps"] = common.copy_bandwidth(device)["GBps"]
    seen = set()
    for i, e in enumerate(grid["entries"]):
        dtype = common.dtype_of(e["dtype"])
        kw = common.make_inputs(*e["shape"], dtype, e["z"], device, seed=i + 1)
        key = (e["pass"], tuple(e["shape"]), e["dtype"], e["z"])
        if official_fn is not None and grid["official"] and key not in seen:
            seen.add(key)
            row = dict(index=i, variant="official", **{k: e[k] for k in ("pass", "shape", "dtype", "z")})
            row["ms"] = time_entry(official_fn, kw, e["pass"], device, timing)
            result["rows"].append(row)
            log(json.dumps(row))
        row = dict(index=i, variant=label, **e)
        try:
            fn = variant(e["config"], e.get("call", {}))
            if official_fn is not None and grid["official"]:
                row["err_vs_official"] = worst_error(fn, official_fn, kw)
            row["ms"] = time_entry(fn, kw, e["pass"], device, timing)
        except Exception as ex:
            row["error"] = f"{type(ex).__name__}: {ex}"[:300]
        result["rows"].append(row)
        log(json.dumps(row))
        del kw
        if str(device).startswith("cuda"):
            torch.cuda.empty_cache()
        result["wall_seconds"] = round(time.time() - t0, 1)
        pathlib.Path(out_path).write_text(json.dumps(result, indent=1))
    result["complete"] = True
    result["wall_seconds"] = round(time.time() - t0, 1)
    pathlib.Path(out_path).write_text(json.dumps(result, indent=1))
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("grid")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default=None)
    ap.add_argument("--impl", choices=("triton", "torch"), default="triton")
    ap.add_argument("--official-so", default=None)
    ap.add_argument("--official-parts", default=None)
    ap.add_argument("--official-src", default=str(common.OFFICIAL_SRC))
    ap.add_argument("--warmup-ms", type=float, default=25)
    ap.add_argument("--rep-ms", type=float, default=100)
    args = ap.parse_args(argv)
    grid = load_tuning_grid(args.grid)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    official_fn = None
    if grid["official"]:
        official_fn, why = common.load_official(args.official_so, args.official_parts, args.official_src)
        if official_fn is None:
            print(f"official kernel not timed: {why}", flush=True)
    variant = kernel_variant if args.impl == "triton" else torch_variant
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    return run(grid, device, variant, official_fn, args.out, dict(warmup_ms=args.warmup_ms, rep_ms=args.rep_ms),
               label=args.impl)


if __name__ == "__main__":
    main()
