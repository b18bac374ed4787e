# Sourced by demo.sh and test.sh: create .venv with the locked stack on first use, then reuse it.
# pyproject.toml declares ranges; constraints.txt (the lock) fixes every version, so the README's
# two commands install the same stack everywhere. Idempotent: reinstalls only when either changed.
# scripts/test_data_side.sh sources it too, for another venv: it sets _TIC_VENV, _TIC_LOCK,
# _TIC_EXTRAS and _TIC_IMPORTS (and PYTHON) first; unset, they are the README's stack.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${_TIC_VENV:-$ROOT/.venv}"
LOCK="${_TIC_LOCK:-constraints.txt}"
EXTRAS="${_TIC_EXTRAS:-all,test}"
IMPORTS="${_TIC_IMPORTS:-ticdata, polars, ray, pyarrow, torch, open_clip, webdataset, img2dataset}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
STAMP="$VENV/.tic-installed"
# albumentations (pulled in by img2dataset) checks PyPI for updates on import: never, not even below.
export NO_ALBUMENTATIONS_UPDATE=1
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/$LOCK" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[tic] creating $VENV" >&2
    "$PY" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    echo "[tic] installing the locked stack ($LOCK, tic[$EXTRAS]) into $VENV (first use only)" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c "$ROOT/$LOCK" -e "$ROOT[$EXTRAS]" 2>&1 \
        | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
    "$VENV/bin/python" -c "import $IMPORTS" \
        || { echo "[tic] installation failed; see the pip output above" >&2; exit 1; }
    echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
# Keep Ray quiet and on loopback-friendly defaults; users may override.
export RAY_USAGE_STATS_ENABLED="${RAY_USAGE_STATS_ENABLED:-0}"
