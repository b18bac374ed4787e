"""`tic uids export` at any pool size: sorted runs per manifest file, merged by uid range.

A TiC-DataComp bucket holds one to two billion uids, 16-32 GB as DataComp's `u8,u8` array, so no
process may hold a bucket. Two stages, both tasks on the executor:

- runs: one task per manifest file reads its `uid` column (and `split`, `month` or `bucket` where
  the bucket rule needs them), converts the hex uids to two uint64 halves in Polars, and writes
  one sorted, de-duplicated run per bucket the file touches (`run-<file>-<bucket>.npy`).
- merge: one task per bucket cuts the uid space into ranges of the high half (uids are hashes, so
  ranges hold about equal shares), and for each range in order gathers that range's slice of every
  run (memory-mapped), sorts and de-duplicates it, and appends it to the bucket's .npy. A task holds
  one range (about RANGE_UIDS uids) whatever the bucket's size.

The .npy is np.save's bytes (format 1.0 header, then the array): the header is written last, once
the count after de-duplication is known (`uidlists.UidFileWriter`). The driver holds only file and
bucket names and counts.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import polars as pl

from ticdata import __version__
from ticdata.benchmarks import benchmark_from_manifest, bucket_names
from ticdata.errors import UserError
from ticdata.executor import Task
from ticdata.job import Job
from ticdata.layout import CuratedFolder, bucket_dir, check_apart, part_year
from ticdata.manifest import checked_manifest_files, load_manifest_json
from ticdata.uidlists import UID_DTYPE, UidFileWriter, uid_range_bounds

RANGE_UIDS = 4_000_000  # uids a merge task sorts at once (~64 MB of keys, ~200 MB while sorting)
HEX_UID = r"^[0-9a-fA-F]{32}$"


def uid_halves(uids: pl.Expr) -> list[pl.Expr]:
    """The two big-endian 64-bit halves of a 32-hex-digit uid (DataComp's f0, f1)."""
    return [uids.str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64, strict=False).alias("f0"),
            uids.str.slice(16, 16).str.to_integer(base=16, dtype=pl.UInt64, strict=False).alias("f1")]


def to_uid_array(frame: pl.DataFrame) -> np.ndarray:
    out = np.empty(frame.height, dtype=UID_DTYPE)
    out["f0"], out["f1"] = frame["f0"].to_numpy(), frame["f1"].to_numpy()
    return out


def write_runs(part: str, index: int, work: str, doc: dict, where: str, split: str | None) -> dict:
    """One manifest file -> a sorted, unique run per bucket; the splits it holds (for the driver's check)."""
    path = Path(part)
    bench = benchmark_from_manifest(doc, Path(where))
    names = bucket_names(doc, Path(where))
    columns = pl.read_parquet_schema(path)
    want = ["uid"] + [c for c in ("split", "month", "bucket") if c in columns]
    year = part_year(path)
    df = pl.read_parquet(path, columns=want).with_columns(year=pl.lit(year, dtype=pl.Int32))
    splits = sorted(map(str, df["split"].unique().drop_nulls())) if "split" in df.columns else []
    if split:
        df = df.filter(pl.col("split") == split) if "split" in df.columns else df.clear()
    bad = df.filter(~pl.col("uid").str.contains(HEX_UID).fill_null(False))
    if bad.height:
        raise UserError(f"{path}: uid {bad['uid'][0]!r} is not 32 hex digits; a uid file holds DataComp uids "
                        "(re-curate the folder, or drop the row)")
    df = df.select(bucket=bench.bucket_expr(), *uid_halves(pl.col("uid"))).drop_nulls("bucket")
    runs = {}
    for (bucket,), rows in df.partition_by("bucket", as_dict=True).items():
        run = rows.select("f0", "f1").unique().sort("f0", "f1")
        target = Path(work) / f"run-{index:06d}-{names.index(bucket):04d}.npy"
        with UidFileWriter(target, run.height) as w:
            w.append(to_uid_array(run))
        runs[bucket] = {"path": str(target), "uids": run.height}
    return {"runs": runs, "splits": splits, "rows": df.height}


def merge_runs(bucket: str, runs: list[str], target: str, total: int) -> dict:
    """Sorted runs of one bucket -> its .npy, one uid range at a time (duplicates across runs go)."""
    arrays = [np.load(r, mmap_mode="r") for r in runs]
    ranges = max(1, math.ceil(total / RANGE_UIDS))
    bounds = uid_range_bounds(ranges)
    cuts = [np.searchsorted(a["f0"], np.array(bounds[1:-1], dtype=np.uint64), side="left") for a in arrays]
    cuts = [np.concatenate([[0], c, [len(a)]]) for c, a in zip(cuts, arrays)]
    with UidFileWriter(Path(target), total) as w:
        for r in range(ranges):
            pieces = [a[c[r]:c[r + 1]] for a, c in zip(arrays, cuts) if c[r + 1] > c[r]]
            if not pieces:
                continue
            block = np.concatenate(pieces) if len(pieces) > 1 else np.array(pieces[0])
            if len(pieces) > 1:
                block = block[np.lexsort((block["f1"], block["f0"]))]
                keep = np.ones(len(block), dtype=bool)
                keep[1:] = (block["f0"][1:] != block["f0"][:-1]) | (block["f1"][1:] != block["f1"][:-1])
                block = block[keep]
            w.append(block)
    return {"bucket": bucket, "uids": w.count}


def _fingerprint(folder: CuratedFolder, split: str | None) -> dict:
    return {
        "tool_version": __version__,
        "manifest": [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in folder.manifest_files()],
        "manifest_json_sha256": hashlib.sha256(folder.manifest_json.read_bytes()).hexdigest(),
        "split": split,
    }


def export_uids(manifest_dir: Path, out: Path, split: str | None = "train", executor=None,
                overwrite: bool = False, progress: bool = False) -> dict[str, int]:
    """Write <out>/<bucket>.npy for every bucket; returns uids written per bucket."""
    from ticdata.executor import InlineExecutor

    folder = CuratedFolder(Path(manifest_dir).resolve())
    doc = load_manifest_json(folder.root)
    names = bucket_names(doc, folder.manifest_json)
    check_apart(Path(out), {"curated folder": folder.root})
    files = checked_manifest_files(folder.root)
    targets = {n: bucket_dir(Path(out), n) for n in names}
    targets = {n: p.with_name(f"{p.name}.npy") for n, p in targets.items()}  # not with_suffix: "b.c" would give b.npy
    job = Job(Path(out), "uids-export", _fingerprint(folder, split), outputs=tuple(targets.values()), overwrite=overwrite,
              progress=progress, describe="uid files of another export (another folder or --split)").open()
    if job.done:
        return job.result["uids"]
    ex = executor or InlineExecutor(workers=1)
    work = job.path("runs")
    work.mkdir(parents=True, exist_ok=True)
    read = [Task(f"runs-{i:06d}", write_runs, (str(p), i, str(work), doc, str(folder.manifest_json), split), str(p))
            for i, p in enumerate(files)]
    made = job.stage(ex, "runs", read)
    seen = sorted({s for r in made.values() for s in r["splits"]})
    if split and split not in seen:
        raise UserError(f"--split {split!r}: no row of {folder.root} has that split (it has {', '.join(seen) or 'none'}); "
                        "choose one of those or 'all'")
    merges = []
    for n in names:
        runs = [r["runs"][n] for _, r in sorted(made.items()) if n in r["runs"]]
        args = (n, [x["path"] for x in runs], str(targets[n]), sum(x["uids"] for x in runs))
        merges.append(Task(f"merge-{names.index(n):04d}", merge_runs, args, f"bucket {n}", outputs=(targets[n],)))
    merged = job.stage(ex, "merge", merges)
    written = {n: merged[f"merge-{names.index(n):04d}"]["uids"] for n in names}
    job.finish({"uids": written})
    return written
