#!/usr/bin/env bash
# One GPU call: build the official kernel, run the mamba grid and the L and batch sweeps, write the report.
#
# Run from the repository root on a fresh GPU machine with torch and Triton installed, the official
# sdist carried as .device/mamba_ssm-2.3.2.post1 (device tool: carry [".device"], timeout_s 600):
#     bash benchmarks/device_run.sh
# What comes back under $OUT (7 files at most, each well under 16 MiB, at most two folders down):
#     run.log                        everything printed, build included
#     report.md                      report.py's tables of the three results
#     results/mamba.json             bench_selective_scan.py on benchmarks/grids/mamba.json
#     results/sweep_L.json           ... on grids/sweep_L.json (Triton only)
#     results/sweep_batch.json       ... on grids/sweep_batch.json (Triton only)
#     so/selective_scan_cuda.so.partNN   only with SAVE_SO=1: the built extension, gzip, in 15 MiB parts;
#                                    carried back as .device/so, a later call skips the ~3 min build
# Environment: BUDGET_S (default 570) is the whole call's time; each stage gets what is left, and the
# grid runs stop starting new cells when their share is spent (the JSON keeps every finished cell).
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
  # the remaining time: 60% to the grid, 20% to each sweep
  GRID_S=$(( $(left) * 6 / 10 - 20 ))
  log "mamba grid, ${GRID_S} s"
  $PY benchmarks/bench_selective_scan.py --grid mamba --out "$OUT/results/mamba.json" \
      --max-seconds "$GRID_S" "${OFFICIAL[@]}" || log "mamba grid exited with $?"
  for s in sweep_L sweep_batch; do
    if [ "$s" = sweep_L ]; then S_S=$(( $(left) / 2 - 20 )); else S_S=$(( $(left) - 30 )); fi
    log "$s, ${S_S} s"
    $PY benchmarks/bench_selective_scan.py --grid "$s" --out "$OUT/results/$s.json" \
        --max-seconds "$S_S" || log "$s exited with $?"
  done
  $PY benchmarks/report.py "$OUT"/results/*.json >"$OUT/report.md" || log "report exited with $?"
  cat "$OUT/report.md"
  log "done"
} 2>&1 | tee "$OUT/run.log"
