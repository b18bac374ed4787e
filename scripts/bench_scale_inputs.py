#!/usr/bin/env python
"""Inputs for bench_scale.py's evalsets and reshard runs on a curated folder of any size.

evalsets STANDIN CUR WORK [--per-tar N]
    WORK becomes a downloaded copy of CUR (its manifest hard-linked: evalsets replaces files, it
    never writes into one) whose image hashes are already computed: per bucket, one empty tar per
    N curated rows (img2dataset's 10,000 by default) and, in the eval-set job's state, the hash
    table that tar's hash task would have written (sha256 and pHash derived from the uid, so no two
    images are equal or near) with the task's completion mark. `tic evalsets WORK` then resumes after
    its hash stage. Hashing is one task per tar (pHash of each image) whatever the pool's size, so
    it stands apart: 64M rows of real images would be some 60 GB of tars.

reshard CUR SRC [--tars T --samples S]
    T webdataset tars of S samples (img2dataset's members: .jpg of 1-2 KB, .txt, .json holding the
    uid), half of their uids taken from CUR's manifest, half unknown to it. A reshard of them with
    `--manifest CUR` builds the uid -> bucket lookup over the whole pool (the part that grows with
    the pool) and copies a fixed amount of image bytes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from ticdata.benchmarks import benchmark_from_manifest
from ticdata.evalsets import EvalConfig, make_job
from ticdata.evalsets_join import IMAGE_SCHEMA
from ticdata.layout import CuratedFolder
from ticdata.storage import write_json_atomic, write_parquet_atomic
from ticdata.tars import TarWriter

EMPTY_TAR = b"\0" * 1024


def _year_buckets(cur: Path) -> dict[int, str]:
    doc = json.loads(CuratedFolder(cur).manifest_json.read_text())
    bench = benchmark_from_manifest(doc, CuratedFolder(cur).manifest_json)
    return {y: s.name for s in bench.steps for y in s.years}


def _files(cur: Path) -> list[tuple[int, Path]]:
    """(year, file) of every manifest file, from the hive folder name."""
    return [(int(p.parent.name.split("=", 1)[1]), p) for p in CuratedFolder(cur).manifest_files()]


def evalsets_standin(cur: Path, work: Path, per_tar: int) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    folder = CuratedFolder(work)
    shutil.copytree(CuratedFolder(cur).manifest_dir, folder.manifest_dir, copy_function=lambda s, d: Path(d).hardlink_to(s))
    shutil.copy2(CuratedFolder(cur).manifest_json, folder.manifest_json)
    buckets = _year_buckets(cur)
    cuts = []  # (bucket, tar path, manifest file, first row, rows)
    for i, (year, f) in enumerate(_files(cur)):
        if year not in buckets:
            continue
        n = pq.ParquetFile(f).metadata.num_rows
        for k, start in enumerate(range(0, n, per_tar)):
            tar = folder.shards.bucket(buckets[year]) / f"{year}-{i:05d}-{k:04d}.tar"
            cuts.append((buckets[year], tar, f, start, min(per_tar, n - start)))
    for _, tar, *_ in cuts:
        tar.parent.mkdir(parents=True, exist_ok=True)
        tar.write_bytes(EMPTY_TAR)
    job, _ = make_job(EvalConfig(dir=work, train_shards=False, progress=False))
    job.open()
    completions = job.completions
    uids: dict[Path, pl.Series] = {}
    for b, tar, f, start, rows in cuts:
        if f not in uids:
            uids = {f: pl.read_parquet(f, columns=["uid"])["uid"]}
        uid = uids[f].slice(start, rows)
        table = pl.DataFrame({"uid": uid}).select(
            "uid", bucket=pl.lit(b), tar=pl.lit(f"{b}/{tar.name}"), sha256=pl.col("uid") + pl.col("uid"),
            phash=pl.col("uid").str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64)).cast(IMAGE_SCHEMA)
        write_parquet_atomic(job.state / "hashes" / b / f"{tar.stem}.parquet", table, compression="zstd", compression_level=1)
        write_json_atomic(completions / f"hash-{b}-{tar.stem}.json",
                          {"samples": rows, "no_image": 0, "undecodable": 0, "no_uid": 0, "hashed": rows, "seconds": 0.0})
    return {"tars": len(cuts), "rows": sum(c[4] for c in cuts)}


def reshard_sources(cur: Path, src: Path, tars: int, samples: int, seed: int = 0) -> dict:
    """Source tars whose uids are half the pool's bucketed rows (spread over its files), half unknown."""
    rng = np.random.default_rng(seed)
    buckets = _year_buckets(cur)
    files = [f for year, f in _files(cur) if year in buckets]
    known = tars * samples // 2
    picks = rng.choice(len(files), size=min(len(files), 16), replace=False)
    pool = pl.concat([pl.read_parquet(files[i], columns=["uid"]) for i in picks])["uid"]
    listed = pool.sample(min(known, pool.len()), seed=seed).to_list()
    fresh = [f"{x:032x}" for x in rng.integers(0, 2**63, size=tars * samples - len(listed), dtype=np.int64)]
    every = listed + fresh
    rng.shuffle(every)
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for t in range(tars):
        with open(src / f"{t:05d}.tar", "wb") as fh:
            w = TarWriter(fh)
            for s in range(samples):
                key, uid = f"{t:05d}{s:04d}", every[t * samples + s]
                w.add(f"{key}.jpg", rng.bytes(int(rng.integers(1024, 2048))))
                w.add(f"{key}.txt", f"caption {key}".encode())
                w.add(f"{key}.json", json.dumps({"uid": uid, "key": key}).encode())
            w.close()
    return {"tars": tars, "samples": tars * samples, "listed": len(listed)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    e = sub.add_parser("evalsets")
    e.add_argument("cur", type=Path)
    e.add_argument("work", type=Path)
    e.add_argument("--per-tar", type=int, default=10_000)
    r = sub.add_parser("reshard")
    r.add_argument("cur", type=Path)
    r.add_argument("src", type=Path)
    r.add_argument("--tars", type=int, default=20)
    r.add_argument("--samples", type=int, default=2000)
    args = ap.parse_args()
    if args.what == "evalsets":
        out = evalsets_standin(args.cur, args.work, args.per_tar)
    else:
        out = reshard_sources(args.cur, args.src, args.tars, args.samples)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
