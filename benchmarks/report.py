"""Markdown tables of a bench_selective_scan.py result: Triton / official per cell, geomeans, targets, sweep cliffs.

    python benchmarks/report.py $OUT/mamba.json $OUT/sweep_L.json $OUT/sweep_batch.json

For a grid: one row per cell with the Triton and official times and their ratio, forward and
forward+backward, and the worst per-entry disagreement; then the geometric means and the cells that
miss the targets (forward ratio <= 0.7 in every cell and <= 0.5 as a geometric mean; forward+backward
ratio <= 1.0 in every cell).  For a sweep (the grid's ``sweep`` names the axis): the Triton time per
element (batch·dim·L) at each step and the worst step, the largest ratio of a point's time per
element to that of the next smaller size (target: <= 1.3).  Chapter 6 reads the same JSON through
``ssmbook.benchmarks``.
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib

TARGETS = {"fwd_cell": 0.7, "fwd_geomean": 0.5, "fwd+bwd_cell": 1.0, "sweep_step": 1.3}
CELL = ("batch", "dim", "L", "N", "dtype", "z")


def cell_key(rec):
    return tuple(rec[k] for k in CELL)


def geomean(xs):
    """Geometric mean of positive numbers (None for an empty list)."""
    xs = list(xs)
    if not xs:
        return None
    if any(not x > 0 for x in xs):
        raise ValueError(f"geomean needs positive numbers, got {xs}")
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def median(rec, impl):
    return rec["results"].get(impl, {}).get("median_ms")


def cells(run):
    """Per cell, in grid order: {cell, fwd: (triton, official, ratio), fwd+bwd: (...)} with None where
    an implementation was not timed."""
    out = {}
    for rec in run["selective_scan"]:
        row = out.setdefault(cell_key(rec), {"cell": dict(zip(CELL, cell_key(rec)))})
        t, o = median(rec, "triton"), median(rec, "official")
        row[rec["pass_"]] = (t, o, t / o if t is not None and o is not None else None)
    return list(out.values())


def targets(run, t=TARGETS):
    """Geometric means of the Triton / official ratios and the cells that miss each target."""
    rows = cells(run)
    fwd = [r["fwd"][2] for r in rows if r.get("fwd", (None,) * 3)[2] is not None]
    fb = [r["fwd+bwd"][2] for r in rows if r.get("fwd+bwd", (None,) * 3)[2] is not None]
    res = {"cells": len(rows), "fwd_ratios": len(fwd), "fwd+bwd_ratios": len(fb),
           "fwd_geomean": geomean(fwd), "fwd+bwd_geomean": geomean(fb),
           "fwd_misses": [r["cell"] for r in rows if r.get("fwd", (None,) * 3)[2] is not None
                          and r["fwd"][2] > t["fwd_cell"]],
           "fwd+bwd_misses": [r["cell"] for r in rows if r.get("fwd+bwd", (None,) * 3)[2] is not None
                              and r["fwd+bwd"][2] > t["fwd+bwd_cell"]]}
    res["fwd_geomean_met"] = res["fwd_geomean"] is not None and res["fwd_geomean"] <= t["fwd_geomean"]
    res["all_met"] = (res["fwd_geomean_met"] and not res["fwd_misses"] and not res["fwd+bwd_misses"]
                      and len(fwd) == len(rows) and len(fb) == len(rows))
    return res


def per_element(run, pass_, impl="triton"):
    """(axis value, ns per element of batch·dim·L) along the run's sweep axis, in increasing order."""
    axis = run["grid"].get("sweep")
    if axis is None:
        raise ValueError("per_element needs a sweep result (its grid names a 'sweep' axis)")
    pts = []
    for rec in run["selective_scan"]:
        ms = median(rec, impl)
        if rec["pass_"] == pass_ and ms is not None:
            pts.append((rec[axis], ms * 1e6 / (rec["batch"] * rec["dim"] * rec["L"])))
    return sorted(pts)


def worst_step(points):
    """The largest ratio of a point's time per element to the previous (smaller) point's, as
    (ratio, smaller value, larger value); None with fewer than two points."""
    steps = [(b[1] / a[1], a[0], b[0]) for a, b in zip(points, points[1:])]
    return max(steps) if steps else None


def agreement_worst(run, key):
    """Worst per-entry error per cell for one comparison (e.g. 'triton_vs_official')."""
    return {tuple(a[k] for k in CELL): a[key]["worst_entry"] for a in run.get("agreement", []) if key in a}


def fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


def grid_markdown(run):
    e = run["environment"]
    lines = [f"### {run.get('grid', {}).get('name', 'run')}: {e['gpu']}, torch {e['torch']}, Triton {e['triton']}, {e['date']}", "",
             "| batch | dim | L | N | dtype | z | Triton fwd ms | official fwd ms | fwd ratio | Triton fwd+bwd ms "
             "| official fwd+bwd ms | fwd+bwd ratio | worst entry err vs official | vs oracle |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    off = agreement_worst(run, "triton_vs_official")
    ora = agreement_worst(run, "triton_vs_oracle")
    t = TARGETS
    for r in cells(run):
        c = r["cell"]
        f, fb = r.get("fwd", (None,) * 3), r.get("fwd+bwd", (None,) * 3)
        k = tuple(c[x] for x in CELL)
        mark_f = " **miss**" if f[2] is not None and f[2] > t["fwd_cell"] else ""
        mark_b = " **miss**" if fb[2] is not None and fb[2] > t["fwd+bwd_cell"] else ""
        lines.append(f"| {c['batch']} | {c['dim']} | {c['L']} | {c['N']} | {c['dtype']} | {'yes' if c['z'] else 'no'} "
                     f"| {fmt(f[0])} | {fmt(f[1])} | {fmt(f[2], '.2f')}{mark_f} | {fmt(fb[0])} | {fmt(fb[1])} "
                     f"| {fmt(fb[2], '.2f')}{mark_b} | {fmt(off.get(k), '.1e')} | {fmt(ora.get(k), '.1e')} |")
    s = targets(run)
    lines += ["", f"Geometric mean of Triton / official: forward {fmt(s['fwd_geomean'], '.3f')} "
                  f"(target <= {t['fwd_geomean']}: {'met' if s['fwd_geomean_met'] else 'missed'}), "
                  f"forward+backward {fmt(s['fwd+bwd_geomean'], '.3f')}; ratios in {s['fwd_ratios']} / "
                  f"{s['fwd+bwd_ratios']} of {s['cells']} cells.",
              f"Cells over {t['fwd_cell']} forward: {len(s['fwd_misses'])}; over {t['fwd+bwd_cell']} "
              f"forward+backward: {len(s['fwd+bwd_misses'])}.  All targets met: {'yes' if s['all_met'] else 'no'}."]
    for name in ("fwd_misses", "fwd+bwd_misses"):
        for c in s[name]:
            lines.append(f"- {name.split('_')[0]} miss: {tuple(c[x] for x in CELL)}")
    return "\n".join(lines)


def sweep_markdown(run):
    axis = run["grid"]["sweep"]
    lines = [f"### {run['grid']['name']}: Triton time per element along {axis}", ""]
    for pass_ in run["grid"].get("passes", ["fwd", "fwd+bwd"]):
        pts = per_element(run, pass_)
        lines += [f"{pass_}:", "", f"| {axis} | ns / element | step |", "|---|---|---|"]
        prev = None
        for v, ns in pts:
            lines.append(f"| {v} | {ns:.4f} | {fmt(ns / prev if prev else None, '.2f')} |")
            prev = ns
        w = worst_step(pts)
        if w:
            ok = w[0] <= TARGETS["sweep_step"]
            lines += ["", f"Worst step {w[0]:.2f} ({axis} {w[1]} -> {w[2]}; target <= {TARGETS['sweep_step']}: "
                          f"{'met' if ok else 'missed'}).", ""]
    return "\n".join(lines)


def markdown(run):
    return sweep_markdown(run) if run.get("grid", {}).get("sweep") else grid_markdown(run)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", type=pathlib.Path)
    args = ap.parse_args(argv)
    for p in args.results:
        print(markdown(json.loads(p.read_text())))
        print()


if __name__ == "__main__":
    main()
