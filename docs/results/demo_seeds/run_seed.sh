#!/usr/bin/env bash
# One fresh-clone run of the README's demo command: clone this repo's HEAD into a new folder, point every cache at
# empty folders inside it, and run `hf-saerl demo --seed SEED` there, recording wall time, peak memory and load.
#
#   bash docs/results/demo_seeds/run_seed.sh SEED OUT_DIR [PYTHON]
#
# PYTHON defaults to .venv/bin/python of this repo (set up by scripts/setup.sh); run from the clone's root, so the
# clone's hf_saerl is the one imported.
set -euo pipefail
SEED=$1
OUT=$(realpath -m "$2")
ROOT=$(git rev-parse --show-toplevel)
PY=${3:-$ROOT/.venv/bin/python}
CLONE=$(mktemp -d)/hf_saerl
git clone -q "$ROOT" "$CLONE"
mkdir -p "$OUT"
git -C "$CLONE" rev-parse HEAD > "$OUT/commit.txt"
cat /proc/loadavg > "$OUT/loadavg_start.txt"
cd "$CLONE"
HF_HUB_OFFLINE=1 HF_SAERL_CACHE="$CLONE/.cache/hf_saerl" HF_DATASETS_CACHE="$CLONE/.cache/datasets" \
  /usr/bin/time -v -o "$OUT/time_v.txt" "$PY" -m hf_saerl demo -o "$OUT" --seed "$SEED" --overwrite \
  > "$OUT/stdout.txt" 2> "$OUT/stderr.txt"
cat /proc/loadavg > "$OUT/loadavg_end.txt"
rm -rf "$CLONE"
