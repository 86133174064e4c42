#!/bin/bash
# Before/after of issue 23's Arrow-native prediction, on the same machine, one after the other:
# "after" imports hf_saerl from this worktree, "before" from /work/main (commit 71628a3, the Python-list path).
# Each run has its numpy baseline (same matrix, same process). Usage: run.sh REPEATS SIDE...
cd "$(dirname "$0")/../../.."
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
R=benchmarks/results/estimators_arrow
REPEATS=$1; shift
for side in "$@"; do
  if [ "$side" = before ]; then P=/work/main; else P=$PWD; fi
  echo "$side start: $(cat /proc/loadavg)" >> $R/load.txt
  PYTHONPATH=$P /work/main/.venv/bin/python benchmarks/bench_estimators.py --predict-only --rows 100000 \
      --repeats "$REPEATS" --out "$R/predict_$side.json" > "$R/predict_$side.log" 2>&1
  echo "$side end: $(cat /proc/loadavg)" >> $R/load.txt
done
