"""Buckets <-> DataComp uid files, in both directions.

export: one sorted `u8,u8` .npy per bucket of a curated manifest (what DataComp's resharder reads).
import: restrict a curated manifest to the uids of given files (e.g. the official TiC lists), each
file naming a bucket; the rows keep their own timestamps and gain a `bucket` column.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import polars as pl

from ticdata import __version__
from ticdata.errors import UserError
from ticdata.ledger import Ledger
from ticdata.manifest import MANIFEST_DIR, MANIFEST_JSON, SCHEMA_VERSION, load_manifest_json, scan_manifest
from ticdata.storage import atomic_dir, write_json_atomic
from ticdata.uidlists import read_uid_file, write_uid_file

log = logging.getLogger(__name__)


def _bucket_filter(bucket: dict) -> pl.Expr:
    expr = pl.col("year").is_in(bucket["years"])
    if "months" in bucket:
        expr = expr & pl.col("month").is_in(bucket["months"])
    return expr


def export_uids(manifest_dir: Path, out: Path, split: str | None = "train") -> dict[str, int]:
    """Write <out>/<bucket>.npy for every bucket; returns uids written per bucket."""
    doc = load_manifest_json(manifest_dir)
    lf = scan_manifest(manifest_dir)
    if split:
        lf = lf.filter(pl.col("split") == split)
    written = {}
    for name, bucket in doc["buckets"].items():
        uids = lf.filter(_bucket_filter(bucket)).select("uid").collect()["uid"].to_list()
        written[name] = write_uid_file(Path(out) / f"{name}.npy", uids)
    return written


def parse_uid_specs(specs: list[str]) -> list[tuple[str, Path]]:
    """BUCKET=FILE.npy, or FILE.npy whose stem names the bucket."""
    pairs = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        pairs.append((name, Path(path)) if sep else (Path(spec).stem, Path(spec)))
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise UserError(f"uid files: bucket names repeat ({names}); name them with BUCKET=FILE.npy")
    return pairs


def import_uids(manifest_dir: Path, specs: list[str], out: Path, overwrite: bool = False) -> dict:
    """A new curated folder at `out` holding only the listed uids, each with its list's bucket."""
    pairs = parse_uid_specs(specs)
    source_doc = load_manifest_json(manifest_dir)
    frames = [pl.DataFrame({"uid": read_uid_file(p), "bucket": name}) for name, p in pairs]
    table = pl.concat(frames) if frames else pl.DataFrame(schema={"uid": pl.String, "bucket": pl.String})
    dup = table.filter(pl.col("uid").is_duplicated())
    if dup.height:
        raise UserError(f"uid {dup['uid'][0]} is in more than one uid file ({', '.join(dup['bucket'].unique().sort())}); a uid belongs to one bucket")
    out = Path(out).resolve()
    if (out / MANIFEST_DIR).exists() or (out / MANIFEST_JSON).exists():
        if not overwrite:
            raise UserError(f"{out}: already holds a manifest; pass --overwrite or choose another --out")
        shutil.rmtree(out / MANIFEST_DIR, ignore_errors=True)
        (out / MANIFEST_JSON).unlink(missing_ok=True)
    scan_manifest(manifest_dir)  # validates the source folder
    src_root = Path(manifest_dir) / MANIFEST_DIR
    matched_per_bucket = {name: 0 for name, _ in pairs}
    rows_in = kept = 0
    with atomic_dir(out / MANIFEST_DIR) as tmp:
        for part in sorted(src_root.glob("year=*/*.parquet")):
            df = pl.read_parquet(part)
            rows_in += df.height
            sel = df.join(table, on="uid", how="inner").sort("uid")
            kept += sel.height
            for name, n in sel.group_by("bucket").len().iter_rows():
                matched_per_bucket[name] += n
            if sel.height:
                dest = tmp / part.parent.name / part.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                sel.write_parquet(dest, compression="zstd", statistics=True)
    ledger = Ledger()
    ledger.add_stage("select", rows_in, kept, dropped={"not_in_uid_lists": rows_in - kept})
    ledger.close()
    lists = {
        name: {"file": str(p.resolve()), "uids": int((table["bucket"] == name).sum()), "matched": matched_per_bucket[name]}
        for name, p in pairs
    }
    for v in lists.values():
        v["missing"] = v["uids"] - v["matched"]
    doc = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "tic", "version": __version__, "command": "uids import"},
        "inputs": {"manifest": str(Path(manifest_dir).resolve()), "uid_lists": lists},
        "parameters": {},
        "benchmark": {"name": "uid-lists", "granularity": "list", "steps": [{"name": n, "years": []} for n, _ in pairs],
                      "source_benchmark": source_doc.get("benchmark", {}).get("name")},
        "columns": source_doc.get("columns", {}) | {"bucket": "String"},
        "rows": kept,
        "buckets": {name: {"rows": matched_per_bucket[name], "years": [], "splits": {}} for name, _ in pairs},
        "outside_buckets": {"rows": 0, "years": {}},
        "ledger": ledger.to_json(),
    }
    write_json_atomic(out / MANIFEST_JSON, doc)
    return doc
