#!/usr/bin/env python
"""Benchmark `tic curate` against one DuckDB query doing the same job on the same files.

For the full size and a quarter of it: make a synthetic pool (`tic synth pool`), then run, several
times each and alternating, `tic curate POOL --out ...` (local Ray, all cores) and a DuckDB COPY
that validates, dates, deduplicates (earliest row per uid, n_seen) and writes Parquet partitioned
by year, with every column of tic's manifest (checked after each size). (The query uses window functions with QUALIFY: the GROUP BY + arg_min formulation took
2.5-4x longer and 2-3x the memory at 4M-16M rows, so the faster one is the peer.) Prints median wall time, rows/s, the ratio, and peak memory of each process tree (sum of
RSS over the process and its descendants, sampled every 0.2 s; Ray's raylet, GCS and workers are
children of the driver; shared pages count once per process, so the sum overstates tic's, which
has several processes, and not DuckDB's single one).

    .venv/bin/python scripts/bench_curate.py              # 16M rows and 4M rows, 3 runs each
    .venv/bin/python scripts/bench_curate.py --rows 2000000 --repeats 2
    .venv/bin/python scripts/bench_curate.py --shape all --rows 16000000   # every pool shape, one table

Pool shapes (`--shape`, comma-separated or `all`): the file size, the row-group size and the
sightings per uid vary, since a benchmark tuned to one generated pool proves little.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from ticdata.layout import CuratedFolder, done_mark

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAP_RE = r"(CC-MAIN-\d{4}(?:-\d{2,4})?)(?:\D|$)"

DUCKDB_JOB = r"""
import json, sys, duckdb
pool, out, collinfo, threads, snap_re = sys.argv[1:6]
con = duckdb.connect()
con.execute(f"SET threads={int(threads)}; SET TimeZone='UTC'; SET preserve_insertion_order=false").fetchall()
con.execute("CREATE TABLE crawls (id VARCHAR, start TIMESTAMPTZ)").fetchall()
con.executemany("INSERT INTO crawls VALUES (?, ?::TIMESTAMP AT TIME ZONE 'UTC')",
                [(c["id"], c["from"]) for c in json.load(open(collinfo))])
con.execute('''
COPY (
  WITH raw AS (
    SELECT *, try_strptime(crawl_time, '%Y-%m-%dT%H:%M:%SZ')::TIMESTAMP AT TIME ZONE 'UTC' AS ct,
           nullif(regexp_extract(source, '@SNAP_RE@', 1), '') AS snap
    FROM read_parquet('@POOL@/**/*.parquet', filename=true, file_row_number=true)
  ),
  ranged AS (
    SELECT *, CASE WHEN ct >= TIMESTAMPTZ '1990-01-01 00:00:00+00' AND ct < TIMESTAMPTZ '2100-01-01 00:00:00+00' THEN ct END AS ctv
    FROM raw
  ),
  dated AS (
    SELECT r.*, coalesce(ctv, c.start) AS ts,
           CASE WHEN ctv IS NOT NULL THEN 'crawl_time' WHEN c.start IS NOT NULL THEN 'snapshot' END AS ts_signal
    FROM ranged r LEFT JOIN crawls c ON c.id = r.snap
  ),
  valid AS (
    SELECT * FROM dated
    WHERE url IS NOT NULL AND trim(url) <> '' AND text IS NOT NULL AND trim(text) <> ''
      AND regexp_full_match(uid, '[0-9a-f]{32}') AND ts IS NOT NULL
  )
  SELECT uid, url, text, ts, month(ts) AS month, count(*) OVER (PARTITION BY uid) AS n_seen, snap AS first_snapshot,
         ts_signal, 'train' AS split, source, ctv AS crawl_time,
         original_width, original_height, clip_b32_similarity_score, year(ts) AS year
  FROM valid
  QUALIFY row_number() OVER (PARTITION BY uid ORDER BY ts, filename, file_row_number) = 1
) TO '@OUT@' (FORMAT parquet, PARTITION_BY (year), COMPRESSION zstd)
'''.replace('@POOL@', pool).replace('@OUT@', out).replace('@SNAP_RE@', snap_re)).fetchall()
"""


def sample_tree(proc: psutil.Process, stop: threading.Event, peaks: dict) -> None:
    while not stop.is_set():
        total, biggest, driver, other = 0, 0, 0, 0
        try:
            procs = [proc] + proc.children(recursive=True)
        except psutil.Error:
            break
        for p in procs:
            try:
                rss = p.memory_info().rss  # cheap (statm); PSS via smaps cost a core on 2-core machines
            except psutil.Error:
                continue
            total += rss
            biggest = max(biggest, rss)
            if p is proc:
                driver = rss
            else:  # a task's process, or Ray's own (raylet, GCS)
                other = max(other, rss)
        peaks["tree"] = max(peaks.get("tree", 0), total)
        peaks["process"] = max(peaks.get("process", 0), biggest)
        peaks["driver"] = max(peaks.get("driver", 0), driver)
        peaks["task"] = max(peaks.get("task", 0), other)
        stop.wait(0.2)


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, dict]:
    start = time.perf_counter()
    p = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
    peaks: dict = {}
    stop = threading.Event()
    t = threading.Thread(target=sample_tree, args=(p, stop, peaks), daemon=True)
    t.start()
    _, err = p.communicate()
    wall = time.perf_counter() - start
    stop.set()
    t.join()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{err.decode()[-3000:]}")
    return wall, peaks


# name: (rows per file, rows per row group, share of rows re-sighting an earlier pair, what it is)
SHAPES = {
    "default": (1_000_000, 131_072, 0.25, "1M-row files (~56 MB), 131k-row groups, 1.33 sightings/uid"),
    "many-small": (180_000, 10_000, 0.25, "~10 MB files, 10k-row groups"),
    "few-large": (9_000_000, 1_000_000, 0.25, "~500 MB files, 1M-row groups"),
    "unique": (1_000_000, 131_072, 0.0, "1 sighting per uid"),
    "resighted": (1_000_000, 131_072, 0.75, "4 sightings per uid"),
}


def ensure_pool(root: Path, rows: int, shape: str = "default") -> Path:
    per_file, group, share, _ = SHAPES[shape]
    pool = root / f"pool-{shape}-{rows}"
    summary = pool / "_synth.json"
    if summary.exists() and json.loads(summary.read_text())["rows"] == rows:
        return pool
    print(f"making a {rows:,}-row {shape} pool in {pool} ...", flush=True)
    subprocess.run([str(BIN / "tic"), "synth", "pool", "--rows", str(rows), "--out", str(pool), "--overwrite", "-q",
                    "--rows-per-file", str(per_file), "--row-group-rows", str(group), "--resight-share", str(share)], check=True)
    return pool


CLUSTER: dict = {}  # "address", "env" of the loopback cluster when --executor names `cluster`


def tic_command(executor: str) -> tuple[list[str], dict | None]:
    """tic's flags and environment for one executor; `cluster`: Ray at --ray-address, already
    running (two loopback nodes, one CPU each), so no Ray start or stop is timed."""
    if executor == "cluster":
        return ["--executor", "ray", "--ray-address", CLUSTER["address"]], CLUSTER["env"]
    return ["--executor", executor], None


def bench_size(root: Path, rows: int, repeats: int, threads: int, shape: str = "default",
               executors: tuple[str, ...] = ("auto",), pool: Path | None = None) -> list[dict]:
    """One pool: each repeat runs tic once per executor, then DuckDB; one result per executor.
    `pool`: a pool made elsewhere (its folder name is the shape), else a synthetic one of `shape`."""
    pool = pool or ensure_pool(root, rows, shape)
    collinfo = REPO / "ticdata" / "data" / "collinfo.json"
    ours: dict[str, list] = {e: [] for e in executors}
    duck = []
    for i in range(repeats):
        line = []
        for ex in executors:
            out = root / "out-tic"
            shutil.rmtree(out, ignore_errors=True)
            flags, env = tic_command(ex)
            wall, peaks = timed([str(BIN / "tic"), "curate", str(pool), "--out", str(out), "-q", *flags], env=env)
            timing = json.loads(done_mark(out, "curate").read_text())["result"]["timing"]
            timing["manifest_bytes"] = sum(f.stat().st_size for f in CuratedFolder(out).manifest_files())
            ours[ex].append((wall, peaks, timing))
            doc = json.loads(CuratedFolder(out).manifest_json.read_text())
            line.append(f"tic ({ex}) {wall:6.1f}s")
        print(f"  run {i + 1}: {'  '.join(line)}", end="", flush=True)
        dout = root / "out-duckdb"
        shutil.rmtree(dout, ignore_errors=True)
        wall_d, peaks_d = timed([sys.executable, "-c", DUCKDB_JOB, str(pool), str(dout), str(collinfo), str(threads), SNAP_RE])
        duck.append((wall_d, peaks_d))
        print(f"  duckdb {wall_d:6.1f}s", flush=True)
    import polars as pl

    kept_duck = pl.scan_parquet(str(root / "out-duckdb" / "**" / "*.parquet")).select(pl.len()).collect().item()
    assert kept_duck == doc["ledger"]["kept"], (kept_duck, doc["ledger"]["kept"])
    # the same job: both write every column of tic's manifest (year is the folder name in both)
    cols = lambda d: set(pl.scan_parquet(str(d / "**" / "*.parquet"), hive_partitioning=False).collect_schema())  # noqa: E731
    ours_cols, duck_cols = cols(CuratedFolder(root / "out-tic").manifest_dir), cols(root / "out-duckdb")
    assert duck_cols == ours_cols, duck_cols ^ ours_cols
    med = lambda xs: statistics.median(x[0] for x in xs)  # noqa: E731
    peak = lambda xs, k: max(x[1].get(k, 0) for x in xs)  # noqa: E731
    results = []
    for ex in executors:
        runs = sorted(ours[ex], key=lambda x: x[0])
        results.append({
            "shape": shape,
            "executor": ex,
            "pool_mb": sum(f.stat().st_size for f in pool.rglob("*.parquet")) / 1e6,
            "files": len(list(pool.rglob("*.parquet"))),
            "rows": rows,
            "kept": doc["ledger"]["kept"],
            "tic_s": med(runs),
            "duckdb_s": med(duck),
            "tic_tree_gib": peak(runs, "tree") / 2**30,
            "tic_process_gib": peak(runs, "process") / 2**30,
            "tic_driver_gib": peak(runs, "driver") / 2**30,
            "tic_task_gib": peak(runs, "task") / 2**30,
            "duckdb_tree_gib": peak(duck, "tree") / 2**30,
            "timing": runs[len(runs) // 2][2],  # the median run's profile
            "wall_s": runs[len(runs) // 2][0],
            "runs": repeats,
        })
    return results


PAPER_ROWS = 12_700_000_000  # TiC-DataComp's pool
SCALE_SETTINGS = {  # name: (chunk rows, partition rows)
    "defaults (1M, 1M)": (1_000_000, 1_000_000),
    "--chunk-rows 4M --partition-rows 4M": (4_000_000, 4_000_000),
}


def projection(r: dict, rows: int = PAPER_ROWS) -> list[dict]:
    """tic curate at `rows`, from one Ray run's per-core rates (on Ray a task holds one core, so rows
    per task-second is a rate per core): core-hours, intermediate and output bytes, tasks, shuffle
    reads, and peak memory per task (measured at 1M-row chunks and partitions, scaled linearly)."""
    t = r["timing"]
    map_s = sum(v for k, v in t["task_s"].items() if k.startswith("map."))
    red_s = sum(v for k, v in t["task_s"].items() if k.startswith("reduce."))
    valid, kept = t["rows"]["reduce"] / t["rows"]["map"], t["rows"]["kept"] / t["rows"]["map"]
    map_rate, red_rate = t["rows"]["map"] / map_s, t["rows"]["reduce"] / red_s
    out = []
    for name, (chunk, part) in SCALE_SETTINGS.items():
        maps, parts = -(-rows // chunk), -(-int(rows * valid) // part)
        shuffle = t["shuffle_bytes"] / t["rows"]["reduce"] * rows * valid
        out.append({
            "setting": name,
            "map_rate": map_rate, "reduce_rate": red_rate,
            "core_hours": rows / map_rate / 3600 + rows * valid / red_rate / 3600,
            "map_core_hours": rows / map_rate / 3600, "reduce_core_hours": rows * valid / red_rate / 3600,
            "shuffle_tb": shuffle / 1e12, "output_tb": t["manifest_bytes"] / t["rows"]["kept"] * rows * kept / 1e12,
            "maps": maps, "partitions": parts, "reads": maps * parts, "read_kb": shuffle / (maps * parts) / 1e3,
            "task_gib": r["tic_process_gib"] * max(chunk, part) / 1_000_000,
        })
    return out


def task_gib(r: dict, p: dict) -> str:
    # a cluster's workers are not this script's children: their memory is not sampled
    return f"{'n/a':>8}" if r["executor"] == "cluster" else f"{p['task_gib']:>8.1f}"


def print_projection(results: list[dict], rows: int = PAPER_ROWS) -> None:
    ray = [r for r in results if r["executor"] in ("ray", "cluster")]
    if not ray:
        return
    print()
    print(f"projection to {rows / 1e9:.1f}B rows from each Ray run's per-core rates (rows per task-second):")
    print(f"{'shape':<11} {'exec':>7} {'map r/s/core':>12} {'red r/s/core':>12} {'core-h':>7} {'setting':<38} {'shuffle TB':>10}"
          f" {'output TB':>9} {'map tasks':>9} {'partitions':>10} {'reads':>13} {'KB/read':>7} {'GiB/task':>8}")
    for r in ray:
        for p in projection(r, rows):
            print(f"{r['shape']:<11} {r['executor']:>7} {p['map_rate']:>12,.0f} {p['reduce_rate']:>12,.0f} {p['core_hours']:>7.1f}"
                  f" {p['setting']:<38} {p['shuffle_tb']:>10.2f} {p['output_tb']:>9.2f} {p['maps']:>9,} {p['partitions']:>10,}"
                  f" {p['reads']:>13,} {p['read_kb']:>7.0f} {task_gib(r, p)}")
    duck = {r["shape"]: r for r in results}
    for shape, r in duck.items():
        print(f"{shape:<11}  DuckDB at {r['rows'] / r['duckdb_s']:,.0f} rows/s on {os.cpu_count()} threads: "
              f"{rows / (r['rows'] / r['duckdb_s']) * os.cpu_count() / 3600:,.1f} core-hours if it scaled linearly"
              f" (one process; its peak memory was {r['duckdb_tree_gib']:.1f} GiB at {r['rows'] / 1e6:.0f}M rows and grows with the pool)")


def print_profile(results: list[dict]) -> None:
    """Where tic's time went in each median run: the driver's phases (wall seconds; `start+stop` is
    the process wall minus the curation's own phases: interpreter, imports, input checks, Ray's start
    and stop) and each task step summed over tasks (task-seconds), with rows per task-second."""
    print()
    print(f"{'shape':<11} {'rows':>11} {'exec':>7} | {'start+stop':>10} {'plan':>5} {'map':>6} {'reduce':>6} {'final':>5} |"
          f" {'m.read':>6} {'m.recov':>7} {'m.write':>7} {'r.read':>6} {'r.dedup':>7} {'r.write':>7} |"
          f" {'map rows/task-s':>15} {'reduce rows/task-s':>18}")
    for r in results:
        t = r["timing"]
        w, s = t["wall_s"], t["task_s"]
        other = r["wall_s"] - sum(w.values())
        map_s = sum(v for k, v in s.items() if k.startswith("map."))
        red_s = sum(v for k, v in s.items() if k.startswith("reduce."))
        print(f"{r['shape']:<11} {r['rows']:>11,} {r['executor']:>7} | {other:>10.1f} {w['plan']:>5.1f} {w['map']:>6.1f}"
              f" {w['reduce']:>6.1f} {w['finalize']:>5.1f} | {s.get('map.read', 0):>6.1f} {s.get('map.recover', 0):>7.1f}"
              f" {s.get('map.write', 0):>7.1f} {s.get('reduce.read', 0):>6.1f} {s.get('reduce.dedupe', 0):>7.1f}"
              f" {s.get('reduce.write', 0):>7.1f} | {t['rows']['map'] / max(map_s, 1e-9):>15,.0f}"
              f" {t['rows']['reduce'] / max(red_s, 1e-9):>18,.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=16_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", default=os.environ.get("TIC_BENCH_DIR", str(Path(tempfile.gettempdir()) / "tic-bench")))
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="DuckDB threads (default: all cores)")
    ap.add_argument("--keep", action="store_true", help="keep the pools for the next run")
    ap.add_argument("--executor", default="auto", help="tic's executors, comma-separated: auto, inline, ray, cluster (a two-node"
                    " Ray cluster on 127.0.0.2 and 127.0.0.3, one CPU each, started once for the whole run); one tic run each per repeat")
    ap.add_argument("--sizes", default="quarter,full", help="quarter,full (default) or full: run the quarter-size pool too?")
    ap.add_argument("--json", help="also write every result (with its time profile) to this JSON file")
    ap.add_argument("--pool", help="instead of synthetic pools: one pool made elsewhere (e.g. scripts/make_heldout_pool.py), "
                    "with DataComp's columns plus source and crawl_time, as the DuckDB query reads them")
    ap.add_argument("--shape", default="default", help=f"pool shapes, comma-separated, or all: {', '.join(SHAPES)}")
    args = ap.parse_args()
    root = Path(args.workdir)
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    shapes = list(SHAPES) if args.shape == "all" else [x.strip() for x in args.shape.split(",") if x.strip()]
    unknown = [x for x in shapes if x not in SHAPES]
    if args.pool:
        shapes, unknown = [Path(args.pool).name], []
    if unknown:
        sys.exit(f"--shape: unknown {', '.join(unknown)}; choose from {', '.join(SHAPES)} or all")
    executors = tuple(x.strip() for x in args.executor.split(",") if x.strip())
    if not executors or set(executors) - {"auto", "inline", "ray", "cluster"}:
        sys.exit("--executor: comma-separated auto, inline, ray, cluster")
    sizes = [args.rows // 4, args.rows] if args.sizes == "quarter,full" else [args.rows]
    results = []
    with contextlib.ExitStack() as stack:
        if "cluster" in executors:
            start_cluster(stack, root)
        run_all(root, args, shapes, sizes, executors, results)
    shutil.rmtree(root / "ray-logs", ignore_errors=True)  # once the cluster has stopped
    if created and not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    print_results(args, shapes, executors, results)


def start_cluster(stack: contextlib.ExitStack, root: Path) -> None:
    """The tests' loopback two-node cluster (tests/ray_cluster.py), with token authentication."""
    import secrets

    sys.path.insert(0, str(REPO / "tests"))
    from ray_cluster import two_node_cluster

    token = secrets.token_hex(32)
    logs = root / "ray-logs"
    logs.mkdir(exist_ok=True)
    address, nodes = stack.enter_context(two_node_cluster(logs, token))
    print(f"loopback cluster at {address}: nodes {', '.join(n['ip'] for n in nodes)}", flush=True)
    CLUSTER.update(address=address, env={k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"} | {"RAY_AUTH_TOKEN": token})


def run_all(root: Path, args, shapes: list[str], sizes: list[int], executors: tuple[str, ...], results: list) -> None:
    try:
        if args.pool:
            import pyarrow.parquet as pq

            pool = Path(args.pool)
            rows = sum(pq.ParquetFile(f).metadata.num_rows for f in pool.rglob("*.parquet"))
            print(f"{pool}, {rows:,} rows:", flush=True)
            results.extend(bench_size(root, rows, args.repeats, args.threads, pool.name, executors, pool=pool))
            return
        for shape in shapes:
            for rows in sizes:
                print(f"{shape}, {rows:,} rows:", flush=True)
                results.extend(bench_size(root, rows, args.repeats, args.threads, shape, executors))
    finally:
        for d in root.glob("out-*"):
            shutil.rmtree(d, ignore_errors=True)
        if not args.keep:  # only what this script made
            for d in root.glob("pool-*"):
                shutil.rmtree(d, ignore_errors=True)


def print_results(args, shapes: list[str], executors: tuple[str, ...], results: list[dict]) -> None:
    print()
    print(f"{'shape':<11} {'exec':>6} {'files':>5} {'pool MB':>8} {'rows':>12} {'tic s':>8} {'duckdb s':>9} {'tic/duckdb':>10} {'tic rows/s':>11}"
          f" {'duckdb rows/s':>13} {'tic peak GiB':>12} {'(1 proc)':>8} {'duckdb GiB':>10}")
    for r in results:
        print(f"{r['shape']:<11} {r['executor']:>6} {r['files']:>5} {r['pool_mb']:>8,.0f} {r['rows']:>12,} {r['tic_s']:>8.1f} {r['duckdb_s']:>9.1f}"
              f" {r['tic_s'] / r['duckdb_s']:>10.2f} {r['rows'] / r['tic_s']:>11,.0f} {r['rows'] / r['duckdb_s']:>13,.0f}"
              f" {r['tic_tree_gib']:>12.2f} {r['tic_process_gib']:>8.2f} {r['duckdb_tree_gib']:>10.2f}")
    print_profile(results)
    print_projection(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print()
    for shape in shapes:
        for ex in executors:
            pair = [r for r in results if r["shape"] == shape and r["executor"] == ex]
            if len(pair) == 2:
                small, big = pair
                print(f"{shape:<11} ({ex}) {SHAPES.get(shape, (0, 0, 0, 'a pool made elsewhere'))[3]}: x{big['rows'] / small['rows']:.0f} rows -> tic time "
                      f"x{big['tic_s'] / small['tic_s']:.2f}, duckdb time x{big['duckdb_s'] / small['duckdb_s']:.2f}, "
                      f"tic peak memory x{big['tic_tree_gib'] / small['tic_tree_gib']:.2f}")
    print(f"medians of {args.repeats} runs; executor auto = in process (a task per core on threads) under 2 GiB of input, else a local Ray;"
          f" {os.cpu_count()} cores, load average before the last run {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
