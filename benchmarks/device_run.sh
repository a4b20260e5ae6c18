#!/usr/bin/env bash
# One GPU call: the official kernel (built, or carried), optional CUDA tests, then grids, then the report.
#
# Run from the repository root on a fresh GPU machine with torch and Triton installed, the official
# sdist carried as .device/mamba_ssm-2.3.2.post1 (device tool: carry [".device"], timeout_s 600):
#     bash benchmarks/device_run.sh
#     STAGES="tests mamba:300 sweep_batch:60 sweep_L" bash benchmarks/device_run.sh
# STAGES (default "mamba:60% sweep_L:50% sweep_batch"): what runs, in order. "tests" runs the
# CUDA tests named by TESTS (default: the kernel tests) with pytest-xdist (carry its wheels as .whl,
# installed into /tmp/site), for at most S seconds as "tests:S"; "NAME:S" runs the grid benchmarks/grids/NAME.json for at most S
# seconds, "NAME:P%" for P % of the time then left, a bare "NAME" for all that is left minus 30 s.
# What comes back under $OUT (8 files at most, each well under 16 MiB, at most two folders down):
#     run.log                        everything printed, build included
#     report.md                      report.py's tables of the results
#     results/NAME.json              bench_selective_scan.py on each grid
#     cuda_tests.log                 the tests stage, when it runs
#     so/selective_scan_cuda.so.partNN   only with SAVE_SO=1: the built extension, gzip, in 15 MiB parts;
#                                    carried back as .device/so, a later call skips the ~3 min build
# Environment: BUDGET_S (default 570) is the whole call's time; the grid runs stop starting new
# cells when their share is spent (the JSON keeps every finished cell).
set -u -o pipefail
OUT=${OUT:-/tmp/device_out}
BUDGET_S=${BUDGET_S:-570}
SRC=.device/mamba_ssm-2.3.2.post1
EXT=/tmp/ssm_official_build
mkdir -p "$OUT/results"
export PYTHONUNBUFFERED=1 MAX_JOBS=${MAX_JOBS:-16}
PY=${PY:-python3}
T0=$(date +%s)
left() { echo $(( BUDGET_S - ($(date +%s) - T0) )); }
log() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

{
  log "start; $(nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader 2>&1)"
  $PY -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__, "cuda", torch.version.cuda)'
  OFFICIAL=()
  if ls .device/so/selective_scan_cuda.so.part* >/dev/null 2>&1; then
    log "official: the carried build in .device/so"
    OFFICIAL=(--official-parts .device/so --official-src "$SRC")
  elif [ -d "$SRC" ]; then
    log "official: building from $SRC"
    SPLIT=()
    [ "${SAVE_SO:-0}" = 1 ] && SPLIT=(--split "$OUT/so")
    if $PY benchmarks/official.py build --src "$SRC" --out "$EXT" "${SPLIT[@]}" >"$EXT.log" 2>&1; then
      tail -n 3 "$EXT.log"
      OFFICIAL=(--official-so "$EXT" --official-src "$SRC")
    else
      log "official build FAILED (the grid runs without it); last lines:"
      tail -n 40 "$EXT.log"
    fi
  else
    log "official: no $SRC carried; the grid runs without it"
  fi
  for stage in ${STAGES:-mamba:60% sweep_L:50% sweep_batch}; do
    name=${stage%%:*}; share=${stage#*:}
    if [ "$name" = tests ]; then
      log "CUDA tests: ${TESTS:=tests/kernels}"
      pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
      ln -sfn ../kernels ssmbook/kernels  # the package layout without an install
      T_S=$(( $(left) - 60 )); [ "$share" != "$name" ] && T_S=$share
      PYTHONPATH=/tmp/site:$PWD timeout "$T_S" $PY -m pytest -q -n 16 --tb=short -p no:cacheprovider \
          -p no:benchmark $TESTS >"$OUT/cuda_tests.log" 2>&1
      log "tests exited with $?: $(tail -n 1 "$OUT/cuda_tests.log")"
      grep -E "^(FAILED|ERROR)" "$OUT/cuda_tests.log" | head -20
      continue
    fi
    if [ "$share" = "$name" ]; then S_S=$(( $(left) - 30 ))
    elif [ "${share%\%}" != "$share" ]; then S_S=$(( $(left) * ${share%\%} / 100 - 20 ))
    else S_S=$share; fi
    log "$name grid, ${S_S} s"
    $PY benchmarks/bench_selective_scan.py --grid "$name" --out "$OUT/results/$name.json" \
        --max-seconds "$S_S" "${OFFICIAL[@]}" || log "$name exited with $?"
  done
  $PY benchmarks/report.py "$OUT"/results/*.json >"$OUT/report.md" || log "report exited with $?"
  cat "$OUT/report.md"
  log "done"
} 2>&1 | tee "$OUT/run.log"
