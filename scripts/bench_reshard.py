#!/usr/bin/env python
"""Benchmark `reshard` against a plain tar-to-tar copy of the same selected samples.

Makes a synthetic DataComp-style pool (tars written like webdataset/img2dataset do: pax headers,
members .jpg with random JPEG-like payloads, .txt, .json holding the uid), selects about half of
the uids into three buckets with DataComp uid files, then runs, alternating, several times each:

  reshard      `ticdata.reshard.reshard(...)` on a local Ray (started once, before the runs;
               its start-up time is printed apart), all cores
  tarfile-copy the limit named in the design: one process reads every input tar with `tarfile`
               and writes every member of the selected samples to per-bucket output tars with
               `tarfile` (the selection handed to it precomputed: no JSON parsing, no Ray, no
               deduplication, no resume)
  lean-copy    the same, through tic's own streaming tar reader/writer (ticdata.tars): the
               tightest plain copy of the same bytes, without Ray, dedupe or resume
  raw-copy     for scale: `shutil.copyfile` of every input tar (the disk's own rate)

and prints median wall times, MB/s of pool bytes read, the ratio reshard/tarfile-copy of
throughputs (goal >= 0.7), and peak memory (RSS summed over the process tree while each ran, and
the largest single process). The pool stays in the page cache between runs, so the figures are
CPU-bound throughput, as on a machine whose disk keeps up.

    .venv/bin/python scripts/bench_reshard.py                        # 40 tars x 2,000 samples, 3 runs
    .venv/bin/python scripts/bench_reshard.py --tars 80 --samples 5000 --repeats 5
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shutil
import statistics
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ticdata.executor import RayExecutor  # noqa: E402
from ticdata.reshard import reshard  # noqa: E402
from ticdata.uidlists import write_uid_file  # noqa: E402

BUCKETS = ("2014", "2015", "2016")


class PeakSampler:
    """Peak RSS of this process (`driver`), of its descendants together with it (`tree`: Ray's
    raylet, GCS and workers included, idle ones too) and of the largest descendant (`worker`: a Ray worker, the raylet or GCS)."""

    def __init__(self):
        self.me = psutil.Process()
        self.tree = self.driver = self.worker = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = biggest = 0
            try:
                mine = self.me.memory_info().rss
            except psutil.Error:
                mine = 0
            for p in self.me.children(recursive=True):
                try:
                    rss = p.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                biggest = max(biggest, rss)
            self.tree = max(self.tree, total + mine)
            self.driver, self.worker = max(self.driver, mine), max(self.worker, biggest)
            self._stop.wait(0.1)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        return False


def make_pool(root: Path, tars: int, samples: int, min_kb: int, max_kb: int, select: float, seed: int) -> tuple[list[str], dict]:
    """The pool, three uid files, and {(tar, key): bucket} for the plain copy."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    chosen: dict[str, list[str]] = {b: [] for b in BUCKETS}
    selection: dict[tuple[str, str], str] = {}
    for t in range(tars):
        path = root / f"{t:08d}.tar"
        uids = [f"{int(a):016x}{int(b):016x}" for a, b in rng.integers(0, 2**63, (samples, 2), dtype=np.uint64) * 2 + 1]
        draws = rng.random(samples)
        sizes = rng.integers(min_kb * 1024, max_kb * 1024, samples)
        with tarfile.open(path, "w") as tf:  # as webdataset's TarWriter: pax headers, float mtimes
            for i, uid in enumerate(uids):
                key = f"{t:04d}{i:05d}"
                jpg = b"\xff\xd8\xff\xe0" + rng.bytes(int(sizes[i])) + b"\xff\xd9"
                meta = {"uid": uid, "url": f"http://images.example/{t}/{i}.jpg", "caption": "a photo of a thing",
                        "width": 512, "height": 384, "key": key, "status": "success"}
                for ext, data in (("jpg", jpg), ("txt", b"a photo of a thing"), ("json", json.dumps(meta).encode())):
                    ti = tarfile.TarInfo(f"{key}.{ext}")
                    ti.size, ti.mtime, ti.mode = len(data), time.time(), 0o444
                    tf.addfile(ti, io.BytesIO(data))
                if draws[i] < select:
                    b = BUCKETS[int(draws[i] / select * len(BUCKETS))]
                    chosen[b].append(uid)
                    selection[(str(path), key)] = b
        (root / f"{t:08d}.parquet").write_bytes(b"")  # DataComp's side files, skipped
    specs = []
    for b, us in chosen.items():
        write_uid_file(root.parent / "uids" / f"{b}.npy", us)
        specs.append(str(root.parent / "uids" / f"{b}.npy"))
    return specs, selection


def tarfile_copy(tars: list[Path], selection: dict, out: Path, per_shard: int) -> int:
    """The limit: tarfile in, tarfile out, selected samples only, one process."""
    writers: dict[str, list] = {}  # bucket -> [tarfile, samples in it, shard number]

    def writer(b: str) -> list:
        w = writers.get(b)
        if w is None or w[1] >= per_shard:
            n = 0 if w is None else w[2] + 1
            if w is not None:
                w[0].close()
            (out / b).mkdir(parents=True, exist_ok=True)
            w = writers[b] = [tarfile.open(out / b / f"{n:08d}.tar", "w"), 0, n]
        return w

    total = 0
    for path in tars:
        key, members = None, []

        def flush():
            nonlocal total
            b = selection.get((str(path), key))
            if b is None:
                return
            w = writer(b)
            for name, data in members:
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                w[0].addfile(ti, io.BytesIO(data))
            w[1] += 1
            total += 1

        with tarfile.open(path, "r|") as tf:
            for m in tf:
                if not m.isreg():
                    continue
                k = m.name.split(".", 1)[0]
                if k != key:
                    if members:
                        flush()
                    key, members = k, []
                members.append((m.name, tf.extractfile(m).read()))
            if members:
                flush()
    for w in writers.values():
        w[0].close()
    return total


def lean_copy(tars: list[Path], selection: dict, out: Path, per_shard: int) -> int:
    """The tightest plain copy: tic's own streaming tar reader and writer, one process, the
    selection precomputed, no Ray, no dedupe, no resume, each byte written once."""
    from ticdata.tars import TarWriter, iter_members

    writers: dict[str, list] = {}

    def writer(b: str) -> list:
        w = writers.get(b)
        if w is None or w[1] >= per_shard:
            n = 0 if w is None else w[3] + 1
            if w is not None:
                w[0].close()
                w[2].close()
            (out / b).mkdir(parents=True, exist_ok=True)
            fh = open(out / b / f"{n:08d}.tar", "wb")
            w = writers[b] = [TarWriter(fh), 0, fh, n]
        return w

    total = 0
    for path in tars:
        key, members = None, []
        for name, data in list(iter_members(path)) + [(None, None)]:
            k = name.split(".", 1)[0] if name else None
            if k != key and members:
                b = selection.get((str(path), key))
                if b is not None:
                    w = writer(b)
                    for mname, mdata in members:
                        w[0].add(mname, mdata)
                    w[1] += 1
                    total += 1
                members = []
            key = k
            if name:
                members.append((name, data))
    for w in writers.values():
        w[0].close()
        w[2].close()
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tars", type=int, default=40)
    ap.add_argument("--samples", type=int, default=2000, help="samples per tar")
    ap.add_argument("--min-kb", type=int, default=10)
    ap.add_argument("--max-kb", type=int, default=30)
    ap.add_argument("--select", type=float, default=0.5, help="fraction of uids put in the uid files")
    ap.add_argument("--samples-per-shard", type=int, default=10_000)
    ap.add_argument("--tars-per-task", type=int, default=1)
    ap.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=os.environ.get("TIC_BENCH_DIR", str(Path(tempfile.gettempdir()) / "tic-bench-reshard")))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    root = Path(args.workdir)
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    made = [root / "pool", root / "uids", root / "out-reshard", root / "out-tarfile", root / "out-lean", root / "out-raw"]
    try:
        print(f"making a pool of {args.tars} tars x {args.samples:,} samples in {root / 'pool'} ...", flush=True)
        specs, selection = make_pool(root / "pool", args.tars, args.samples, args.min_kb, args.max_kb, args.select, args.seed)
        tars = sorted((root / "pool").glob("*.tar"))
        pool_bytes = sum(p.stat().st_size for p in tars)
        print(f"pool: {pool_bytes / 1e6:,.0f} MB, {len(selection):,} of {args.tars * args.samples:,} samples selected "
              f"into {len(BUCKETS)} buckets; {os.cpu_count()} CPUs", flush=True)
        times: dict[str, list[float]] = {"reshard": [], "tarfile-copy": [], "lean-copy": [], "raw-copy": []}
        peaks: dict[str, tuple[int, int, int]] = {}
        t0 = time.perf_counter()
        with RayExecutor(num_cpus=args.num_cpus) as ex:
            ray_start = time.perf_counter() - t0
            for i in range(args.repeats + 1):
                for name in times if i else ["reshard"]:  # run 0: Ray's workers start (shown apart)
                    out = root / f"out-{name.split('-')[0]}"
                    shutil.rmtree(out, ignore_errors=True)
                    with PeakSampler() as peak:
                        start = time.perf_counter()
                        if name == "reshard":
                            doc = reshard([str(root / "pool")], out, ex, uid_files=specs, samples_per_shard=args.samples_per_shard,
                                          tars_per_task=args.tars_per_task, progress=False)
                            n = doc["ledger"]["selected"]
                        elif name == "tarfile-copy":
                            n = tarfile_copy(tars, selection, out, args.samples_per_shard)
                        elif name == "lean-copy":
                            n = lean_copy(tars, selection, out, args.samples_per_shard)
                        else:
                            out.mkdir()
                            for p in tars:
                                shutil.copyfile(p, out / p.name)
                            n = None
                        wall = time.perf_counter() - start
                    assert n is None or n == len(selection), (name, n, len(selection))
                    shutil.rmtree(out, ignore_errors=True)
                    if not i:
                        first = wall
                        continue
                    times[name].append(wall)
                    old = peaks.get(name, (0, 0, 0))
                    peaks[name] = (max(old[0], peak.tree), max(old[1], peak.driver), max(old[2], peak.worker))
                if i:
                    print(f"  run {i}: " + "  ".join(f"{k} {v[-1]:6.2f}s" for k, v in times.items()), flush=True)
    finally:
        for d in made:
            shutil.rmtree(d, ignore_errors=True)
        if created:
            shutil.rmtree(root, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print()
    print(f"not in the medians: local Ray start {ray_start:.1f}s; first reshard (Ray workers starting) {first:.2f}s")
    print(f"{'':<14} {'median s':>9} {'MB/s read':>10} {'samples/s':>10} {'driver GiB':>11} {'largest child GiB':>19} {'tree GiB':>9}")
    n_in = args.tars * args.samples
    for k, v in med.items():
        tree, driver, worker = (x / 2**30 for x in peaks[k])
        w = f"{worker:>19.2f}" if k == "reshard" else f"{'-':>19}"
        print(f"{k:<14} {v:>9.2f} {pool_bytes / v / 1e6:>10.0f} {n_in / v:>10,.0f} {driver:>11.2f} {w} {tree:>9.2f}")
    print("(peak RSS; driver = this process; tree = it and every descendant, Ray's idle processes included)")
    print(f"\nreshard/tarfile-copy throughput: {med['tarfile-copy'] / med['reshard']:.2f}  (goal >= 0.7)")
    print(f"reshard/lean-copy throughput:    {med['lean-copy'] / med['reshard']:.2f}  (the same bytes through tic's tar code, one process)")
    print(f"reshard/raw-copy throughput:     {med['raw-copy'] / med['reshard']:.2f}")
    print(f"medians of {args.repeats} runs; {args.tars} tars x {args.samples:,} samples, {pool_bytes / 1e6:,.0f} MB")


if __name__ == "__main__":
    main()
