#!/usr/bin/env bash
# One-shot check of the GPU path, offline and without Ray: run it once on a CUDA machine.
#
#   benchmarks/device_check.sh [--budget-s SECONDS] [--dry] [DIR]
#
# Steps, in order, every output under DIR (default benchmarks/out/device/):
#   1. selfcheck   korth-bench selfcheck --device cuda (on real CIFAR-10 when the file is there)
#   2. trial       bench_trial on CUDA: fp32 eager, bf16 (+ channels_last, as every trial), bf16 +
#                  torch.compile, for ResNet-20, ResNet-56, WRN-16-4; Parquet tables + summary
#   3. penalties   bench_penalties on CUDA, fp32 and bf16; Parquet tables + summary
#   4. train       a 15-epoch ResNet-20 trial at precision auto (every other key at its default) on the full
#                  CIFAR-10 file named by KORTH_CIFAR10_PARQUET; its four tables under DIR/train/
# Sized to finish within 5 minutes on an H100-class GPU. The --budget-s guard (default 300) gives
# each step the time that is left (it is stopped when that runs out) and skips the steps that
# find less than MIN_STEP_S left; what finished is kept. DIR/steps.tsv lists each step's status
# and seconds, DIR/<step>.log its output, DIR/device.txt the machine.
#
# --dry: the same steps on the CPU at tiny sizes (synthetic data when the CIFAR file is absent),
# to check the script itself; tests/test_device_check.py runs it.
# PYTHON picks the interpreter (default .venv/bin/python, else python3).
set -u -o pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUDGET_S=300
DRY=0
DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --budget-s) BUDGET_S="$2"; shift 2 ;;
    --budget-s=*) BUDGET_S="${1#*=}"; shift ;;
    --dry) DRY=1; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "device_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) DIR="$1"; shift ;;
  esac
done
case "$BUDGET_S" in ''|*[!0-9]*) echo "device_check.sh: --budget-s must be whole seconds, got '$BUDGET_S'" >&2; exit 2 ;; esac
DIR="${DIR:-$ROOT/benchmarks/out/device}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1
CIFAR="${KORTH_CIFAR10_PARQUET:-}"
KB=("$PYTHON" -m korth_bench.cli)

if [ "$DRY" = 1 ]; then
  DEVICE=cpu; MIN_STEP_S=1
  SELFCHECK_SETS=(--set train_size=128 --set test_size=64 --set epochs=1 --set robustness_test_size=16 --set probe_size=8 --set threads=2)
  TRIAL_ARGS="--device cpu --short --models resnet8 --variants fp32 bf16 --train-size 128 --skip-wall"
  PENALTY_ARGS="--device cpu --short --models resnet8 --batch-size 16 --regularizers so"
  TRAIN_SETS=(--set depth=8 --set train_size=256 --set test_size=128 --set epochs=2 --set robustness_test_size=32 --set robustness_severities=[1] --set robustness_pgd_steps=2 --set probe_size=8 --set threads=2)
  [ -n "$CIFAR" ] && [ -f "$CIFAR" ] || CIFAR=""
else
  DEVICE=cuda; MIN_STEP_S=20
  SELFCHECK_SETS=()
  TRIAL_ARGS="--device cuda --rounds 1 --skip-eval --skip-wall"
  PENALTY_ARGS="--device cuda --rounds 5 --warmup 2"
  TRAIN_SETS=(--set epochs=15)
  if [ -z "$CIFAR" ] || [ ! -f "$CIFAR" ]; then
    echo "device_check.sh: set KORTH_CIFAR10_PARQUET to the packed CIFAR-10 file (got '${CIFAR}')" >&2
    exit 2
  fi
fi
if [ -n "$CIFAR" ]; then
  DATA_SETS=(--set dataset=packed --set "data_path=$CIFAR"); SELFCHECK_DATA=(--data-path "$CIFAR")
else
  DATA_SETS=(--set dataset=synthetic); SELFCHECK_DATA=()
fi

START=$(date +%s)
printf 'step\tstatus\tseconds\n' > "$DIR/steps.tsv"
{
  echo "date: $(date -u +%FT%TZ)"; echo "mode: $([ "$DRY" = 1 ] && echo dry || echo cuda)"; echo "budget_s: $BUDGET_S"
  echo "git: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
  "$PYTHON" -c 'import torch; print("torch:", torch.__version__, "cuda:", torch.version.cuda); print("device:", torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")' 2>&1
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
} > "$DIR/device.txt"
cat "$DIR/device.txt"

FAILED=0
step() {  # step NAME COMMAND...: run under the time left, or skip; record status and seconds
  local name="$1"; shift
  local left=$(( BUDGET_S - ($(date +%s) - START) ))
  if [ "$left" -lt "$MIN_STEP_S" ]; then
    printf '%s\tskipped (budget: %ss left)\t0\n' "$name" "$left" >> "$DIR/steps.tsv"
    echo "== $name: skipped, ${left}s of the budget left"
    return
  fi
  echo "== $name (${left}s of the budget left)"
  local begin=$(date +%s) rc=0
  timeout --kill-after=10 "$left" "$@" > "$DIR/$name.log" 2>&1 || rc=$?
  local status=ok
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then status="stopped (budget)"; FAILED=1
  elif [ "$rc" != 0 ]; then status="failed (exit $rc)"; FAILED=1; fi
  printf '%s\t%s\t%s\n' "$name" "$status" "$(( $(date +%s) - begin ))" >> "$DIR/steps.tsv"
  tail -n 40 "$DIR/$name.log"
  echo "== $name: $status"
}

step selfcheck "${KB[@]}" selfcheck --device "$DEVICE" "${SELFCHECK_DATA[@]}" "${SELFCHECK_SETS[@]}"
step trial "$PYTHON" "$ROOT/benchmarks/run_all.py" --only bench_trial --out "$DIR" \
  --summary summary_trial.parquet --args "$TRIAL_ARGS"
step penalties "$PYTHON" "$ROOT/benchmarks/run_all.py" --only bench_penalties --out "$DIR" \
  --summary summary_penalties.parquet --args "$PENALTY_ARGS"
step train "${KB[@]}" train --out "$DIR/train" --overwrite --set device="$DEVICE" --set model=resnet \
  --set depth=20 --set precision=auto "${DATA_SETS[@]}" "${TRAIN_SETS[@]}"

echo
column -t -s $'\t' "$DIR/steps.tsv" 2>/dev/null || cat "$DIR/steps.tsv"
echo "outputs in $DIR"
exit "$FAILED"
