"""The benchmark scripts on a CPU: grid files, the grid driver, the tuning driver, the report, the floors."""
import json
import math
import pathlib
import subprocess
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_selective_scan as bench
import common
import official
import report
import time_per_token
import tune

from ssmbook import benchmarks as book_benchmarks
from ssmbook.selective import selective_scan, selective_scan_ref

GRIDS = ROOT / "benchmarks" / "grids"
KERNEL_CONFIG_FIELDS = {"forward", "loop_block_d", "unroll", "fwd_warps", "bwd_warps", "backward",
                        "bwd_loop_block_d", "bwd_unroll", "bwd_loop_t", "packed_bc", "cache_hints", "segments",
                        "bwd_segments"}


def is_pow2(n):
    return n & (n - 1) == 0


# --- grid files ---
@pytest.mark.parametrize("path", sorted(GRIDS.glob("*.json")), ids=lambda p: p.stem)
def test_every_grid_file_is_valid(path):
    grid = bench.load_grid(path)
    assert grid["name"] == path.stem
    assert grid["cells"] and grid["description"]


def test_mamba_grid_spans_the_ranges_and_fits_five_minutes():
    grid = bench.load_grid("mamba")
    cells = grid["cells"]
    assert 24 <= len(cells) <= 40
    get = lambda k: {c[k] for c in cells}
    assert min(get("batch")) == 1 and max(get("batch")) == 32
    assert min(get("dim")) == 768 and max(get("dim")) == 5120
    assert min(get("L")) == 256 and max(get("L")) == 16384
    assert sum(not is_pow2(L) for L in get("L")) >= 3
    assert get("N") == {16, 64} and get("dtype") == {"float32", "bfloat16"} and get("z") == {False, True}
    assert grid["delta_softplus"] is True
    assert set(grid["impls"]) == {"triton", "official"} and grid["passes"] == ["fwd", "fwd+bwd"]
    assert grid["timing"] == {"warmup_ms": 25, "rep_ms": 100}
    # every dtype x z combination at N = 16 and N = 64; no cell too big for the H200 with both kernels
    assert {(c["dtype"], c["z"], c["N"]) for c in cells} == {(d, z, n) for d in get("dtype") for z in (0, 1)
                                                           for n in (16, 64)}
    assert max(c["batch"] * c["dim"] * c["L"] for c in cells) <= 2 ** 27
    assert 60 < bench.estimate_seconds(grid) <= 300
    assert 5 <= len(bench.oracle_cells(grid)) < len(cells)


@pytest.mark.parametrize("name, axis, lo, hi, steps", [("sweep_L", "L", 256, 16384, 14), ("sweep_batch", "batch", 1, 32, 8)])
def test_sweeps_span_their_axis(name, axis, lo, hi, steps):
    grid = bench.load_grid(name)
    vals = [c[axis] for c in grid["cells"]]
    assert grid["sweep"] == axis and grid["impls"] == ["triton"] and grid["passes"] == ["fwd", "fwd+bwd"]
    assert vals == sorted(set(vals)) and vals[0] == lo and vals[-1] == hi and len(vals) >= steps
    assert any(not is_pow2(v) for v in vals)
    assert bench.estimate_seconds(grid) < 120


@pytest.mark.parametrize("change, match", [
    (lambda g: g["cells"][0].pop("z"), "exactly the keys"),
    (lambda g: g["cells"][0].update(L=0), "L must be a positive int"),
    (lambda g: g["cells"][0].update(dtype="fp8"), "dtype must be"),
    (lambda g: g["cells"][0].update(z=1), "z must be a bool"),
    (lambda g: g.update(impls=["cuda"]), "unknown implementations"),
    (lambda g: g.update(sweep="L"), "keep every other size fixed"),
    (lambda g: g.update(oracle={"every": 0, "max_L": 1, "channels": 1}), "'oracle' must be"),
    (lambda g: g.update(cells=[]), "non-empty list"),
])
def test_load_grid_rejects_bad_grids(tmp_path, change, match):
    grid = json.loads((GRIDS / "tiny.json").read_text())
    change(grid)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(grid))
    with pytest.raises(ValueError, match=match):
        bench.load_grid(p)
    with pytest.raises(FileNotFoundError, match="no-such-grid"):
        bench.load_grid("no-such-grid")


# --- the grid driver ---
@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "cpu.json"
    bench.main(["--grid", "tiny", "--device", "cpu", "--impls", "torch,oracle,official", "--out", str(out)])
    return json.loads(out.read_text()), out


def test_driver_runs_the_tiny_grid_on_cpu(cpu_run):
    res, _ = cpu_run
    grid = bench.load_grid("tiny")
    assert res["complete"] is True and res["grid"]["name"] == "tiny"
    assert "needs a CUDA GPU" in res["skipped_implementations"]["official"]
    assert res["copy_bandwidth"]["GBps"] > 0 and res["environment"]["torch"]
    recs = res["selective_scan"]
    assert len(recs) == len(grid["cells"]) * 2
    assert [(r["L"], r["pass_"]) for r in recs] == [(c["L"], p) for c in grid["cells"] for p in ("fwd", "fwd+bwd")]
    for rec in recs:
        assert set(rec["results"]) == {"torch", "oracle"}
        for name, r in rec["results"].items():
            assert r["median_ms"] > 0, (name, r)
        assert rec["hbm_floor_ms"] > 0 and "ratio" not in rec
    assert len(res["agreement"]) == len(grid["cells"])
    for a in res["agreement"]:
        e = a["torch_vs_oracle"]
        tol = 1e-5 if a["dtype"] == "float32" else 3e-2
        assert e["worst_entry"] < tol and e["out_norm"] < tol
        names = {"out", "du", "ddelta", "dA", "dB", "dC", "dD", "ddelta_bias"} | ({"dz"} if a["z"] else set())
        assert set(e["entry"]) == names


def test_driver_output_is_what_chapter_6_reads(cpu_run):
    _, path = cpu_run
    runs = book_benchmarks.load_results(path.parent, device_only=False)
    assert len(runs) == 1 and book_benchmarks.load_results(path.parent) == []
    rows = book_benchmarks.ratio_table(runs[0], "torch", "oracle")
    assert len(rows) == len(runs[0]["selective_scan"])
    rec = runs[0]["selective_scan"][0]
    assert rows[0]["ratio"] == pytest.approx(rec["results"]["torch"]["median_ms"] / rec["results"]["oracle"]["median_ms"])


def test_wrong_implementation_is_caught_not_timed(tmp_path, monkeypatch):
    def broken(**kw):
        return selective_scan_ref(**kw) * 1.01

    monkeypatch.setattr(bench, "implementations", lambda device, off, want: {"broken": broken})
    grid = json.loads((GRIDS / "tiny.json").read_text())
    for c in grid["cells"]:
        c["dtype"] = "float32"           # 1 % is inside bfloat16's tolerance, far outside float32's
    (tmp_path / "g.json").write_text(json.dumps(grid))
    out = tmp_path / "b.json"
    bench.main(["--grid", str(tmp_path / "g.json"), "--device", "cpu", "--impls", "torch", "--out", str(out)])
    res = json.loads(out.read_text())
    for rec in res["selective_scan"]:
        r = rec["results"]["broken"]
        assert "median_ms" not in r
        assert r["skipped"].startswith("relative error" if rec["pass_"] == "fwd" else "gradient relative error")
    assert all(a["broken_vs_oracle"]["out_norm"] == pytest.approx(0.01, rel=0.05) for a in res["agreement"])


@pytest.mark.parametrize("with_z", [False, True])
def test_masked_gradient_makes_the_full_cell_match_the_sliced_oracle(with_z):
    """The gradients of the full problem with the output's gradient zero outside the slice equal
    the oracle's gradients of the sliced problem (in float64, to rounding)."""
    kw = {k: (v.double() if isinstance(v, torch.Tensor) else v)
          for k, v in common.make_inputs(3, 7, 29, 5, torch.float64, with_z, "cpu", seed=4).items()}
    dout = torch.randn(kw["u"].shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref_out, ref_grads, masked = bench.oracle_reference(kw, dout, ch=3)
    assert masked[1:].abs().sum() == 0 and masked[:1, 3:].abs().sum() == 0
    out, grads = common.outputs_and_grads(lambda **k: selective_scan(**k, backend="torch"), kw, masked)
    e = bench.errors(out, grads, ref_out, ref_grads, view=lambda k, t: bench.on_slice(k, t, 3))
    assert e["worst_entry"] < 1e-10
    # a wrong slice is caught: channel 1 compared as if it were channel 0
    bad = bench.errors(out, grads, ref_out, ref_grads, view=lambda k, t: bench.on_slice(k, t, 4)[..., 1:4, :]
                       if k in ("out", "u", "delta", "z") else bench.on_slice(k, t, 3))
    assert bad["worst_entry"] > 1e-2


def test_time_per_token_on_cpu():
    tok = time_per_token.bench_time_per_token([4, 16], "cpu", lambda m: None, batch=2, d_model=16, n_layer=2)
    assert tok["context"] == [4, 16] and len(tok["mamba_ms"]) == len(tok["attention_ms"]) == 2
    assert tok["kv_cache_MB"][-1] > tok["kv_cache_MB"][0]          # the KV cache grows with the context
    assert tok["mamba_state_MB"][-1] == tok["mamba_state_MB"][0]   # the Mamba state does not


# --- the tuning driver ---
def tiny_tuning_grid(tmp_path, **extra):
    g = {"name": "t", "description": "two entries", "official": True, "entries": [
        {"pass": "fwd", "shape": [1, 4, 9, 3], "dtype": "float32", "z": False, "config": {"forward": "loop"}},
        {"pass": "fwd+bwd", "shape": [2, 4, 17, 3], "dtype": "bfloat16", "z": True, "config": {},
         "call": {"block_t": 16}}], **extra}
    p = tmp_path / "tg.json"
    p.write_text(json.dumps(g))
    return p


def test_tune_runs_a_tiny_grid_with_the_torch_path(tmp_path):
    out = tmp_path / "o.json"
    res = tune.main([str(tiny_tuning_grid(tmp_path)), "--out", str(out), "--impl", "torch", "--device", "cpu",
                     "--warmup-ms", "1", "--rep-ms", "5"])
    assert res["complete"] and not res["official_loaded"] and json.loads(out.read_text()) == res
    assert [r["index"] for r in res["rows"]] == [0, 1]
    assert all(r["ms"] > 0 and r["variant"] == "torch" and "error" not in r for r in res["rows"])


def test_tune_rejects_bad_entries(tmp_path):
    p = tiny_tuning_grid(tmp_path)
    g = json.loads(p.read_text())
    g["entries"][1]["pass"] = "bwd"
    p.write_text(json.dumps(g))
    with pytest.raises(ValueError, match="entry 1: pass must be one of"):
        tune.load_tuning_grid(p)
    g["entries"][1].update({"pass": "fwd", "call": {"block_n": 4}})
    p.write_text(json.dumps(g))
    with pytest.raises(ValueError, match="call may only set"):
        tune.load_tuning_grid(p)


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks" / "archive" / "grids").glob("*.json")), ids=lambda p: p.stem)
def test_archived_tuning_grids_use_kernel_config_fields(path):
    grid = tune.load_tuning_grid(path)
    for e in grid["entries"]:
        assert set(e["config"]) <= KERNEL_CONFIG_FIELDS, (path.name, e)


def test_tune_runs_triton_variants_in_the_interpreter(tmp_path):
    ks = pytest.importorskip("ssmbook.kernels.selective_scan")
    if not hasattr(ks, "KernelConfig"):
        pytest.skip("the kernels package has no KernelConfig")
    assert set(f.name for f in __import__("dataclasses").fields(ks.KernelConfig)) == KERNEL_CONFIG_FIELDS
    res = tune.main([str(tiny_tuning_grid(tmp_path)), "--out", str(tmp_path / "o.json"), "--device", "cpu",
                     "--warmup-ms", "0", "--rep-ms", "0"])
    assert all(r["ms"] > 0 and "error" not in r for r in res["rows"]), res["rows"]


# --- the report, on synthetic results ---
def synthetic_run(ratios, sweep=None):
    """One record per (cell, pass) with official = 1 ms and triton = the given ratio."""
    recs = []
    for i, (rf, rb) in enumerate(ratios):
        for pass_, r in (("fwd", rf), ("fwd+bwd", rb)):
            res = {"official": {"median_ms": 1.0}}
            res["triton"] = {"median_ms": r} if r is not None else {"skipped": "x"}
            recs.append(dict(batch=1 + i if sweep == "batch" else 2, dim=8, L=64 if sweep == "batch" else 64 * (i + 1),
                             N=16, dtype="float32", z=False, pass_=pass_, results=res))
    env = dict(gpu="g", torch="t", triton="tr", date="d")
    return {"environment": env, "grid": {"name": "syn", "sweep": sweep, "passes": ["fwd", "fwd+bwd"]},
            "selective_scan": recs, "agreement": []}


def test_report_geomeans_and_targets():
    run = synthetic_run([(0.4, 0.9), (0.5, 1.2), (0.8, 0.7)])
    s = report.targets(run)
    assert s["fwd_geomean"] == pytest.approx((0.4 * 0.5 * 0.8) ** (1 / 3))
    assert s["fwd+bwd_geomean"] == pytest.approx((0.9 * 1.2 * 0.7) ** (1 / 3))
    assert s["fwd_geomean"] > 0.5 and not s["fwd_geomean_met"]
    assert [c["L"] for c in s["fwd_misses"]] == [192] and len(s["fwd+bwd_misses"]) == 1 and not s["all_met"]
    good = report.targets(synthetic_run([(0.4, 0.9), (0.5, 1.0), (0.6, 0.3)]))
    assert good["fwd_geomean_met"] and not good["fwd_misses"] and not good["fwd+bwd_misses"] and good["all_met"]
    missing = report.targets(synthetic_run([(0.4, 0.9), (None, 1.0)]))
    assert missing["fwd_ratios"] == 1 and not missing["all_met"]   # an untimed cell is not a pass
    md = report.grid_markdown(run)
    assert md.count("**miss**") == 2 and "Geometric mean" in md
    assert report.geomean([2.0, 8.0]) == pytest.approx(4.0) and report.geomean([]) is None
    with pytest.raises(ValueError, match="positive"):
        report.geomean([1.0, 0.0])


def test_report_finds_the_worst_sweep_step():
    # time per element: 1, 0.5, 0.5, 0.75 (a cliff of 1.5), 0.75
    run = synthetic_run([(t * (i + 1), t * (i + 1)) for i, t in enumerate([1, 0.5, 0.5, 0.75, 0.75])], sweep="L")
    pts = report.per_element(run, "fwd")
    assert [p[0] for p in pts] == [64, 128, 192, 256, 320]
    ratio, a, b = report.worst_step(pts)
    assert ratio == pytest.approx(1.5) and (a, b) == (192, 256)
    md = report.sweep_markdown(run)
    assert "Worst step 1.50" in md and "missed" in md
    flat = synthetic_run([(1.0 * (i + 1), 1.0 * (i + 1)) for i in range(4)], sweep="batch")
    assert report.worst_step(report.per_element(flat, "fwd+bwd"))[0] == pytest.approx(1.0)
    assert report.worst_step([(1, 1.0)]) is None
    with pytest.raises(ValueError, match="sweep"):
        report.per_element(synthetic_run([(1, 1)]), "fwd")


def test_report_cli_prints_the_tables(cpu_run):
    _, path = cpu_run
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "report.py"), str(path)],
                         capture_output=True, text=True, check=True).stdout
    assert "### tiny" in out and out.count("| 1 | 8 | 1 | 4 |") == 1


# --- pieces of common.py and official.py ---
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_z", [False, True])
def test_min_bytes_by_hand(dtype, with_z):
    b, d, L, N = 2, 3, 5, 7
    e = 4 if dtype == torch.float32 else 2
    seq, bc = b * d * L * e, b * N * L * e
    fwd = seq * (3 + with_z) + 2 * bc          # u, delta, [z], out; B, C
    bwd = seq * (3 + with_z) + 2 * bc + seq * (2 + with_z) + 2 * bc   # dout, u, delta, [z], B, C; du, ddelta, [dz], dB, dC
    assert common.min_bytes(b, d, L, N, dtype, with_z, False) == fwd
    assert common.min_bytes(b, d, L, N, dtype, with_z, True) == fwd + bwd
    assert common.exp_count(b, d, L, N, False) == b * d * L * N
    assert common.exp_count(b, d, L, N, True) == 2 * b * d * L * N
    hbm, ex = common.floors_ms(b, d, L, N, dtype, with_z, True, 1.0, 1e9)
    assert hbm == pytest.approx((fwd + bwd) / 1e9 * 1e3) and ex == pytest.approx(2 * b * d * L * N / 1e9 * 1e3)


@pytest.mark.parametrize("shape", [(1, 3, 1, 2), (2, 5, 13, 3), (1, 4, 64, 16)])
@pytest.mark.parametrize("with_z", [False, True])
def test_torch_parallel_scan_matches_oracle(shape, with_z):
    kw = common.make_inputs(*shape, torch.float64, with_z, "cpu", seed=sum(shape))
    torch.testing.assert_close(bench.torch_parallel_scan(**kw), selective_scan_ref(**kw))


def test_peak_bytes_ranks_the_memory_hogs():
    full = (8, 2048, 4096, 64)
    limit = 48 * 2**30
    assert bench.peak_bytes("torch_parallel_scan", *full, False) > limit
    assert bench.peak_bytes("torch_parallel_scan", 8, 2048, 1024, 16, False) < limit
    assert bench.peak_bytes("triton", *full, True) == 0


def test_split_and_join_roundtrip(tmp_path):
    import gzip

    payload = bytes(range(256)) * 1000
    gz = tmp_path / "x.so.gz"
    gz.write_bytes(gzip.compress(payload))
    parts = official.split_file(gz, tmp_path / "parts", chunk=1000)
    assert len(parts) > 1
    dest = official.join_parts(tmp_path / "parts", tmp_path / "out" / "x.so")
    assert dest.read_bytes() == payload
    with pytest.raises(FileNotFoundError, match="no selective_scan_cuda.so.part"):
        official.join_parts(tmp_path / "nothing", tmp_path / "y.so")


def test_rel_err_handles_zero_reference():
    assert common.rel_err(torch.zeros(3), torch.zeros(3)) == 0.0
    assert common.rel_err(torch.ones(4), torch.zeros(4)) == pytest.approx(2.0)
    assert common.rel_err(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 2.0])) == pytest.approx(1 / 5 ** 0.5)


def test_entry_err_sees_a_wrong_small_entry_that_the_norm_hides():
    ref = torch.tensor([1000.0, 1.0, 0.0])
    out = torch.tensor([1000.0, 2.0, 0.0])          # the small entry is wrong by 100 %
    assert common.rel_err(out, ref) < 1e-3
    assert common.entry_err(out, ref) == pytest.approx(1.0 / (1.0 + 1.0), rel=1e-6)   # floor 1e-3 · 1000
    assert common.entry_err(out, ref, floor=0.0) == pytest.approx(1.0)
    assert common.entry_err(torch.zeros(2), torch.zeros(2)) == 0.0
    assert math.isfinite(common.entry_err(torch.tensor([1e-30, 0.0]), torch.tensor([0.0, 0.0])))
    with pytest.raises(ValueError, match="shape"):
        common.entry_err(torch.zeros(2), torch.zeros(3))


def test_make_inputs_is_fresh_and_valid():
    a = common.make_inputs(2, 4, 9, 3, torch.float32, True, "cpu", seed=1)
    b = common.make_inputs(2, 4, 9, 3, torch.float32, True, "cpu", seed=2)
    assert not torch.equal(a["u"], b["u"])
    assert (a["A"] < 0).all() and a["u"].abs().sum() > 0 and a["delta_softplus"] is True
    assert a["B"].shape == (2, 3, 9) and a["z"].shape == (2, 4, 9)
    h = common.make_inputs(2, 4, 9, 3, torch.bfloat16, False, "cpu", seed=1)
    assert h["u"].dtype == torch.bfloat16 and h["A"].dtype == torch.float32 and h["z"] is None


def test_bench_ms_on_cpu_is_a_positive_median():
    calls = []
    ms = common.bench_ms(lambda: calls.append(1), "cpu", rep_ms=1)
    assert ms >= 0 and 2 <= len(calls) <= 6


def test_device_script_is_valid_bash_and_writes_few_files():
    script = ROOT / "benchmarks" / "device_run.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    for name in ("mamba", "sweep_L", "sweep_batch"):
        assert "$OUT/results/" in text and (name in text)
    assert "official.py build" in text and "report.py" in text
