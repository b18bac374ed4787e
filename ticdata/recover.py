"""Timestamp recovery for single rows: each pool row becomes an observation (uid, ts, signal) or a
counted drop.

Rules (the contract of DESIGN.md):
- A row's timestamp is its exact capture time where one is known -- WARC-Date (`crawl_time`),
  upload time (`dateuploaded`), post time (`created_utc`); the earliest of them if several --
  else the start (`from`) of its CommonCrawl snapshot, named by `snapshot` or found in `source`.
- Usable timestamps lie in [1990-01-01, 2100-01-01) UTC; others count as absent (epoch-0 sentinels).
- Dropped, first matching reason wins: missing_url, missing_text (null or blank after trimming),
  bad_uid (not 32 lowercase hex digits), unknown_snapshot (only a crawl id the table does not know),
  no_timestamp (no usable evidence at all).
- A pool without a uid column gets uid = xxh3-128(url + "\\x00" + text) in lowercase hex.
"""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import xxhash

from ticdata.columns import EVIDENCE_OUTPUT, EVIDENCE_TIMES, TS_TYPE, carried_name
from ticdata.snapshots import SNAPSHOT_REGEX, SnapshotTable

REASONS = ("missing_url", "missing_text", "bad_uid", "unknown_snapshot", "no_timestamp")
MIN_TS = datetime(1990, 1, 1, tzinfo=timezone.utc)
MAX_TS = datetime(2100, 1, 1, tzinfo=timezone.utc)
TIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d",
)
UID_PATTERN = r"^[0-9a-f]{32}$"
ORDER_FILE_SHIFT = 40  # _order = file index << 40 | row number in the file: a global input order


def uid_of(url: str, text: str) -> str:
    """DataComp-style uid for a pool that has none: 128-bit xxh3 of url, NUL, text."""
    return xxhash.xxh3_128_hexdigest((url + "\x00" + text).encode("utf-8", "surrogatepass"))


def _in_range(e: pl.Expr) -> pl.Expr:
    return pl.when((e >= MIN_TS) & (e < MAX_TS)).then(e).otherwise(None)


def _parse_strings(s: pl.Series) -> pl.Series:
    """Strings in any of TIME_FORMATS -> Datetime(us, UTC). The first format (WARC-Date's) parses
    nearly every row; the others run only on the rows it left unparsed, which keeps this cheap."""
    out = s.str.to_datetime(TIME_FORMATS[0], time_unit="us", time_zone="UTC", strict=False)
    for fmt in TIME_FORMATS[1:]:
        todo = (out.is_null() & s.is_not_null()).arg_true()
        if todo.len() == 0:
            break
        parsed = s.gather(todo).str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False)
        out = out.scatter(todo, parsed)
    return out


def _parse_time(col: str, dtype: pl.DataType) -> pl.Expr:
    """Any accepted evidence type -> Datetime(us, UTC), null where unparsable or out of range."""
    c = pl.col(col)
    if dtype == pl.String:
        e = c.map_batches(_parse_strings, return_dtype=TS_TYPE)
    elif isinstance(dtype, pl.Datetime):
        e = c.dt.replace_time_zone("UTC") if dtype.time_zone is None else c.dt.convert_time_zone("UTC")
        e = e.dt.cast_time_unit("us")
    elif dtype == pl.Date:
        e = c.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    elif dtype == pl.Null:
        e = pl.lit(None, dtype=TS_TYPE)
    else:  # numbers: epoch seconds
        micros = (c.cast(pl.Float64, strict=False) * 1_000_000).round().cast(pl.Int64, strict=False)
        e = pl.from_epoch(micros, time_unit="us").dt.replace_time_zone("UTC")
    return _in_range(e.cast(TS_TYPE))


SNAPSHOT_MARK = "CC-MAIN-"
SNAPSHOT_WINDOW = 12  # chars after the mark the pattern can read: 4 + 1 + 4 digits and one after


def _snapshot_in_source(source: pl.Series) -> pl.Series:
    """The crawl id in each `source` path, equal to `source.str.extract(SNAPSHOT_REGEX, 1)`.

    It is the costliest step per row, so the pattern runs on a short window (the mark and the 12
    chars after its first occurrence) instead of the ~110-byte path, and once per distinct window
    (a few hundred crawls) when windows repeat. A match must start at a mark, so the first mark's
    match is the leftmost; rows whose first mark is not a crawl id are matched on the whole path.
    """
    after = source.str.splitn(SNAPSHOT_MARK, 2).struct.field("field_1")
    window = pl.select(pl.lit(SNAPSHOT_MARK, dtype=pl.String) + after.str.slice(0, SNAPSHOT_WINDOW)).to_series()
    at_mark = "^" + SNAPSHOT_REGEX  # the window may hold a second mark: only a match at its start counts
    distinct = window.unique()
    if distinct.len() > window.len() // 2:
        found = window.str.extract(at_mark, 1)
    else:
        found = window.replace_strict(distinct, distinct.str.extract(at_mark, 1), default=None, return_dtype=pl.String)
    retry = (found.is_null() & after.is_not_null()).arg_true()
    if retry.len():
        found = found.scatter(retry, source.gather(retry).str.extract(SNAPSHOT_REGEX, 1))
    return found.alias(source.name)


def _blank(col: str) -> pl.Expr:
    return pl.col(col).is_null() | (pl.col(col).str.strip_chars().str.len_bytes() == 0)


def _computed_uids(df: pl.DataFrame) -> pl.Series:
    urls, texts = df["url"].to_list(), df["text"].to_list()
    return pl.Series(
        "uid",
        [uid_of(u, t) if u is not None and t is not None else None for u, t in zip(urls, texts)],
        dtype=pl.String,
    )


def judge_rows(
    raw: pl.DataFrame, snapshots: SnapshotTable, order_base: int = 0
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Every row of `raw` in the observation layout plus `_reason` (null for a valid row), and the
    count of dropped rows per reason. Callers that write partitions filter while partitioning."""
    schema = raw.schema
    df = raw.with_row_index("_row")
    df = df.with_columns((pl.col("_row").cast(pl.Int64) + order_base).alias("_order")).drop("_row")
    if "uid" not in schema:
        df = df.with_columns(_computed_uids(raw))
    times = [c for c in EVIDENCE_TIMES if c in schema]
    parsed = {c: _parse_time(c, schema[c]).alias(c) for c in times}
    df = df.with_columns(parsed.values()) if parsed else df
    exact = pl.min_horizontal([pl.col(c) for c in times]) if times else pl.lit(None, dtype=TS_TYPE)
    signal = pl.lit(None, dtype=pl.String)
    for c in reversed(times):
        signal = pl.when(pl.col(c).is_not_null() & (pl.col(c) == pl.col("_exact"))).then(pl.lit(c)).otherwise(signal)
    snap_parts = []
    if "snapshot" in schema:
        s = pl.col("snapshot")
        snap_parts.append(
            pl.coalesce([s.str.extract(SNAPSHOT_REGEX, 1), pl.when(_blank("snapshot")).then(None).otherwise(s.str.strip_chars())])
        )
    if "source" in schema:
        snap_parts.append(_snapshot_in_source(df["source"]))
    snap_id = pl.coalesce(snap_parts) if snap_parts else pl.lit(None, dtype=pl.String)
    table = snapshots.frame()
    df = df.with_columns(_exact=exact, first_snapshot=snap_id)
    df = df.with_columns(
        _signal=signal,
        _snap_start=pl.col("first_snapshot").replace_strict(
            table["snapshot"], table["snapshot_start"], default=None, return_dtype=TS_TYPE
        ),
    )
    df = df.with_columns(
        ts=pl.coalesce(pl.col("_exact"), pl.col("_snap_start")),
        ts_signal=pl.when(pl.col("_exact").is_not_null()).then(pl.col("_signal")).otherwise(
            pl.when(pl.col("_snap_start").is_not_null()).then(pl.lit("snapshot"))
        ),
    )
    reason = (
        pl.when(_blank("url")).then(pl.lit("missing_url"))
        .when(_blank("text")).then(pl.lit("missing_text"))
        .when(~pl.col("uid").str.contains(UID_PATTERN).fill_null(False)).then(pl.lit("bad_uid"))
        .when(pl.col("ts").is_null() & pl.col("first_snapshot").is_not_null()).then(pl.lit("unknown_snapshot"))
        .when(pl.col("ts").is_null()).then(pl.lit("no_timestamp"))
        .otherwise(None)
    )
    df = df.with_columns(_reason=reason)
    counts = df.group_by("_reason").len().drop_nulls("_reason")
    dropped = {r: 0 for r in REASONS}
    dropped.update({str(r): int(n) for r, n in counts.iter_rows()})
    evidence = [c for c in EVIDENCE_OUTPUT if c in schema]
    carried = [c for c in raw.columns if c not in ("uid", "url", "text") and c not in EVIDENCE_OUTPUT]
    out = df.select(
        ["uid", "url", "text", "ts", "ts_signal", "first_snapshot"]
        + evidence
        + [pl.col(c).alias(carried_name(c)) for c in carried]
        + ["_order", "_reason"]
    )
    return out, dropped
