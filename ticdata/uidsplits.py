"""Buckets <-> DataComp uid files, in both directions.

export (`ticdata.uidexport`): one sorted `u8,u8` .npy per bucket of a curated manifest (what DataComp's resharder reads).
import: restrict a curated manifest to the uids of given files (e.g. the official TiC lists), each
file naming a bucket; the rows keep their own timestamps and gain a `bucket` column.
"""

from __future__ import annotations

import logging
from collections import Counter
import shutil
from pathlib import Path

import polars as pl

from ticdata import __version__
from ticdata.errors import UserError
from ticdata.ledger import Ledger
from ticdata.official_dating import agreement, tally
from ticdata.manifest import SCHEMA_VERSION, checked_manifest_files, count_buckets, load_manifest_json, scan_manifest
from ticdata.storage import atomic_dir, write_json_atomic
from ticdata.benchmarks import benchmark_from_manifest
from ticdata.layout import CuratedFolder, check_apart
from ticdata.uidlists import parse_uid_specs, read_uid_file

log = logging.getLogger(__name__)
TRAIN = "train"
# what `tic evalsets` writes beside `split`, with its type
EVAL_MARKS = {"exclude_reason": pl.String, "excluded_by": pl.String, "excluded_distance": pl.Int32, "eval_class": pl.String}


def import_uids(manifest_dir: Path, specs: list[str], out: Path, overwrite: bool = False) -> dict:
    """A new curated folder at `out` holding only the listed uids, each with its list's bucket."""
    pairs = parse_uid_specs(specs)
    source_doc = load_manifest_json(manifest_dir)
    frames = [pl.DataFrame({"uid": read_uid_file(p), "bucket": name}) for name, p in pairs]
    table = pl.concat(frames) if frames else pl.DataFrame(schema={"uid": pl.String, "bucket": pl.String})
    inner = table.filter(pl.struct("uid", "bucket").is_duplicated())
    if inner.height:
        raise UserError(f"uid {inner['uid'][0]} is listed more than once in the uid file of bucket {inner['bucket'][0]}; "
                        "a uid file lists each uid once (DataComp's files are sorted and unique)")
    dup = table.filter(pl.col("uid").is_duplicated())
    if dup.height:
        raise UserError(f"uid {dup['uid'][0]} is in more than one uid file ({', '.join(dup['bucket'].unique().sort())}); a uid belongs to one bucket")
    check_apart(Path(out), {"curated folder": Path(manifest_dir)})
    dest = CuratedFolder(Path(out).resolve())
    if dest.manifest_dir.exists() or dest.manifest_json.exists():
        if not overwrite:
            raise UserError(f"{dest.root}: already holds a manifest; pass --overwrite or choose another --out")
        shutil.rmtree(dest.manifest_dir, ignore_errors=True)
        dest.manifest_json.unlink(missing_ok=True)
    scan_manifest(manifest_dir)  # validates the source folder
    matched_per_bucket = {name: 0 for name, _ in pairs}
    rows_in = kept = reset = 0
    source_bench = benchmark_from_manifest(source_doc, CuratedFolder(Path(manifest_dir)).manifest_json)
    dating: Counter = Counter()
    with atomic_dir(dest.manifest_dir) as tmp:
        for part in checked_manifest_files(manifest_dir):
            df = pl.read_parquet(part)
            rows_in += df.height
            if "bucket" in df.columns:  # a folder of uid lists imported again: its own buckets are tic's side
                df = df.rename({"bucket": "src_bucket"})
            sel = df.join(table, on="uid", how="inner").sort("uid")
            tally(sel, int(part.parent.name.split("=", 1)[1]), source_bench, dating)
            sel = sel.drop("src_bucket", strict=False)
            if "split" in sel.columns:  # the lists define a fresh folder: marks of an earlier `tic evalsets` go
                reset += int((sel["split"] != TRAIN).sum())
                sel = sel.with_columns([pl.lit(TRAIN).alias("split")]
                                       + [pl.lit(None, t).alias(c) for c, t in EVAL_MARKS.items() if c in sel.columns])
            kept += sel.height
            for name, n in sel.group_by("bucket").len().iter_rows():
                matched_per_bucket[name] += n
            if sel.height:
                target = tmp / part.parent.name / part.name
                target.parent.mkdir(parents=True, exist_ok=True)
                sel.write_parquet(target, compression="zstd", statistics=True)
    ledger = Ledger()
    ledger.add_stage("select", rows_in, kept, dropped={"not_in_uid_lists": rows_in - kept})
    ledger.close()
    lists = {
        name: {"file": str(p.resolve()), "uids": int((table["bucket"] == name).sum()), "matched": matched_per_bucket[name]}
        for name, p in pairs
    }
    agree = agreement(dating)
    for name, v in lists.items():
        v["missing"] = v["uids"] - v["matched"]
        v["dated_elsewhere"] = agree.get(name, {}).get("dated_elsewhere", 0)
        v["tic_buckets"] = agree.get(name, {}).get("tic_buckets", {})
    bench = {"name": "uid-lists", "granularity": "list", "steps": [{"name": n, "years": []} for n, _ in pairs],
             "source_benchmark": source_doc.get("benchmark", {}).get("name")}
    if kept:
        buckets, outside = count_buckets(dest.root, benchmark_from_manifest({"benchmark": bench}, dest.manifest_json))
    else:
        buckets, outside = {n: {"rows": 0, "years": [], "step": n, "splits": {}} for n, _ in pairs}, {"rows": 0, "years": {}}
    doc = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "tic", "version": __version__, "command": "uids import"},
        "inputs": {"manifest": str(Path(manifest_dir).resolve()), "uid_lists": lists, "eval_marks_reset": reset},
        "parameters": {},
        "benchmark": bench,
        "columns": source_doc.get("columns", {}) | {"bucket": "String"},
        "rows": kept,
        "buckets": buckets,
        "outside_buckets": outside,
        "ledger": ledger.to_json(),
    }
    write_json_atomic(dest.manifest_json, doc)
    return doc


def format_import_table(doc: dict) -> str:
    """Per official list: listed, found in the curated folder, missing, and found rows tic dates elsewhere."""
    lines = [f"{'bucket':<12} {'listed':>12} {'found':>12} {'missing':>12} {'dated elsewhere':>16}"]
    for name, v in doc["inputs"]["uid_lists"].items():
        share = f" ({v['dated_elsewhere'] / v['matched']:.1%})" if v["matched"] else ""
        lines.append(f"{name:<12} {v['uids']:>12,} {v['matched']:>12,} {v['missing']:>12,} {v['dated_elsewhere']:>9,}{share}")
    return "\n".join(lines)
