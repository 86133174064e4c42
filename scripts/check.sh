#!/usr/bin/env bash
# The static checks CI runs before the tests (.ci/run calls this script): lint, format, types.
#   bash scripts/check.sh          # check only: any finding exits 1 (after all three have run)
#   bash scripts/check.sh --fix    # first apply ruff's safe fixes and the formatter, then check
# The tools come from the project's venv (scripts/setup.sh); HF_SAERL_VENV names another one, as in setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${HF_SAERL_VENV:-.venv}
if [ "${1:-}" = "--fix" ]; then
  "$VENV/bin/ruff" check --fix .
  "$VENV/bin/ruff" format .
fi
failed=()
check() {
  local start=$SECONDS
  echo "== $*"
  if "$VENV/bin/$1" "${@:2}"; then echo "   ok ($((SECONDS - start)) s)"; else echo "   FAILED ($((SECONDS - start)) s)"; failed+=("$*"); fi
}
check ruff check .           # the rule set, and why each ignored rule is off: [tool.ruff] in pyproject.toml
check ruff format --check .  # `ruff format .` (or --fix above) rewrites what this reports
check mypy                   # hf_saerl/ at the strictness of [tool.mypy]; cached in .mypy_cache/
if [ ${#failed[@]} -gt 0 ]; then
  printf 'check failed: %s\n' "${failed[@]}"
  exit 1
fi
