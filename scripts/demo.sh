#!/usr/bin/env bash
# The README's first command: set up, then run the whole trust chain on the embedded
# default (SQLite + in-process EVM; nothing external to start).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/carbon-ledger demo "$@"
