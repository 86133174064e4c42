#!/usr/bin/env bash
# The README's demo command twice in one fresh clone: the first run with empty caches, then a repeat that reads the
# SAE, the encodings and the rollout labels back from the caches. Records both wall times, peak memory and load.
#
#   bash docs/results/demo_seeds/run_repeat.sh SEED OUT_DIR [PYTHON]
set -euo pipefail
SEED=$1
OUT=$(realpath -m "$2")
ROOT=$(git rev-parse --show-toplevel)
PY=${3:-$ROOT/.venv/bin/python}
CLONE=$(mktemp -d)/hf_saerl
git clone -q "$ROOT" "$CLONE"
cd "$CLONE"
for RUN in first repeat; do
  mkdir -p "$OUT/$RUN"
  git rev-parse HEAD > "$OUT/$RUN/commit.txt"
  cat /proc/loadavg > "$OUT/$RUN/loadavg_start.txt"
  HF_HUB_OFFLINE=1 HF_SAERL_CACHE="$CLONE/.cache/hf_saerl" HF_DATASETS_CACHE="$CLONE/.cache/datasets" \
    /usr/bin/time -v -o "$OUT/$RUN/time_v.txt" "$PY" -m hf_saerl demo -o "$OUT/$RUN" --seed "$SEED" --overwrite \
    > "$OUT/$RUN/stdout.txt" 2> "$OUT/$RUN/stderr.txt"
  cat /proc/loadavg > "$OUT/$RUN/loadavg_end.txt"
done
rm -rf "$CLONE"
