#!/usr/bin/env bash
# Run the test suite. Creates .venv with the pinned stack on first use.
# Extra arguments go to pytest, e.g. ./scripts/test.sh -k curate -x
# --fast: the fast lane, every test not marked slow (-m "not slow"), under 2 minutes.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
args=()
for a in "$@"; do
    if [ "$a" = "--fast" ]; then args+=(-m "not slow"); else args+=("$a"); fi
done
exec python -m pytest ${args[@]+"${args[@]}"}
