"""`tic evalsets` at any pool size, part 3: the manifest's `split` marks, written per manifest file.

- reset: rows an earlier run marked go back to train (a rerun with other parameters, --overwrite).
- mark: one file's rows become retrieval / classification (the chosen set, small, read by every
  task), excluded (the unit's flags), not_downloaded (no image among the unit's images), else keep
  train; and the file's counts per (year, month | bucket, split) come back for the bucket table.

Each file is rewritten as `manifest.update_manifest` rewrites it (same columns, casts and Parquet
options; a file with nothing to change is left as it is), so the bytes are those of one update
over the whole manifest.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ticdata.layout import part_year

from ticdata.evalselect import EXCLUDED, NOT_DOWNLOADED, TRAIN
from ticdata.manifest import mark_table, update_file

SPLIT_COLUMNS = {"split": pl.String, "exclude_reason": pl.String, "excluded_by": pl.String, "excluded_distance": pl.Int32,
                 "eval_class": pl.String}


def update_part(path: Path, df: pl.DataFrame, table: pl.DataFrame, columns: dict, on: str = "uid") -> tuple[pl.DataFrame, int]:
    """One manifest file as `manifest.update_manifest` rewrites each of its files."""
    return update_file(path, df, mark_table(table, columns, on), columns, on)


def reset_file(part: str) -> dict:
    """Rows of one file marked by an earlier `tic evalsets` back to train, their marks cleared."""
    path = Path(part)
    df = pl.read_parquet(path)
    if "split" not in df.columns:
        return {"reset": 0}
    marked = df.filter(pl.col("split") != TRAIN).select("uid")
    if not marked.height:
        return {"reset": 0}
    table = marked.with_columns(pl.lit(TRAIN).alias("split"), *[pl.lit(None, t).alias(c) for c, t in SPLIT_COLUMNS.items() if c != "split"])
    _, hits = update_part(path, df, table, SPLIT_COLUMNS)
    return {"reset": hits}


def _file_counts(df: pl.DataFrame, year: int, granularity: str) -> list[list]:
    """(year, month, split, n) rows, or (bucket, year, split, n) for a folder of uid lists, as
    `manifest.count_buckets` counts them."""
    split = pl.col("split").alias("split")
    if granularity != "list":
        month = pl.col("month").fill_null(1) if "month" in df.columns else pl.lit(1)
        got = df.group_by(month.alias("month"), split).len()
        return [[year, int(m), str(s), int(n)] for m, s, n in got.iter_rows()]
    got = df.group_by("bucket", split).len()
    return [[b, year, s, int(n)] for b, s, n in got.iter_rows()]


def mark_file(part: str, images: str, flags: str, marks: str, granularity: str) -> dict:
    """One manifest file's split marks (the chosen rows, the unit's flags, the rows without an
    image); its counts per bucket key and split."""
    path = Path(part)
    df = pl.read_parquet(path)
    sel = pl.read_parquet(marks).join(df.select("uid"), on="uid", how="semi")
    flagged = pl.read_parquet(flags)
    seen = pl.concat([sel.select("uid"), flagged.select("uid"), pl.read_parquet(images, columns=["uid"])])
    no_image = df.select("uid").join(seen, on="uid", how="anti")
    table = pl.concat([
        sel.select("uid", "split", "eval_class"),
        flagged.select("uid", split=pl.lit(EXCLUDED), exclude_reason="reason", excluded_by="excluded_by",
                       excluded_distance="excluded_distance"),
        no_image.select("uid", split=pl.lit(NOT_DOWNLOADED)),
    ], how="diagonal_relaxed")
    df, hits = update_part(path, df, table, SPLIT_COLUMNS)
    year = part_year(path)
    return {"marked": hits, "rows": table.height, "counts": _file_counts(df, year, granularity),
            "splits": dict(df.group_by("split").len().iter_rows())}
