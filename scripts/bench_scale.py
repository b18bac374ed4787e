#!/usr/bin/env python
"""Every verb's rate and memory at several pool sizes, beside a peer where one exists.

For each size: a synthetic pool (`tic synth pool`, bench_curate's default shape), then per verb,
several runs each, alternating with its peer:

    curate   `tic curate POOL --out CUR`       vs bench_curate.py's DuckDB query (same kept rows asserted);
             the last run's folder is what the other verbs read (without `curate` in --verbs, the
             pool is curated once, untimed)
    export   `tic uids export CUR --out ...`   vs a Polars script in one process writing the same .npy bytes
    import   `tic uids import CUR B.npy... --out ...` (every bucket's exported list) vs a Polars script
             joining the whole manifest with every list at once in one process: same Parquet bytes
    audit    `tic audit CUR --out ...`         (no peer: its URL-date parser is timed alone by bench_urldates.py)
    evalsets `tic evalsets WORK --no-train-shards` on a copy of CUR whose image hashes are stand-ins
             (bench_scale_inputs.py: per bucket one empty tar and its hash table per 10,000 rows, so
             the run resumes after its hash stage): hashing is one task per tar whatever the pool's
             size, the rest (join, selection, decontamination, marking) is what grows with the pool.
             No peer.
    reshard  `tic reshard SRC --manifest CUR --out ...`: 20 source tars of 2,000 samples, half of
             their uids in the pool; the uid -> bucket lookup covers the whole pool (what grows with
             it), the bytes copied stay fixed (bench_reshard.py measures the copy against tarfile).
             Rows = the curated rows. No peer.

Prints per verb and size: median wall, rows/s per core, the peer's median and the ratio, and peak
memory (RSS sampled every 0.2 s: summed over the process tree, of the driver (the `tic` process),
and of the largest other process: a task's worker, or Ray's own), then
the core-hours each verb would take at TiC-DataComp's 12.7B rows at the largest size's rate.

    .venv/bin/python scripts/bench_scale.py                              # 4M and 16M rows, 3 runs each
    .venv/bin/python scripts/bench_scale.py --rows 4000000,16000000,64000000 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_curate import BIN, bench_size, ensure_pool, timed  # noqa: E402

PAPER_ROWS = 12_700_000_000

POLARS_EXPORT = r"""
import json, sys, numpy as np, polars as pl
cur, out = sys.argv[1:3]
steps = json.load(open(f"{cur}/manifest.json"))["benchmark"]["steps"]
year_to_bucket = {y: s["name"] for s in steps for y in s["years"]}
df = (pl.scan_parquet(f"{cur}/manifest/", hive_partitioning=True).filter(pl.col("split") == "train")
      .select(b=pl.col("year").replace_strict(year_to_bucket, default=None, return_dtype=pl.String),
              f0=pl.col("uid").str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64),
              f1=pl.col("uid").str.slice(16, 16).str.to_integer(base=16, dtype=pl.UInt64))
      .drop_nulls("b").unique().sort("f0", "f1").collect())
for (b,), g in df.partition_by("b", as_dict=True).items():
    a = np.empty(g.height, np.dtype("u8,u8")); a["f0"], a["f1"] = g["f0"].to_numpy(), g["f1"].to_numpy()
    np.save(f"{out}/{b}.npy", a)
"""


POLARS_IMPORT = r"""
import os, sys, numpy as np, polars as pl
cur, out, *specs = sys.argv[1:]
def listed(name, path):
    a = np.load(path, allow_pickle=False)
    return pl.DataFrame({"f0": a["f0"], "f1": a["f1"]}).with_columns(bucket=pl.lit(name))
table = pl.concat([listed(*s.split("=", 1)) for s in specs])
marks = {"exclude_reason": pl.String, "excluded_by": pl.String, "excluded_distance": pl.Int32, "eval_class": pl.String}
keys = [pl.col("uid").str.slice(i, 16).str.to_integer(base=16, dtype=pl.UInt64).alias(f) for i, f in ((0, "f0"), (16, "f1"))]
lf = pl.scan_parquet(f"{cur}/manifest/", hive_partitioning=False, include_file_paths="_file")
sel = lf.with_columns(keys).join(table.lazy(), on=["f0", "f1"]).drop("f0", "f1").collect()
for (path,), part in sel.partition_by("_file", as_dict=True).items():
    part = part.drop("_file").sort("uid")
    part = part.with_columns([pl.lit("train").alias("split")] + [pl.lit(None, t).alias(c) for c, t in marks.items() if c in part.columns])
    target = os.path.join(out, "manifest", *path.split(os.sep)[-2:])
    os.makedirs(os.path.dirname(target), exist_ok=True)
    part.write_parquet(target, compression="zstd", statistics=True)
"""


def same_npy(tic_out: Path, peer_out: Path) -> None:
    """The peer writes no file for an empty bucket; every other file must be byte-identical."""
    for f in sorted(tic_out.glob("*.npy")):
        other = peer_out / f.name
        if other.exists():
            assert other.read_bytes() == f.read_bytes(), f"{f.name}: tic and the Polars script differ"
        else:
            assert len(__import__("numpy").load(f)) == 0, f"{f.name}: only tic wrote it"


def bench_export(cur: Path, root: Path, repeats: int) -> dict:
    script = root / "polars_export.py"
    script.write_text(POLARS_EXPORT)
    tic_runs, peer_runs = [], []
    for _ in range(repeats):
        for d in ("x-tic", "x-peer"):
            shutil.rmtree(root / d, ignore_errors=True)
        (root / "x-peer").mkdir()
        tic_runs.append(timed([str(BIN / "tic"), "-q", "uids", "export", str(cur), "--out", str(root / "x-tic")]))
        peer_runs.append(peer_timed([sys.executable, str(script), str(cur), str(root / "x-peer")]))
        if peer_runs[-1][0] is not None:
            same_npy(root / "x-tic", root / "x-peer")
    return summarize(tic_runs, peer_runs)


def bench_import(cur: Path, root: Path, repeats: int) -> dict:
    """Every bucket's uid file (from `tic uids export`) imported back: every curated row is listed."""
    lists = root / "lists"
    if not any(lists.glob("*.npy")):  # a run killed before its lists were written leaves an empty folder
        shutil.rmtree(lists, ignore_errors=True)
        subprocess.run([str(BIN / "tic"), "-q", "uids", "export", str(cur), "--out", str(lists)], check=True)
    specs = [f"{p.stem}={p}" for p in sorted(lists.glob("*.npy"))]
    script = root / "polars_import.py"
    script.write_text(POLARS_IMPORT)
    tic_runs, peer_runs = [], []
    for _ in range(repeats):
        for d in ("i-tic", "i-peer"):
            shutil.rmtree(root / d, ignore_errors=True)
        tic_runs.append(timed([str(BIN / "tic"), "-q", "uids", "import", str(cur), *specs, "--out", str(root / "i-tic")]))
        peer_runs.append(peer_timed([sys.executable, str(script), str(cur), str(root / "i-peer"), *specs]))
        if peer_runs[-1][0] is None:
            continue
        mine = sorted((root / "i-tic" / "manifest").glob("year=*/*.parquet"))
        theirs = sorted((root / "i-peer" / "manifest").glob("year=*/*.parquet"))
        assert [p.relative_to(root / "i-tic") for p in mine] == [p.relative_to(root / "i-peer") for p in theirs], "other files"
        assert all(a.read_bytes() == b.read_bytes() for a, b in zip(mine, theirs)), "tic and the Polars script differ"
    shutil.rmtree(lists)
    return summarize(tic_runs, peer_runs)


def peer_timed(cmd: list[str]) -> tuple[float | None, dict]:
    """A peer's run; one that fails (killed when it outgrows memory: it holds the whole pool) is
    recorded as failed, with the memory it had reached, instead of ending the benchmark."""
    try:
        return timed(cmd)
    except SystemExit as e:
        print(f"  peer failed: {str(e).splitlines()[0][:200]}", flush=True)
        return None, {"failed": True}


def bench_audit(cur: Path, root: Path, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        shutil.rmtree(root / "a-tic", ignore_errors=True)
        runs.append(timed([str(BIN / "tic"), "-q", "audit", str(cur), "--out", str(root / "a-tic")]))
    return summarize(runs, [])


INPUTS = Path(__file__).resolve().parent / "bench_scale_inputs.py"


def bench_evalsets(cur: Path, root: Path, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        work = root / "e-tic"
        subprocess.run([sys.executable, str(INPUTS), "evalsets", str(cur), str(work)], check=True, stdout=subprocess.DEVNULL)
        runs.append(timed([str(BIN / "tic"), "-q", "evalsets", str(work), "--no-train-shards"]))
    shutil.rmtree(root / "e-tic", ignore_errors=True)
    return summarize(runs, [])


def bench_reshard(cur: Path, root: Path, repeats: int) -> dict:
    src = root / "r-src"
    subprocess.run([sys.executable, str(INPUTS), "reshard", str(cur), str(src)], check=True, stdout=subprocess.DEVNULL)
    runs = []
    for _ in range(repeats):
        shutil.rmtree(root / "r-tic", ignore_errors=True)
        runs.append(timed([str(BIN / "tic"), "-q", "reshard", str(src), "--manifest", str(cur), "--out", str(root / "r-tic")]))
    shutil.rmtree(src)
    return summarize(runs, [])


def bench_curate(pool: Path, cur: Path, root: Path, repeats: int) -> dict:
    """bench_curate.py's run (tic and DuckDB alternating, the kept rows compared); its last tic
    output becomes CUR."""
    r = bench_size(root, int(json.loads((pool / "_synth.json").read_text())["rows"]), repeats, os.cpu_count() or 1)[0]
    shutil.rmtree(cur, ignore_errors=True)
    (root / "out-tic").rename(cur)
    shutil.rmtree(root / "out-duckdb", ignore_errors=True)
    return {"tic_s": r["tic_s"], "peer_s": r["duckdb_s"], "peer_gib": r["duckdb_tree_gib"], "tic_tree_gib": r["tic_tree_gib"],
            "tic_process_gib": r["tic_process_gib"], "tic_driver_gib": r["tic_driver_gib"], "tic_task_gib": r["tic_task_gib"]}


def summarize(tic_runs: list, peer_runs: list) -> dict:
    med = lambda runs, i=0: statistics.median(r[0] for r in runs)  # noqa: E731
    peak = lambda runs, k: max(r[1].get(k, 0) for r in runs) / 2**30  # noqa: E731
    out = {"tic_s": med(tic_runs), "tic_tree_gib": peak(tic_runs, "tree"), "tic_process_gib": peak(tic_runs, "process"),
           "tic_driver_gib": peak(tic_runs, "driver"), "tic_task_gib": peak(tic_runs, "task")}
    done = [r for r in peer_runs if r[0] is not None]
    if done:
        out |= {"peer_s": med(done), "peer_gib": peak(done, "tree")}
    elif peer_runs:
        out |= {"peer_failed": True}
    return out


VERBS = {"curate": bench_curate, "export": bench_export, "import": bench_import, "audit": bench_audit,
         "evalsets": bench_evalsets, "reshard": bench_reshard}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="4000000,16000000", help="pool sizes, comma-separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--verbs", default=",".join(VERBS), help=f"comma-separated: {', '.join(VERBS)}")
    ap.add_argument("--workdir", help="where pools and outputs go (default: a temporary folder, removed)")
    ap.add_argument("--keep", action="store_true", help="keep pools and curated folders for the next run")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args()
    verbs = [v.strip() for v in args.verbs.split(",") if v.strip()]
    if unknown := [v for v in verbs if v not in VERBS]:
        sys.exit(f"--verbs: unknown {', '.join(unknown)}; choose from {', '.join(VERBS)}")
    root = Path(args.workdir or tempfile.mkdtemp(prefix="tic-bench-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for rows in [int(float(x)) for x in args.rows.split(",")]:
            pool = ensure_pool(root, rows)
            cur = root / f"cur-{rows}"
            if "curate" in verbs:
                print(f"curate, {rows:,}-row pool ...", flush=True)
                results.append({"verb": "curate", "rows": rows} | bench_curate(pool, cur, root, args.repeats))
            elif not (cur / "manifest.json").exists():
                subprocess.run([str(BIN / "tic"), "-q", "curate", str(pool), "--out", str(cur)], check=True)
            kept = json.loads((cur / "manifest.json").read_text())["rows"]
            for verb in [v for v in verbs if v != "curate"]:
                print(f"{verb}, {rows:,}-row pool ({kept:,} curated rows) ...", flush=True)
                results.append({"verb": verb, "rows": kept} | VERBS[verb](cur, root, args.repeats))
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def report(results: list[dict]) -> None:
    cores = os.cpu_count() or 1
    print(f"\n{'verb':<8} {'rows':>12} {'tic s':>8} {'rows/s/core':>12} {'peer s':>7} {'tic/peer':>8} {'tic GiB':>8}"
          f" {'driver':>8} {'task':>8} {'peer GiB':>8} {'core-h @12.7B':>13}")
    for r in results:
        rate = r["rows"] / r["tic_s"] / cores
        peer = (f"{r['peer_s']:>7.1f} {r['tic_s'] / r['peer_s']:>8.2f}" if "peer_s" in r
                else f"{'failed':>7} {'-':>8}" if r.get("peer_failed") else f"{'-':>7} {'-':>8}")
        print(f"{r['verb']:<8} {r['rows']:>12,} {r['tic_s']:>8.1f} {rate:>12,.0f} {peer} {r['tic_tree_gib']:>8.2f}"
              f" {r.get('tic_driver_gib', float('nan')):>8.2f} {r.get('tic_task_gib', float('nan')):>8.2f}"
              f" {r.get('peer_gib', float('nan')):>8.2f} {PAPER_ROWS / rate / 3600:>13,.1f}")
    print(f"\nmedians; rows = the curated rows each verb reads (curate: the pool's rows); {cores} cores; core-hours at "
          "12.7B rows assume the rate per core holds (tasks are per file / per range)")


if __name__ == "__main__":
    main()
