"""The benchmark script runs end to end on a CPU at a tiny size (so that it cannot rot); no speed asserts."""
import json
import pathlib
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_selective_scan as bench  # noqa: E402
import official  # noqa: E402
import report  # noqa: E402

from ssmbook.selective import selective_scan_ref  # noqa: E402


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "cpu.json"
    bench.main(["--size", "tiny", "--device", "cpu", "--dtypes", "float32,bfloat16",
                "--impls", "torch,torch_parallel_scan,oracle,official", "--out", str(out)])
    return out


def test_cpu_run_end_to_end(cpu_run):
    res = json.loads(cpu_run.read_text())
    assert res["complete"] is True
    env = res["environment"]
    for key in ("date", "torch", "triton", "gpu"):
        assert env[key]
    assert res["copy_bandwidth"]["GBps"] > 0
    assert "needs a CUDA GPU" in res["skipped_implementations"]["official"]
    recs = res["selective_scan"]
    # every shape x dtype x z x pass, every implementation checked against the oracle, then timed
    assert len(recs) == len(bench.SIZES["tiny"]) * 2 * 2 * 2
    for rec in recs:
        assert set(rec["results"]) == {"torch", "torch_parallel_scan", "oracle"}
        for name, r in rec["results"].items():
            assert "median_ms" in r and r["median_ms"] > 0, (name, r)
            if rec["pass_"] == "fwd":
                assert r["rel_err"] < bench.TOL[getattr(torch, rec["dtype"])]
        assert rec["hbm_floor_ms"] > 0
    tok = res["time_per_token"]
    assert tok["context"] == bench.TOKEN_CONTEXTS["tiny"]
    assert len(tok["mamba_ms"]) == len(tok["attention_ms"]) == len(tok["context"])
    # the KV cache grows with the context, the Mamba state does not
    assert tok["kv_cache_MB"][-1] > tok["kv_cache_MB"][0]
    assert tok["mamba_state_MB"][-1] == tok["mamba_state_MB"][0]


def test_wrong_implementation_is_caught_not_timed(tmp_path, monkeypatch):
    def broken(**kw):
        return selective_scan_ref(**kw) * 1.01

    monkeypatch.setattr(bench, "implementations", lambda device, off, want: {"broken": broken})
    out = tmp_path / "b.json"
    bench.main(["--size", "tiny", "--device", "cpu", "--dtypes", "float32", "--no-tokens",
                "--impls", "torch", "--out", str(out)])
    recs = json.loads(out.read_text())["selective_scan"]
    for rec in recs:
        r = rec["results"]["broken"]
        assert "median_ms" not in r
        want = "relative error" if rec["pass_"] == "fwd" else "gradient check failed: 0.01"
        assert want in r["skipped"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_z", [False, True])
def test_min_bytes_by_hand(dtype, with_z):
    b, d, L, N = 2, 3, 5, 7
    e = 4 if dtype == torch.float32 else 2
    seq, bc = b * d * L * e, b * N * L * e
    fwd = seq * (3 + with_z) + 2 * bc          # u, delta, [z], out; B, C
    bwd = seq * (3 + with_z) + 2 * bc + seq * (2 + with_z) + 2 * bc   # dout, u, delta, [z], B, C; du, ddelta, [dz], dB, dC
    assert bench.min_bytes(b, d, L, N, dtype, with_z, False) == fwd
    assert bench.min_bytes(b, d, L, N, dtype, with_z, True) == fwd + bwd
    assert bench.exp_count(b, d, L, N, False) == b * d * L * N
    assert bench.exp_count(b, d, L, N, True) == 2 * b * d * L * N


@pytest.mark.parametrize("shape", [(1, 3, 1, 2), (2, 5, 13, 3), (1, 4, 64, 16)])
@pytest.mark.parametrize("with_z", [False, True])
def test_torch_parallel_scan_matches_oracle(shape, with_z):
    kw = official.random_problem(*shape, torch.float64, with_z, "cpu", seed=sum(shape))
    kw64 = {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    torch.testing.assert_close(bench.torch_parallel_scan(**kw64), selective_scan_ref(**kw64))


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
    assert official.rel_err(torch.zeros(3), torch.zeros(3)) == 0.0
    assert official.rel_err(torch.ones(4), torch.zeros(4)) == pytest.approx(2.0)
    assert official.rel_err(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 2.0])) == pytest.approx(1 / 5 ** 0.5)


def test_random_problem_is_fresh_and_valid():
    a = official.random_problem(2, 4, 9, 3, torch.float32, True, "cpu", seed=1)
    b = official.random_problem(2, 4, 9, 3, torch.float32, True, "cpu", seed=2)
    assert not torch.equal(a["u"], b["u"])
    assert (a["A"] < 0).all() and a["u"].abs().sum() > 0
    assert a["B"].shape == (2, 3, 9) and a["z"].shape == (2, 4, 9)


def test_report_reads_and_plots_a_run(cpu_run):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report.load_results(cpu_run.parent, device_only=False)
    assert len(runs) == 1 and report.load_results(cpu_run.parent) == []   # CPU runs are not GPU results
    run = runs[0]
    rows = report.ratio_table(run, "torch", "oracle")
    assert len(rows) == len(run["selective_scan"])
    for row, rec in zip(rows, run["selective_scan"]):
        assert row["ratio"] == pytest.approx(rec["results"]["torch"]["median_ms"]
                                             / rec["results"]["oracle"]["median_ms"])
    table = report.markdown_ratio_table(run, "torch", "oracle")
    assert table.count("\n") == len(rows) + 1 and "torch / oracle" in table
    assert report.ratio_table(run, "triton", "official") == []
    run["exp_throughput"] = None
    for r in run["selective_scan"]:
        r["exp_floor_ms"] = r["hbm_floor_ms"] / 2
    f = report.floor_factors(run, shape=(2, 8, 37, 5))
    rec = next(r for r in run["selective_scan"] if r["L"] == 37 and r["dtype"] == "float32"
               and r["pass_"] == "fwd" and not r["z"])
    assert f["torch"][1] == pytest.approx(rec["results"]["torch"]["median_ms"] / rec["hbm_floor_ms"])
    fig, axs = plt.subplots(1, 3)
    run["selective_scan"] = [dict(r, N=16) for r in run["selective_scan"]]
    report.plot_time_per_token_channel(axs[0], run)
    report.plot_bandwidth(axs[1], run, impls=("torch", "oracle"))
    report.plot_time_per_token(axs[2], run)
    assert len(axs[0].lines) == 4 and len(axs[2].lines) == 2
    plt.close(fig)
