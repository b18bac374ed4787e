#!/usr/bin/env python
"""Benchmark `tic train` against open_clip's own trainer (`python -m open_clip_train.main`).

Both train the same model from random init on the same webdataset shards (one bucket of a folder
after `tic evalsets`: DATA/train/shards/<bucket>/*.tar), with the same batch size, precision,
number of samples and data-loader workers, alternating, several times each:

  tic        tic train --method sequential --steps <bucket> --samples-per-step N
  open_clip  python -m open_clip_train.main --dataset-type webdataset --dataset-resampled
             --train-num-samples N --epochs 1 (tic's tiny config registered first when used)

Printed: the median of each run's steady-state samples/s (the median over its logged intervals,
the first one, which holds start-up, left out), the median end-to-end wall time (process start to
exit, start-up included), and the ratios tic / open_clip. With --device cuda: the model's
forward MACs per sample and the model FLOPs utilisation, 3 x 2 x MACs x samples/s over the GPU's
peak (--peak-tflops, default 989, an H100/H200's dense bf16).

    .venv/bin/python scripts/bench_train.py --data out/demo/world-curated            # CPU, tic-tiny
    python scripts/bench_train.py --data D --model ViT-B-32 --precision bf16 --device cuda \\
        --batch-size 256 --samples 51200 --workers 12 --image-size 224
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ticdata.layout import CuratedFolder, RunFolder

REPO = Path(__file__).resolve().parents[1]
OC_WRAPPER = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); from tic_train.tiny import register_configs; register_configs(); "
    "from open_clip_train.main import main; main(sys.argv[1:])"
)
_RATE = re.compile(r"Batch \(t\): [0-9.]+, ([0-9.]+)/s")


def run_tic(args, data: Path, bucket: str, out: Path) -> dict:
    cmd = [sys.executable, "-m", "ticdata.cli", "train", "--data", str(data), "--out", str(out), "--method", "sequential",
           "--steps", bucket, "--samples-per-step", str(args.samples), "--batch-size", str(args.batch_size),
           "--model", args.model, "--precision", args.precision, "--workers", str(args.workers), "--lr", "5e-4",
           "--warmup", "10", "--log-every", str(args.log_every), "--device", args.device, "-q"]
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if r.returncode:
        sys.exit(f"tic train failed:\n{r.stderr[-3000:]}")
    lines = [json.loads(x) for x in RunFolder(out).log_jsonl.read_text().splitlines()]
    rates = [x["samples_per_s"] for x in lines if x.get("event") == "interval" and x["batch"] < x["batches"]][1:]
    step = next(x for x in lines if x.get("event") == "step")
    return {"wall": wall, "rate": statistics.median(rates), "macs": step["macs_per_sample_forward"]}


def run_open_clip(args, shards: list[Path], out: Path) -> dict:
    first, last = shards[0].stem, shards[-1].stem
    pattern = str(shards[0].parent / f"{{{first}..{last}}}.tar") if len(shards) > 1 else str(shards[0])
    cmd = [sys.executable, "-c", OC_WRAPPER, str(REPO), "--train-data", pattern, "--dataset-type", "webdataset",
           "--dataset-resampled", "--train-num-samples", str(args.samples), "--batch-size", str(args.batch_size),
           "--epochs", "1", "--workers", str(args.workers), "--model", args.model, "--precision",
           {"fp32": "fp32", "bf16": "amp_bf16"}[args.precision], "--lr", "5e-4", "--warmup", "10",
           "--log-every-n-steps", str(args.log_every), "--save-frequency", "0", "--logs", str(out), "--name", "bench",
           "--report-to", "", "--device", args.device, "--seed", "0"]
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    wall = time.monotonic() - t0
    if r.returncode:
        sys.exit(f"open_clip_train failed:\n{r.stderr[-3000:]}")
    text = r.stdout + r.stderr
    if (out / "bench" / "out.log").exists():
        text += (out / "bench" / "out.log").read_text()
    rates = [float(m) for m in _RATE.findall(text)]
    rates = rates[1:] if len(rates) > 2 else rates  # first log line: after one batch, start-up included
    if not rates:
        sys.exit(f"open_clip_train printed no throughput:\n{text[-3000:]}")
    return {"wall": wall, "rate": statistics.median(rates)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO / "out" / "demo" / "world-curated"), help="a folder after tic evalsets")
    ap.add_argument("--bucket", help="the bucket whose shards both read (default: the first)")
    ap.add_argument("--model", default="tic-tiny")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--samples", type=int, default=12_800)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="the accelerator's dense peak for --precision (MFU)")
    args = ap.parse_args()
    data = Path(args.data)
    folder = CuratedFolder(data)
    doc = json.loads(folder.manifest_json.read_text())
    bucket = args.bucket or next(iter(doc["buckets"]))
    shards = sorted(folder.train_shards.bucket(bucket).glob("*.tar"))
    if not shards:
        sys.exit(f"{folder.train_shards.bucket(bucket)}: no shards; run ./scripts/demo.sh (or tic evalsets) first")
    print(f"data {folder.train_shards.bucket(bucket)} ({len(shards)} tars), model {args.model}, {args.precision}, {args.device}, "
          f"batch {args.batch_size}, {args.samples:,} samples, {args.workers} workers, {args.repeats} runs each")
    res = {"tic": [], "open_clip": []}
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        for i in range(args.repeats):
            for name in ("tic", "open_clip"):
                out = tmp / f"{name}-{i}"
                r = run_tic(args, data, bucket, out) if name == "tic" else run_open_clip(args, shards, out)
                res[name].append(r)
                print(f"  run {i + 1} {name:<9} {r['rate']:>9.1f} samples/s steady, {r['wall']:>7.1f} s wall", flush=True)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("rate", "wall")} for k, v in res.items()}
    print(f"\n{'':<10} {'samples/s (steady, median)':>28} {'wall s (median)':>16}")
    for k in ("tic", "open_clip"):
        print(f"{k:<10} {med[k]['rate']:>28.1f} {med[k]['wall']:>16.1f}")
    print(f"ratio tic/open_clip: steady throughput {med['tic']['rate'] / med['open_clip']['rate']:.2f}x, "
          f"end-to-end {med['open_clip']['wall'] / med['tic']['wall']:.2f}x (goal >= 1.0)")
    macs = res["tic"][0]["macs"]
    print(f"model: {macs / 1e9:.3f} GMACs forward per sample")
    if args.device.startswith("cuda"):
        for k in ("tic", "open_clip"):
            mfu = 3 * 2 * macs * med[k]["rate"] / (args.peak_tflops * 1e12)
            print(f"MFU {k}: {mfu:.1%} of {args.peak_tflops:.0f} TFLOPS")


if __name__ == "__main__":
    main()
