"""The timestamp evidence of each manifest row, as Polars expressions (one pass, vectorised).

- recovered: `ts`, the first sighting tic recovered (an upper bound on when the image was made);
- url: a date in the URL's path (`ticdata.urldates`), the first day of its month when it has none;
- exif: EXIF DateTimeOriginal collected at download (`exif_datetime_original`);
- last_modified: the HTTP Last-Modified header collected at download (weak: servers reset it);
  both are timestamp[us, UTC] columns since the download parses them; folders downloaded earlier
  (and pools carrying them) hold strings, parsed here the same way (`ticdata.download_dates`);
- snapshot: the start of the crawl that first saw the row (`first_snapshot`, CommonCrawl's index).

"Trustworthy" evidence of an earlier existence is url and exif: a URL date is set when the page is
published, EXIF when the photo is taken. Last-Modified is reported but does not move a row.
"""

from __future__ import annotations

import polars as pl

from ticdata.download_dates import timestamp_column
from ticdata.survival_domains import domain_expr
from ticdata.urldates import url_dates

SIGNALS = ("recovered", "url", "exif", "last_modified", "snapshot")
TRUSTED = ("url", "exif")
MIN_PLAUSIBLE = "1995-01-01"


def with_signals(lf: pl.LazyFrame, columns: list[str], snapshots: pl.DataFrame | None) -> pl.LazyFrame:
    """Add sig_<name> (Datetime UTC or null) for every signal; missing input columns give nulls."""
    dt = pl.Datetime("us", "UTC")
    u = url_dates(pl.col("url")) if "url" in columns else pl.lit(None)
    exprs = [pl.col("ts").cast(dt).alias("sig_recovered")]
    if "url" in columns:
        exprs.append(pl.datetime(u.struct.field("year"), u.struct.field("month"),
                                 pl.max_horizontal(u.struct.field("day"), pl.lit(1)), time_zone="UTC").cast(dt).alias("sig_url"))
        exprs.append((u.struct.field("day") > 0).alias("_url_has_day"))
    else:
        exprs += [pl.lit(None, dt).alias("sig_url"), pl.lit(None, pl.Boolean).alias("_url_has_day")]
    schema = lf.collect_schema()
    for name, sig in (("exif_datetime_original", "sig_exif"), ("last_modified", "sig_last_modified")):
        exprs.append(timestamp_column(name, schema.get(name) if name in columns else None).alias(sig))
    lf = lf.with_columns(exprs)
    if snapshots is not None and "first_snapshot" in columns:
        lf = lf.join(snapshots.lazy().select(pl.col("snapshot").alias("first_snapshot"), pl.col("snapshot_start").cast(dt).alias("sig_snapshot")),
                     on="first_snapshot", how="left")
    else:
        lf = lf.with_columns(pl.lit(None, dt).alias("sig_snapshot"))
    lo = pl.lit(MIN_PLAUSIBLE).str.to_datetime("%Y-%m-%d", time_zone="UTC")
    # implausible evidence (before 1995, or after the row was first seen by more than a day for EXIF) is dropped
    return lf.with_columns(
        [pl.when(pl.col(f"sig_{s}") >= lo).then(pl.col(f"sig_{s}")).otherwise(None).alias(f"sig_{s}") for s in ("url", "exif", "last_modified")]
    ).with_columns(
        sig_earliest=pl.min_horizontal(*[pl.col(f"sig_{s}") for s in TRUSTED]),
        domain=domain_expr() if "url" in columns else pl.lit(None, pl.String),
    )
