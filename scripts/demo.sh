#!/usr/bin/env bash
# The main job on the embedded default, end to end as far as it is built:
#   1. a synthetic CommonCrawl-style pool, curated into TiC-DataComp year buckets, its ledger checked
#      against the planted bad rows, exported as DataComp uid lists;
#   2. the synthetic drifting image world: served over HTTP on 127.0.0.1, curated into the demo
#      benchmark's buckets, downloaded with img2dataset into webdataset shards per bucket;
#   3. per bucket a held-out retrieval and classification set (CLIP_benchmark's wds layout), the
#      training rows that copy an eval image or pair excluded, training shards without them;
#   4. continual training with a tiny open_clip model: Sequential, Cumulative-All and Oracle.
# Creates .venv on first use; rerunning reuses everything already finished.
# Environment: TIC_DEMO_OUT (default ./out/demo), TIC_DEMO_ROWS (pool rows, default 200000),
# TIC_DEMO_PORT (image server port, default 8765), TIC_DEMO_PAIRS (world pairs per step, default 3300),
# TIC_DEMO_METHODS (continual methods to train, default "sequential cumulative-all oracle").
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
OUT="${TIC_DEMO_OUT:-$ROOT/out/demo}"
ROWS="${TIC_DEMO_ROWS:-200000}"
PORT="${TIC_DEMO_PORT:-8765}"
PAIRS="${TIC_DEMO_PAIRS:-3300}"

echo "== 1. synthetic pool ($ROWS rows) -> $OUT/pool"
if [ -f "$OUT/pool/_synth.json" ] && python -c "import json,sys; sys.exit(json.load(open('$OUT/pool/_synth.json'))['rows'] != $ROWS)"; then
    echo "   (already there)"
else
    tic synth pool --rows "$ROWS" --out "$OUT/pool" --overwrite
fi

echo "== 2. curate into TiC-DataComp buckets -> $OUT/curated"
tic curate "$OUT/pool" --out "$OUT/curated" --benchmark tic-datacomp --overwrite

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

echo "== 4. uid lists per bucket (DataComp format) -> $OUT/uids"
tic uids export "$OUT/curated" --out "$OUT/uids"

echo "== 5. synthetic image world ($PAIRS pairs per step) -> $OUT/world"
if [ -f "$OUT/world/_world.json" ] && python -c "import json,sys; w=json.load(open('$OUT/world/_world.json')); sys.exit(not (w['pairs_per_step'] == $PAIRS and w['base_url'] == 'http://127.0.0.1:$PORT'))"; then
    echo "   (already there)"
else
    tic synth world --out "$OUT/world" --pairs-per-step "$PAIRS" --base-url "http://127.0.0.1:$PORT" --overwrite
fi

echo "== 6. serve the world's images on http://127.0.0.1:$PORT"
tic serve-images --port "$PORT" -q &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
python - "$PORT" <<'PY'
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("the image server did not start")
PY

echo "== 7. curate the world into the demo benchmark's buckets -> $OUT/world-curated"
tic curate "$OUT/world" --out "$OUT/world-curated" --benchmark demo --overwrite

echo "== 8. download every bucket with img2dataset -> $OUT/world-curated/shards"
tic download "$OUT/world-curated" --allow-private-hosts --image-size 64 --samples-per-shard 1000 --timeout 3

echo "== 9. held-out eval sets per bucket, decontaminated training shards -> $OUT/world-curated/{eval,train}"
tic evalsets "$OUT/world-curated" --samples-per-shard 1000

echo "== 10. continual training, tiny open_clip model on CPU, the benchmark's budget per step -> $OUT/runs/<method>"
for METHOD in ${TIC_DEMO_METHODS:-sequential cumulative-all oracle}; do
    echo "-- $METHOD"
    tic train --data "$OUT/world-curated" --out "$OUT/runs/$METHOD" --method "$METHOD" --batch-size 128 --workers 2
done
