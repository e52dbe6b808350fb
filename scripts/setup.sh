#!/usr/bin/env bash
# Create .venv and install carbon-ledger into it; with --test also the test extras and
# the pinned npm packages (solcjs, OpenZeppelin, anvil, ganache). Idempotent and offline
# apart from PyPI and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -U pip >/dev/null
if [ "${1:-}" = "--test" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  fi
else
  .venv/bin/python -m pip install -q --disable-pip-version-check -e .
fi
