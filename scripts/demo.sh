#!/usr/bin/env bash
# The main job on the embedded default, end to end:
#   1-4. a synthetic CommonCrawl-style pool, curated into TiC-DataComp year buckets, its ledger checked
#        against the planted bad rows, exported as DataComp uid lists;
#   5.   `tic demo`: the synthetic drifting image world served on 127.0.0.1, curated into the demo
#        benchmark's 5 steps, downloaded with img2dataset, held-out eval sets carved out per step,
#        Sequential, Cumulative-All and Oracle trained (tiny open_clip model, CPU), every checkpoint
#        scored on every step, and the report (OUT/report/report.md) with its metrics table.
# Creates .venv on first use; rerunning reuses everything already finished.
# Environment: TIC_DEMO_OUT (default ./out/demo), TIC_DEMO_ROWS (pool rows, default 200000),
# TIC_DEMO_PORT (image server port, default 8765), TIC_DEMO_PAIRS (world pairs per step, default 3300),
# TIC_DEMO_METHODS (comma-separated methods, or all; default sequential,cumulative-all,oracle).
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
OUT="${TIC_DEMO_OUT:-$ROOT/out/demo}"
ROWS="${TIC_DEMO_ROWS:-200000}"
PORT="${TIC_DEMO_PORT:-8765}"
PAIRS="${TIC_DEMO_PAIRS:-3300}"
TIMES=()
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
T0=$SECONDS
lap() { TIMES+=("$1 $((SECONDS - T0)) s"); T0=$SECONDS; }

echo "== 1. synthetic pool ($ROWS rows) -> $OUT/pool"
if [ -f "$OUT/pool/_synth.json" ] && python -c "import json,sys; sys.exit(json.load(open('$OUT/pool/_synth.json'))['rows'] != $ROWS)"; then
    echo "   (already there)"
else
    tic synth pool --rows "$ROWS" --out "$OUT/pool" --overwrite
fi

lap "1. synthetic pool"

echo "== 2. curate into TiC-DataComp buckets -> $OUT/curated"
tic curate "$OUT/pool" --out "$OUT/curated" --benchmark tic-datacomp --overwrite

lap "2. curate"

echo "== 3. planted vs found"
python - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
synth = json.load(open(f"{out}/pool/_synth.json"))
led = json.load(open(f"{out}/curated/manifest.json"))["ledger"]
print(f"{'':20} {'planted':>10} {'found':>10}")
for reason, n in synth["planted"].items():
    print(f"{reason:20} {n:>10,} {led['dropped'].get(reason, 0):>10,}")
print(f"{'kept':20} {synth['expected']['kept']:>10,} {led['kept']:>10,}")
print(f"{'duplicates':20} {synth['expected']['duplicates']:>10,} {led['duplicates']:>10,}")
ok = all(led["dropped"].get(r, 0) == n for r, n in synth["planted"].items()) and led["kept"] == synth["expected"]["kept"]
print("ledger matches the planted counts" if ok else "MISMATCH between planted and found counts")
sys.exit(0 if ok else 1)
PY

lap "3. ledger check"

echo "== 4. uid lists per bucket (DataComp format) -> $OUT/uids"
tic uids export "$OUT/curated" --out "$OUT/uids" --overwrite  # a rerun at another TIC_DEMO_ROWS replaces the last lists

lap "4. uids export"

echo "== 5. the main job: synthetic drifting world -> serve -> curate -> download -> eval sets -> train -> eval -> report"
tic demo --out "$OUT" --port "$PORT" --pairs-per-step "$PAIRS" --methods "${TIC_DEMO_METHODS:-sequential,cumulative-all,oracle}"
lap "5. tic demo"

echo
echo "== stage times (this machine: $(nproc) cores; load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'))"
for t in "${TIMES[@]}"; do echo "   $t"; done
echo "   total $SECONDS s (tic demo's own stages are listed above it, under 'stage times (s)')"
