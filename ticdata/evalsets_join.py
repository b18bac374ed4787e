"""`tic evalsets` at any pool size, part 1: each manifest file meets its images' hashes, and the
rows whose image or caption repeats in their bucket are found, with no process holding a bucket.

The hashes live per tar, the captions per manifest file, so they meet in a join by uid range (as
`tic uids import` joins its lists), and the repeats are counted in a shuffle by key:

- map: per manifest file its uids, per hash file its rows, cut into uid ranges (one Arrow IPC file
  per task, record batch r = range r: curate's shuffle layout).
- join: per uid range, the hash rows (a uid hashed twice keeps its first tar, in tar order) each
  sent to the manifest file that holds its uid; batch p = file p, the last batch = hashes of uids
  no manifest row has ("orphans": counted and decontaminated, never selected or marked).
- unit: per manifest file (and per range's orphans) its images as one Parquet file, and the keys
  that decide a repeat, (bucket, sha256) and (bucket, normalised caption), cut by a digest of the key.
- repeats: per key range, the rows whose key occurs more than once, sent back to their file.

A task holds one manifest file, one hash file or one range; the driver holds names and counts.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ticdata.curate_tasks import read_partition, write_partitions
from ticdata.evalselect import normal_caption
from ticdata.storage import write_parquet_atomic

SHUFFLE_COMPRESSION = "lz4"
IMAGE_SCHEMA = {"uid": pl.String, "bucket": pl.String, "tar": pl.String, "sha256": pl.String, "phash": pl.UInt64}
KEY_SCHEMA = {"uid": pl.String, "kind": pl.UInt8, "bucket": pl.String, "key": pl.String}
SAME_IMAGE, SAME_CAPTION = 0, 1  # key kinds


def range_of(hexes: pl.Expr, ranges: int) -> pl.Expr:
    """The range (0..ranges-1) of a hex key by its first 16 digits; anything else falls in range 0."""
    if ranges <= 1:
        return pl.lit(0, pl.Int32)
    high = hexes.str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64, strict=False).fill_null(0)
    return (high // pl.lit((1 << 64) // ranges + 1, pl.UInt64)).cast(pl.Int32)


def _write_shuffle(target: str, frame: pl.DataFrame, partitions: int) -> None:
    """Curate's shuffle file (record batch p = partition p), whole or absent."""
    tmp = f"{target}.tmp-{os.getpid()}"
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    write_partitions(Path(tmp), frame, partitions, SHUFFLE_COMPRESSION)
    os.replace(tmp, target)


def _gather(paths: list[str], batch: int, schema: dict, tag: str | None = None) -> pl.DataFrame:
    """Record batch `batch` of every shuffle file, in file order (`tag`: a column with the file's index)."""
    frames = []
    for i, p in enumerate(paths):
        b = read_partition(Path(p), batch)
        if b is not None and b.num_rows:
            f = pl.from_arrow(b).cast(schema)
            frames.append(f.with_columns(pl.lit(i, pl.Int32).alias(tag)) if tag else f)
    empty = pl.DataFrame(schema=schema | ({tag: pl.Int32} if tag else {}))
    return pl.concat(frames) if frames else empty


def map_manifest(part: str, ranges: int, label_column: str | None, out: str) -> dict:
    """One manifest file's uids by uid range; the values of the label column (the vocabulary's classes)."""
    cols = ["uid"] + ([label_column] if label_column else [])
    df = pl.read_parquet(part, columns=cols)
    _write_shuffle(out, df.select("uid", _part=range_of(pl.col("uid"), ranges)), ranges)
    values = sorted(df[label_column].cast(pl.String).drop_nulls().unique().to_list()) if label_column else []
    return {"rows": df.height, "values": values}


def map_hashes(src: str, ranges: int, out: str) -> dict:
    """One hash file's rows by uid range, with their row number (the first hash of a uid wins)."""
    df = pl.read_parquet(src).cast(IMAGE_SCHEMA).with_columns(_row=pl.int_range(pl.len(), dtype=pl.UInt32))
    _write_shuffle(out, df.with_columns(_part=range_of(pl.col("uid"), ranges)), ranges)
    return {"rows": df.height}


def join_range(r: int, manifest_maps: list[str], hash_maps: list[str], out: str) -> dict:
    """Range r's hash rows sent to the manifest file holding their uid (batch p = file p; the last
    batch: uids no file holds); the images per bucket after a uid's repeats in later tars go."""
    files = len(manifest_maps)
    owner = _gather(manifest_maps, r, {"uid": pl.String}, "_p").unique("uid", keep="first", maintain_order=True)
    hashes = _gather(hash_maps, r, IMAGE_SCHEMA | {"_row": pl.UInt32}, "_f").sort("_f", "_row")
    hashes = hashes.unique("uid", keep="first", maintain_order=True).drop("_f", "_row")
    joined = hashes.join(owner, on="uid", how="left").with_columns(_part=pl.col("_p").fill_null(files)).drop("_p")
    _write_shuffle(out, joined, files + 1)
    return {"images": dict(joined.group_by("bucket").len().iter_rows()),
            "orphans": int((joined["_part"] == files).sum())}


@dataclass(frozen=True)
class UnitSpec:
    """One unit of the per-file work: a manifest file with the images of its uids, or (manifest
    None) the images of one range that no manifest row holds."""

    index: int
    manifest: str | None
    joins: tuple[str, ...]  # the join outputs to read batch `batch` of
    batch: int
    state: str  # the job's state folder

    def path(self, kind: str, ext: str = "parquet") -> str:
        return str(Path(self.state) / kind / f"{kind}-{self.index:06d}.{ext}")


def load_images(spec: UnitSpec) -> pl.DataFrame:
    return pl.read_parquet(spec.path("images"))


def caption_digest(norm: pl.Series) -> pl.Series:
    """A 64-bit BLAKE2b digest (hex) of each normalised caption: which key range it goes to (the
    same in every process, unlike Polars' hash)."""
    table = {s: hashlib.blake2b(s.encode(), digest_size=8).hexdigest() for s in norm.drop_nulls().unique().to_list()}
    return norm.replace_strict(table, default=None, return_dtype=pl.String) if table else pl.Series(norm.name, [None] * len(norm), pl.String)


def candidate_rows(spec: UnitSpec, imported: str, columns: tuple[str, ...] = ()) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the unit's selectable rows: images joined to manifest rows, decodable, not imported; the
    imported uids it holds, with their bucket)."""
    man = pl.read_parquet(spec.manifest, columns=["uid", "text", *columns])
    rows = load_images(spec).join(man, on="uid", how="inner").filter(pl.col("phash").is_not_null())
    official = pl.read_parquet(imported)["uid"].implode()
    return rows.filter(~pl.col("uid").is_in(official)), rows.filter(pl.col("uid").is_in(official)).select("uid", "bucket")


def prepare_unit(spec: UnitSpec, imported: str, key_ranges: int) -> dict:
    """The unit's images as one file, and (manifest units) its repeat keys cut by key range."""
    images = _gather(list(spec.joins), spec.batch, IMAGE_SCHEMA)
    write_parquet_atomic(Path(spec.path("images")), images)
    if spec.manifest is None:
        return {"images": images.height}
    rows, _ = candidate_rows(spec, imported)
    norm = rows.select(normal_caption(pl.col("text")))["text"]
    keys = pl.concat([
        rows.select("uid", kind=pl.lit(SAME_IMAGE, pl.UInt8), bucket="bucket", key="sha256",
                    _part=range_of(pl.col("sha256"), key_ranges)),
        rows.select("uid", kind=pl.lit(SAME_CAPTION, pl.UInt8), bucket="bucket", key=norm,  # the caption itself: exact
                    _part=range_of(pl.lit(caption_digest(norm)), key_ranges)),
    ]).drop_nulls("key").cast(KEY_SCHEMA)
    _write_shuffle(spec.path("keys", "arrow"), keys, key_ranges)
    return {"images": images.height, "rows": rows.height}


def find_repeats(q: int, key_files: list[str], units: int, out: str) -> dict:
    """The rows of key range q whose (kind, bucket, key) occurs more than once, batch p = unit p."""
    keys = _gather(key_files, q, KEY_SCHEMA, "_part")
    rep = keys.filter(pl.len().over("kind", "bucket", "key") > 1).select("uid", "kind", "_part")
    _write_shuffle(out, rep, units)
    return {"repeated": rep.height}


def repeated_uids(spec: UnitSpec, repeat_files: list[str]) -> pl.DataFrame:
    """(uid, kind) of the unit's rows whose image or caption repeats in their bucket."""
    return _gather(repeat_files, spec.index, {"uid": pl.String, "kind": pl.UInt8})
