#!/usr/bin/env bash
# Run the test suite. Creates .venv with the pinned stack on first use.
# Extra arguments go to pytest, e.g. ./scripts/test.sh -k curate -x
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
exec python -m pytest "$@"
