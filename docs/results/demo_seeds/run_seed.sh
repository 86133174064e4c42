#!/usr/bin/env bash
# Fresh-clone runs of the README's demo command: clone this repo's HEAD into a new folder, point every cache at
# empty folders inside it, and run `hf-saerl demo --seed SEED` there, recording wall time, peak memory and load.
# With --repeat, the command runs twice in the same clone (OUT_DIR/first with empty caches, then OUT_DIR/repeat,
# which reads the SAE, encodings, labels and the converted model back from the caches).
#
#   bash docs/results/demo_seeds/run_seed.sh SEED OUT_DIR [--repeat]
#
# PY (environment) defaults to .venv/bin/python of this repo (set up by scripts/setup.sh); the runs start from the
# clone's root, so the clone's hf_saerl is the one imported.
set -euo pipefail
SEED=$1
OUT=$(realpath -m "$2")
ROOT=$(git rev-parse --show-toplevel)
PY=${PY:-$ROOT/.venv/bin/python}
RUNS=("$OUT")
if [ "${3:-}" = "--repeat" ]; then RUNS=("$OUT/first" "$OUT/repeat"); fi
CLONE=$(mktemp -d)/hf_saerl
git clone -q "$ROOT" "$CLONE"
cd "$CLONE"
for RUN in "${RUNS[@]}"; do
  mkdir -p "$RUN"
  git rev-parse HEAD > "$RUN/commit.txt"
  cat /proc/loadavg > "$RUN/loadavg_start.txt"
  HF_HUB_OFFLINE=1 HF_SAERL_CACHE="$CLONE/.cache/hf_saerl" HF_DATASETS_CACHE="$CLONE/.cache/datasets" \
    /usr/bin/time -v -o "$RUN/time_v.txt" "$PY" -m hf_saerl demo -o "$RUN" --seed "$SEED" --overwrite \
    > "$RUN/stdout.txt" 2> "$RUN/stderr.txt"
  cat /proc/loadavg > "$RUN/loadavg_end.txt"
done
rm -rf "$CLONE"
