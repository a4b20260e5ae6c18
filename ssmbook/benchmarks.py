"""The measured GPU benchmarks of the selective scan, shipped with the package, and the chapter-6 figures.

``benchmark_results()`` returns the committed runs (``ssmbook/data/benchmarks/*.json``, written by the
repository's ``benchmarks/bench_selective_scan.py`` on the GPU machine), so that chapter 6 draws its
measured figures wherever the package is installed (Colab included); the plotting and table helpers
below read those runs.  The numbers come only from the JSON files.
"""
from __future__ import annotations

import functools
import inspect
import json
import pathlib

from . import _checks

# The committed runs, package data (pyproject: [tool.setuptools.package-data]).
RESULTS = pathlib.Path(__file__).resolve().parent / "data" / "benchmarks"

__all__ = [
    "COLORS",
    "LABELS",
    "ORDER",
    "RESULTS",
    "benchmark_results",
    "floor_factors",
    "label",
    "load_results",
    "markdown_ratio_table",
    "markdown_summary",
    "median",
    "plot_bandwidth",
    "plot_time_per_token",
    "plot_time_per_token_channel",
    "ratio_table",
    "records",
]

ORDER = ["triton", "official", "torch", "torch_parallel_scan", "oracle"]
COLORS = {"triton": "#1f5fa8", "official": "#d1495b", "torch": "#2e933c", "torch_parallel_scan": "#edae49",
          "oracle": "#66456b"}
LABELS = {"triton": "Triton kernel (ssmbook)", "official": "official CUDA (mamba_ssm)",
          "torch": "torch path (ssmbook)", "torch_parallel_scan": "torch parallel scan", "oracle": "torch loop oracle"}


PASSES = ("fwd", "fwd+bwd")
DTYPES = ("float32", "bfloat16", "float16")


def _check_arguments(fn):
    """Check the arguments these helpers share, by name, before ``fn`` runs: a clear error that
    names the argument instead of a KeyError deep inside a table or a plot."""
    sig = inspect.signature(fn)

    def check(name, v):
        if name == "run":
            if not isinstance(v, dict) or "environment" not in v or "selective_scan" not in v:
                raise _checks.ArgumentTypeError("run must be one benchmark run (a dict with 'environment' and "
                                f"'selective_scan', from benchmark_results()), got {type(v).__name__}")
        elif name == "rec":
            if not isinstance(v, dict) or "results" not in v:
                raise _checks.ArgumentTypeError(f"rec must be one record of run['selective_scan'], got {type(v).__name__}")
        elif name in ("impl", "num", "den"):
            _checks.one_of(v, name, ORDER)
        elif name == "impls":
            if isinstance(v, str) or not all(i in ORDER for i in v) or not len(v):
                raise ValueError(f"impls must be a non-empty sequence of names from {ORDER}, got {v!r}")
        elif name == "pass_":
            _checks.one_of(v, name, PASSES)
        elif name == "dtype" and v is not None:
            _checks.one_of(v, name, DTYPES)
        elif name in ("device_only", "graphs", "z"):
            _checks.flag(v, name, none_ok=name == "z")
        elif name == "N" and v is not None:
            _checks.positive_int(v, name)
        elif name == "shape":
            if not isinstance(v, (tuple, list)) or len(v) != 4:
                raise ValueError(f"shape must be (batch, dim, L, N), four positive ints, got {v!r}")
            for i, (part, x) in enumerate(zip(("batch", "dim", "L", "N"), v)):
                _checks.positive_int(x, f"shape[{i}] ({part})")
        elif name == "ax":
            if not (hasattr(v, "plot") and hasattr(v, "set_xlabel")):
                raise _checks.ArgumentTypeError(f"ax must be a matplotlib Axes, got {type(v).__name__}")

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        for name, v in bound.arguments.items():
            check(name, v)
        return fn(*args, **kwargs)

    return wrapper


@_check_arguments
def load_results(folder=RESULTS, device_only=True):
    """Every results JSON in ``folder`` (default: the results shipped with the package), GPU runs
    only by default, newest first."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise ValueError(f"folder must be a directory of benchmark JSON files, got {str(folder)!r}")
    runs = []
    for p in sorted(folder.glob("*.json")):
        r = json.loads(p.read_text())
        if device_only and r.get("environment", {}).get("device") != "cuda":
            continue
        r["_path"] = str(p)
        runs.append(r)
    runs.sort(key=lambda r: r["environment"]["date"], reverse=True)
    return runs


@_check_arguments
def benchmark_results(device_only=True):
    """The committed GPU benchmark runs of the selective scan (package data), newest first.

    Each run is the JSON written by the repository's ``benchmarks/bench_selective_scan.py`` on a GPU:
    ``environment`` (GPU, versions, date), ``copy_bandwidth``, ``selective_scan`` (one record per
    shape, dtype, z and pass with the median time of every implementation), ``time_per_token``.
    """
    return load_results(RESULTS, device_only=device_only)


@_check_arguments
def label(run):
    e = run["environment"]
    return f"{e['gpu']}, {e['date'][:10]} (torch {e['torch']}, Triton {e['triton']})"


@_check_arguments
def records(run, pass_="fwd", dtype=None, z=None, N=None):
    out = []
    for r in run["selective_scan"]:
        if r["pass_"] != pass_ or (dtype and r["dtype"] != dtype) or (z is not None and r["z"] != z):
            continue
        if N is not None and r["N"] != N:
            continue
        out.append(r)
    return out


@_check_arguments
def median(rec, impl):
    return rec["results"].get(impl, {}).get("median_ms")


@_check_arguments
def ratio_table(run, num="triton", den="official"):
    """Rows (shape, dtype, z, pass, num ms, den ms, num / den) for every record where both were timed."""
    rows = []
    for r in run["selective_scan"]:
        a, b = median(r, num), median(r, den)
        if a is None or b is None:
            continue
        rows.append(dict(shape=(r["batch"], r["dim"], r["L"], r["N"]), dtype=r["dtype"], z=r["z"],
                         pass_=r["pass_"], num_ms=a, den_ms=b, ratio=a / b))
    return rows


@_check_arguments
def markdown_ratio_table(run, num="triton", den="official"):
    rows = ratio_table(run, num, den)
    lines = [f"| (B, D, L, N) | dtype | z | pass | {num} ms | {den} ms | {num} / {den} |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['shape']} | {r['dtype']} | {'yes' if r['z'] else 'no'} | {r['pass_']} | "
                     f"{r['num_ms']:.3f} | {r['den_ms']:.3f} | {r['ratio']:.2f} |")
    return "\n".join(lines)


@_check_arguments
def plot_time_per_token_channel(ax, run, dtype="float32", pass_="fwd"):
    """Time per (batch · L) token and channel, against L, for the N = 16 shapes (log-log)."""
    recs = sorted(records(run, pass_, dtype, z=False, N=16), key=lambda r: r["L"])
    for impl in ORDER:
        pts = [(r["L"], median(r, impl) * 1e6 / (r["batch"] * r["L"] * r["dim"]))
               for r in recs if median(r, impl) is not None]
        if pts:
            ax.plot(*zip(*pts), "o-", color=COLORS[impl], label=LABELS[impl])
    floors = [(r["L"], r["hbm_floor_ms"] * 1e6 / (r["batch"] * r["L"] * r["dim"])) for r in recs]
    ax.plot(*zip(*floors), "k--", lw=1, label="HBM floor")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("ns per token per channel")
    ax.set_title(f"{pass_}, {dtype}, N = 16, no z")


@_check_arguments
def plot_bandwidth(ax, run, impls=("triton", "official"), pass_="fwd"):
    """Effective bandwidth (fewest bytes / time) of each configuration against the copy bandwidth."""
    recs = records(run, pass_, z=False)
    names = [f"L={r['L']}\nN={r['N']}\n{'bf16' if r['dtype'] == 'bfloat16' else 'fp32'}" for r in recs]
    width = 0.8 / len(impls)
    for k, impl in enumerate(impls):
        vals = [r["results"].get(impl, {}).get("GBps_effective", 0.0) for r in recs]
        ax.bar([i + k * width for i in range(len(recs))], vals, width, color=COLORS[impl], label=LABELS[impl])
    bw = run["copy_bandwidth"]["GBps"]
    ax.axhline(bw, color="k", ls="--", lw=1, label=f"measured copy bandwidth {bw:.0f} GB/s")
    # the exp-unit floor, as a bandwidth: bytes / max(HBM floor, exp floor)
    cap = [r["bytes_min"] / (max(r["hbm_floor_ms"], r["exp_floor_ms"] or 0) * 1e-3) / 1e9 for r in recs]
    ax.plot([i + 0.4 - width / 2 for i in range(len(recs))], cap, "kv", ms=5,
            label="ceiling from max(HBM, exp) floor")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(recs))], names, fontsize=7)
    ax.set_ylabel("effective GB/s")
    ax.set_title(f"{pass_}, no z: fewest bytes / measured time")


def _plain_log_ticks(ax):
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())


@_check_arguments
def plot_time_per_token(ax, run, graphs=True):
    t = run["time_per_token"]
    ctx = t["context"]
    ax.plot(ctx, t["mamba_ms"], "o-", color=COLORS["triton"], label="Mamba, recurrent step (eager)")
    ax.plot(ctx, t["attention_ms"], "s-", color=COLORS["official"], label="attention + KV cache (eager)")
    if graphs and all(v is not None for v in t.get("mamba_graph_ms", [None])):
        ax.plot(ctx, t["mamba_graph_ms"], "o--", color=COLORS["triton"], label="Mamba, CUDA graph")
        ax.plot(ctx, t["attention_graph_ms"], "s--", color=COLORS["official"], label="attention, CUDA graph")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context length (tokens already seen)")
    ax.set_ylabel("ms per generated token")
    _plain_log_ticks(ax)
    c = t["config"]
    ax.set_title(f"batch {c['batch']}, d_model {c['d_model']}, {c['n_layer']} layers")


@_check_arguments
def floor_factors(run, shape=(8, 2048, 4096, 16), dtype="float32", pass_="fwd", z=False):
    """For one configuration: {impl: (median ms, median / max(HBM floor, exp floor))}."""
    for r in run["selective_scan"]:
        if (r["batch"], r["dim"], r["L"], r["N"]) == tuple(shape) and r["dtype"] == dtype \
                and r["pass_"] == pass_ and r["z"] == z:
            floor = max(r["hbm_floor_ms"], r["exp_floor_ms"] or 0.0)
            return {k: (v["median_ms"], v["median_ms"] / floor) for k, v in r["results"].items()
                    if "median_ms" in v}
    return {}


@_check_arguments
def markdown_summary(run):
    """The measured numbers of one run as markdown (for NOTES.md): machine, ceilings, and the
    Triton / official ratio for every shape, dtype, z and pass, beside both floors."""
    e = run["environment"]
    lines = [f"Machine: {e['gpu']}, driver {e.get('driver')}, CUDA {e.get('cuda')}, torch {e['torch']}, "
             f"Triton {e['triton']}, {e['date']}; {e.get('sm_count')} SMs, max SM clock "
             f"{e.get('sm_clock_max_MHz')} MHz.",
             f"Measured copy bandwidth {run['copy_bandwidth']['GBps']:.0f} GB/s (bytes read + written)."]
    ex = run.get("exp_throughput") or {}
    if "per_s" in ex:
        lines.append(f"Measured exp2 throughput {ex['per_s'] / 1e12:.2f}e12 per s.")
    lines.append("")
    head = "| (B, D, L, N) | dtype | z | pass | HBM floor ms | exp floor ms | " + \
        " | ".join(f"{k} ms" for k in ORDER) + " | triton / official |"
    lines += [head, "|" + "---|" * (7 + len(ORDER))]
    for r in run["selective_scan"]:
        cells = []
        for k in ORDER:
            m = median(r, k)
            cells.append(f"{m:.3f}" if m is not None else "–")
        a, b = median(r, "triton"), median(r, "official")
        ratio = f"{a / b:.2f}" if a is not None and b is not None else "–"
        lines.append(f"| {(r['batch'], r['dim'], r['L'], r['N'])} | {r['dtype']} | {'yes' if r['z'] else 'no'} | "
                     f"{r['pass_']} | {r['hbm_floor_ms']:.3f} | {(r['exp_floor_ms'] or 0):.3f} | "
                     + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)
