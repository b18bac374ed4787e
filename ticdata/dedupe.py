"""Deduplication: one row per uid, the earliest sighting.

A uid keeps its earliest timestamp and the url/text (and carried columns) of that row; ties on the
timestamp go to the row that comes first in input order (files sorted by path, then row number),
so the result does not depend on partitioning or task order. n_seen counts the uid's valid rows.
"""

from __future__ import annotations

import polars as pl


def earliest_per_uid(df: pl.DataFrame) -> pl.DataFrame:
    """Rows of `df` (with uid, ts, _order) reduced to one per uid, sorted by uid, with n_seen."""
    if df.height == 0:
        return df.drop("_order").with_columns(n_seen=pl.lit(0, dtype=pl.UInt32)).clear()
    df = df.sort(["uid", "ts", "_order"])
    runs = df.select(pl.col("uid").rle().struct.field("len").cast(pl.UInt32).alias("n_seen"))
    first = df.filter((pl.col("uid") != pl.col("uid").shift(1)).fill_null(True))
    return first.drop("_order").with_columns(runs["n_seen"])


def partition_index(n_partitions: int) -> pl.Expr:
    """Hash partition of a uid: its first 32 bits (uids are hashes, so this is uniform) mod n."""
    return (pl.col("uid").str.slice(0, 8).str.to_integer(base=16) % n_partitions).cast(pl.Int32)
