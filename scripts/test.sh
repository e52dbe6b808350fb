#!/usr/bin/env bash
# The README's second command: set up (Python test extras, npm packages), then run the
# whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
exec .venv/bin/python -m pytest "$@"
