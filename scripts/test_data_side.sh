#!/usr/bin/env bash
# The data side's tests (curate, uids, audit, reshard, download, evalsets) on another Python: a venv
# .venv-pyX.Y with the lock's versions (constraints.txt) of the base install, the images extra and
# the data tests' tools, and no torch or open_clip; then the test files listed in
# tests/data_side.txt. Usage: ./scripts/test_data_side.sh 3.13 [pytest arguments]
# TIC_LOCK=constraints-lowest.txt: the floors of pyproject.toml's ranges instead (.venv-pyX.Y-lowest).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${1:?usage: $0 PYTHON_VERSION (3.12, 3.13) [pytest arguments]}"
shift
PY="$(command -v "python$VERSION" 2>/dev/null || true)"
if [ -z "$PY" ] || ! "$PY" -c "" 2>/dev/null; then  # a pyenv shim of a version that is not the active one
    PY="$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$VERSION"*/bin/python"$VERSION" 2>/dev/null | tail -1)"
fi
[ -n "$PY" ] && "$PY" -c "" || { echo "[tic] no python$VERSION here (pyenv install $VERSION)" >&2; exit 1; }
LOCK="${TIC_LOCK:-constraints.txt}"
_TIC_LOCK="$LOCK"
_TIC_VENV="$ROOT/.venv-py$VERSION$([ "$LOCK" = constraints.txt ] || echo "-${LOCK%.txt}" | sed 's/-constraints-/-/')"
_TIC_EXTRAS="images,plots,test-data"
_TIC_IMPORTS="ticdata, polars, ray, pyarrow, img2dataset, duckdb, matplotlib"
PYTHON="$PY"
source "$ROOT/scripts/_venv.sh"
cd "$ROOT"
export TIC_LOCK="$LOCK"  # tests/test_packaging.py compares the installed versions with it
mapfile -t FILES < <(grep -v '^#' tests/data_side.txt | sed '/^$/d; s#^#tests/#')
exec "$VENV/bin/python" -m pytest "${FILES[@]}" "$@"
