"""Deduplication: one row per uid, the earliest sighting.

A uid keeps its earliest timestamp and the url/text (and carried columns) of that row; ties on the
timestamp go to the row that comes first in input order (files sorted by path, then row number),
so the result does not depend on partitioning or task order. n_seen counts the uid's valid rows.

The winners are found on the three key columns alone (uid, ts, _order) and the wide rows are
then filtered in place, which keeps input order and avoids reordering every column.
"""

from __future__ import annotations

import polars as pl


def earliest_per_uid(df: pl.DataFrame) -> pl.DataFrame:
    """Rows of `df` (with uid, ts, _order) reduced to one per uid, in input order, with n_seen."""
    if df.height == 0:
        return df.drop("_order").with_columns(n_seen=pl.lit(0, dtype=pl.UInt32)).clear()
    if not df["_order"].is_sorted():
        df = df.sort("_order")
    # Within a group, rows keep frame order, i.e. _order order, and arg_min returns the first
    # minimum: the earliest timestamp, ties to the smallest _order. (Contiguous keys group faster.)
    winners = (
        df.select("uid", "ts", "_order")
        .rechunk()
        .group_by("uid")
        .agg(pl.col("_order").get(pl.col("ts").arg_min()), n_seen=pl.len().cast(pl.UInt32))
        .sort("_order")
    )
    kept = df.filter(pl.col("_order").is_in(winners["_order"].implode()))
    return kept.drop("_order").with_columns(winners["n_seen"])


def partition_index(n_partitions: int) -> pl.Expr:
    """Hash partition of a uid: its first 32 bits (uids are hashes, so this is uniform) mod n."""
    return (pl.col("uid").str.slice(0, 8).str.to_integer(base=16, strict=False) % n_partitions).cast(pl.Int32)
