#!/usr/bin/env python
"""Benchmark `tic download` against plain img2dataset on the same manifest and the same server.

Makes the synthetic world (`--pairs-per-step` pairs per step, 5 steps), curates it, starts the
world's image server in its own process, and then, alternating, several times each: `tic download
DIR` (local Ray; statuses merged into the manifest, sizes.json, key = uid) and
`img2dataset.download(...)` on a Parquet of the same rows with the same image size, threads,
processes, shard size, hashing and EXIF settings (img2dataset's multiprocessing distributor).
Prints medians, images/s and tic's overhead relative to img2dataset (goal: at most 5%).

    .venv/bin/python scripts/bench_download.py                       # 5 x 6,000 pairs, 3 runs each
    .venv/bin/python scripts/bench_download.py --pairs-per-step 2000 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
PLAIN = r"""
import os, sys
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
from img2dataset import download
src, out, size, threads, per_shard, procs = sys.argv[1:7]
download(url_list=src, input_format="parquet", url_col="url", caption_col="text", save_additional_columns=["uid"],
         output_format="webdataset", output_folder=out, image_size=int(size), resize_mode="keep_ratio_largest",
         resize_only_if_bigger=True, processes_count=int(procs), thread_count=int(threads),
         number_sample_per_shard=int(per_shard), timeout=10, compute_hash="sha256", extract_exif=True,
         oom_shard_count=8, distributor="multiprocessing")
"""


# The world's server with an unbounded render cache, warmed before timing: the benchmark measures
# the downloaders, not the server's JPEG rendering (which both would otherwise wait on).
SERVER = """
import functools, ticdata.serve as s
s.render = functools.lru_cache(maxsize=None)(s.render.__wrapped__)
s.serve_forever('127.0.0.1', {port})
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    res = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{res.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs-per-step", type=int, default=6000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=64)
    ap.add_argument("--samples-per-shard", type=int, default=2000)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--no-warm", action="store_true", help="skip the untimed pass that fills the server's cache (a smoke run)")
    args = ap.parse_args()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="tic-bench-download-"))
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-c", SERVER.format(port=port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import polars as pl

        from ticdata.curate import CurateConfig, curate
        from ticdata.executor import InlineExecutor
        from ticdata.manifest import scan_manifest
        from ticdata.synth.world import make_world

        world = root / "world"
        make_world(world, seed=0, base_url=base, pairs_per_step=args.pairs_per_step, fail_share=0.0, link_rot=False, overwrite=True)
        curated = root / "curated"
        shutil.rmtree(curated, ignore_errors=True)
        curate(CurateConfig(inputs=(str(world),), out=curated, benchmark="demo", progress=False), InlineExecutor())
        rows = scan_manifest(curated).select("uid", "url", "text").collect()
        src = root / "urls.parquet"
        rows.write_parquet(src)
        n = rows.height
        time.sleep(1.0)  # let the server come up
        if not args.no_warm:
            print(f"warming the server's cache with one untimed img2dataset pass over {n:,} images ...", flush=True)
            timed([sys.executable, "-c", PLAIN, str(src), str(root / "warm"), str(args.image_size), str(args.threads),
                   str(args.samples_per_shard), str(os.cpu_count())])  # fmt: skip
            shutil.rmtree(root / "warm", ignore_errors=True)
        ours, plain = [], []
        for i in range(args.repeats):
            run_dir = root / "tic-run"
            shutil.rmtree(run_dir, ignore_errors=True)
            shutil.copytree(curated, run_dir)
            t_ours = timed([str(BIN / "tic"), "download", str(run_dir), "--allow-private-hosts", "-q",
                            "--threads", str(args.threads), "--samples-per-shard", str(args.samples_per_shard),
                            "--image-size", str(args.image_size)])  # fmt: skip
            ok = scan_manifest(run_dir).filter(pl.col("status") == "success").select(pl.len()).collect().item()
            out = root / "plain-run"
            shutil.rmtree(out, ignore_errors=True)
            t_plain = timed([sys.executable, "-c", PLAIN, str(src), str(out), str(args.image_size), str(args.threads),
                             str(args.samples_per_shard), str(os.cpu_count())])  # fmt: skip
            ours.append(t_ours)
            plain.append(t_plain)
            print(f"  run {i + 1}: tic {t_ours:6.1f}s ({ok:,} ok)  img2dataset {t_plain:6.1f}s", flush=True)
        mo, mp = statistics.median(ours), statistics.median(plain)
        print(f"\n{n:,} images, {args.threads} threads, {os.cpu_count()} processes/tasks, medians of {args.repeats} runs")
        print(f"tic download  {mo:7.1f} s  {n / mo:8.0f} img/s")
        print(f"img2dataset   {mp:7.1f} s  {n / mp:8.0f} img/s")
        print(f"tic overhead  {100 * (mo / mp - 1):+.1f}%  (goal: at most +5%)")
    finally:
        server.terminate()
        server.wait()
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
