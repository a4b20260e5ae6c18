"""Every kernel variant the host code can launch compiles for the GPUs readers have: sm_75 (Colab's
free T4), sm_80 (A100) and sm_90 (H100/H200), on this CPU, without a GPU.

``ssmbook.kernels.targets`` runs the host code (the choosers of kernel, tiles, flags and warps)
over representative shapes, dtypes and options with the kernels replaced by recorders, then
compiles each distinct launch with ``triton.compile(ASTSource(...), target=GPUTarget(...))``.
The compiling Triton and its interpreter cannot share a process (the interpreter is switched on
before triton is imported, by tests/conftest.py), so the compiles run in two subprocesses with
TRITON_INTERPRET=0 and a fresh cache directory (a cached kernel would not be compiled again).
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("triton")

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGETS = (75, 80, 90)
SHARDS = int(os.environ.get("SSMBOOK_COMPILE_SHARDS", "2"))   # processes sharing the compiles


def _ptxas_available():
    try:
        from triton.backends.nvidia.compiler import get_ptxas
    except Exception:
        return False
    import inspect

    try:
        tool = get_ptxas(80) if inspect.signature(get_ptxas).parameters else get_ptxas()
        return os.path.exists(tool.path)
    except Exception:
        return False


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compile_targets")
    env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_CACHE_DIR": str(tmp / "cache"),
           "OMP_NUM_THREADS": "1"}
    procs = []
    for k in range(SHARDS):
        cmd = [sys.executable, "-m", "ssmbook.kernels.targets", "--targets",
               ",".join(map(str, TARGETS)), "--shard", f"{k}/{SHARDS}", "--json",
               str(tmp / f"part{k}.json")]
        procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    logs = [p.communicate(timeout=1800)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-4000:]
    parts = [json.loads((tmp / f"part{k}.json").read_text()) for k in range(SHARDS)]
    rows = [r for part in parts for r in part["rows"]]
    table = "\n".join(sorted(line for log in logs for line in log.splitlines()
                             if line.startswith("sm_")))
    print(f"\nTriton {parts[0]['triton']}: {parts[0]['variants']} variants × {len(TARGETS)} targets\n"
          + table)
    return parts[0]["variants"], rows


def test_every_variant_compiles_for_every_target(compiled):
    n_variants, rows = compiled
    assert len(rows) == n_variants * len(TARGETS)
    for cap in TARGETS:
        mine = [r for r in rows if r["target"] == f"sm_{cap}"]
        assert len(mine) == n_variants, cap
        bad = [r["variant"] for r in mine if not r["ptx"]]
        assert not bad, f"sm_{cap}: no PTX for {bad}"
        if _ptxas_available():
            bad = [r["variant"] for r in mine if not r["cubin"] or r["registers"] is None]
            assert not bad, f"sm_{cap}: no cubin or no ptxas report for {bad}"
            assert all(0 < r["registers"] <= 255 for r in mine)


def test_the_recorded_launches_cover_every_branch_of_the_choosers(compiled):
    # All four kernels, the loop forward with and without packed B/C, cache hints and segments
    # (its summary launch too), inference without checkpoints, N not a power of two, 16-bit; the
    # loop backward with and without segments (and their summary kernel).
    _, rows = compiled
    rows = [r for r in rows if r["target"] == "sm_80"]
    kernels = {r["kernel"] for r in rows}
    assert kernels == {"chunk_fwd_kernel", "recurrent_fwd_kernel", "chunk_bwd_kernel",
                       "recurrent_bwd_kernel", "recurrent_bwd_summary_kernel"}
    loop_bwd = [r["meta"] for r in rows if r["kernel"] == "recurrent_bwd_kernel"]
    assert {m["SEGMENTED"] for m in loop_bwd} == {True, False}
    loop_fwd = [r["meta"] for r in rows if r["kernel"] == "recurrent_fwd_kernel"]
    for flag in ("PACKED", "SEGMENTED", "SUMMARY", "CHECKPOINTS", "EVEN_N"):
        assert {m[flag] for m in loop_fwd} == {True, False}, flag
    assert {m["EV_ROWS"] for m in loop_fwd} == {"evict_last", ""}
    chunked = [r["meta"] for r in rows if r["kernel"] == "chunk_fwd_kernel"]
    assert {m["CHECKPOINTS"] for m in chunked} == {True, False}
    assert {m["BLOCK_N"] for m in chunked} >= {8, 16, 256}
    dtypes = {r["variant"].split()[0] for r in rows}
    assert dtypes == {"float32", "float16", "bfloat16"}


def test_no_ampere_only_instruction_on_sm75(compiled):
    # The eviction hints become cache-policy instructions (createpolicy, sm_80+) on Ampere and
    # Hopper; on sm_75 Triton must not emit them, and no kernel does arithmetic in bfloat16.
    _, rows = compiled
    sm75 = [r for r in rows if r["target"] == "sm_75"]
    assert not [r["variant"] for r in sm75 if r["createpolicy"]]
    assert not [r["variant"] for r in rows if r["bf16_math"]]
    hinted = [r for r in rows if r["target"] == "sm_80" and r["meta"].get("EV_ROWS")]
    assert hinted and all(r["createpolicy"] for r in hinted)  # the check above can fail
