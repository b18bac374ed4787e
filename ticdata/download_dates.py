"""The date evidence `tic download` keeps, parsed to UTC timestamps (vectorised Polars expressions).

- `last_modified`: the HTTP Last-Modified header, an HTTP-date (RFC 9110 5.6.7) in any of its three
  forms: IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", the obsolete RFC 850 form "Sunday, 06-Nov-94
  08:49:37 GMT" (two-digit years 70-99 are 19xx, 00-69 are 20xx) and asctime "Sun Nov  6 08:49:37
  1994". HTTP-dates are GMT; a zone other than GMT/UTC/+0000 is not an HTTP-date. The weekday
  is not checked (servers get it wrong; the date is what counts).
- `exif_datetime_original`: EXIF DateTimeOriginal "YYYY:MM:DD HH:MM:SS" (also with '-' between
  the date's fields or 'T' before the time, as some writers do; anything after the seconds, e.g.
  sub-seconds, is ignored). EXIF 2.2 has no time zone: the camera's clock time is stored as UTC.

Both are stored as timestamp[us, UTC], like `ts`. A value that does not parse is stored as null and
its reason (`reason_*`) is counted in the download summary: "empty" (blank, or only the colons EXIF
writes for an unknown date), "placeholder 0000:00:00" (EXIF's zero date), "not an HTTP-date" /
"not an EXIF date-time" (another shape), "impossible date" (the right shape, no such day or time).

Folders downloaded before these columns were typed hold them as strings: `upgrade_date_columns`
parses them in place (the next `tic download` does it first), and the audit reads either type
(`timestamp_column`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from ticdata.manifest import checked_manifest_files
from ticdata.storage import write_parquet_atomic

log = logging.getLogger(__name__)
TS = pl.Datetime("us", "UTC")
DATE_COLUMNS = ("last_modified", "exif_datetime_original")
_MONTHS = {m: f"{i:02d}" for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_IMF_850 = (r"^(?:[A-Za-z]{3,9},?\s+)?(\d{1,2})[ -]([A-Za-z]{3})[ -](\d{4}|\d{2})\s+(\d{2}:\d{2}:\d{2})"
            r"(?:\s*(?:GMT|UTC|UT|Z|[+-]0000))?$")
_ASCTIME = r"^[A-Za-z]{3}\s+([A-Za-z]{3})\s+(\d{1,2})\s+(\d{2}:\d{2}:\d{2})\s+(\d{4})$"
_EXIF = r"^(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}:\d{2}:\d{2})"
_STRIP = " \t\r\n\x00"


def _iso(year: pl.Expr, month: pl.Expr, day: pl.Expr, time: pl.Expr) -> pl.Expr:
    """Null when any part is null or the date/time does not exist (Feb 30, 25:00)."""
    text = pl.concat_str(year, pl.lit("-"), month, pl.lit("-"), day.str.zfill(2), pl.lit("T"), time)
    return text.str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False, time_zone="UTC")


def _http_parts(col: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(matched the shape of an HTTP-date, the timestamp)."""
    v = col.str.strip_chars(_STRIP)
    a = v.str.extract_groups(_IMF_850)
    b = v.str.extract_groups(_ASCTIME)
    yy = a.struct.field("3")
    year = pl.when(yy.str.len_chars() == 2).then(
        pl.when(yy.cast(pl.Int32, strict=False) < 70).then(pl.lit("20") + yy).otherwise(pl.lit("19") + yy)).otherwise(yy)
    year = pl.coalesce(year, b.struct.field("4"))
    mon = pl.coalesce(a.struct.field("2"), b.struct.field("1")).str.to_lowercase().replace_strict(_MONTHS, default=None,
                                                                                                  return_dtype=pl.String)
    day = pl.coalesce(a.struct.field("1"), b.struct.field("2"))
    time = pl.coalesce(a.struct.field("4"), b.struct.field("3"))
    matched = a.struct.field("1").is_not_null() | b.struct.field("1").is_not_null()
    return matched & mon.is_not_null(), _iso(year, mon, day, time)


def _exif_parts(col: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    v = col.str.strip_chars(_STRIP)
    g = v.str.extract_groups(_EXIF)
    f = [g.struct.field(str(i)) for i in range(1, 5)]
    return f[0].is_not_null(), _iso(*f)


def http_date(col: pl.Expr) -> pl.Expr:
    """An HTTP-date string -> timestamp[us, UTC], null when it does not parse."""
    return _http_parts(col)[1]


def exif_date(col: pl.Expr) -> pl.Expr:
    """An EXIF DateTimeOriginal string -> timestamp[us, UTC] (clock time as UTC), null when it does not parse."""
    return _exif_parts(col)[1]


def _reason(col: pl.Expr, matched: pl.Expr, parsed: pl.Expr, shape: str) -> pl.Expr:
    blank = col.str.replace_all(r"[\s:\x00-]", "") == ""
    zero = col.str.strip_chars(_STRIP).str.contains(r"^0000[:-]00[:-]00")
    return (pl.when(col.is_null() | parsed.is_not_null()).then(pl.lit(None, pl.String))
            .when(blank).then(pl.lit("empty"))
            .when(zero).then(pl.lit("placeholder 0000:00:00"))
            .when(~matched).then(pl.lit(shape))
            .otherwise(pl.lit("impossible date")))


def reason_http_date(col: pl.Expr) -> pl.Expr:
    """Why a non-null Last-Modified value is not parsed (null when it is, or when it is null)."""
    matched, parsed = _http_parts(col)
    return _reason(col, matched, parsed, "not an HTTP-date")


def reason_exif_date(col: pl.Expr) -> pl.Expr:
    """Why a non-null EXIF DateTimeOriginal value is not parsed (null when it is, or when it is null)."""
    matched, parsed = _exif_parts(col)
    return _reason(col, matched, parsed, "not an EXIF date-time")


PARSERS = {"last_modified": (http_date, reason_http_date), "exif_datetime_original": (exif_date, reason_exif_date)}


def timestamp_column(name: str, dtype: pl.DataType | None) -> pl.Expr:
    """Column `name` as timestamp[us, UTC] whatever its stored type: strings (folders downloaded before
    the columns were typed, or a pool's carried column) are parsed, datetimes cast, absent -> null."""
    if dtype is None or dtype == pl.Null:
        return pl.lit(None, TS).alias(name)
    if dtype == pl.String:
        return PARSERS[name][0](pl.col(name)).alias(name)
    if dtype == pl.Date:
        return pl.col(name).cast(TS).alias(name)
    if isinstance(dtype, pl.Datetime):
        tz = pl.col(name) if dtype.time_zone else pl.col(name).dt.replace_time_zone("UTC")
        return tz.cast(TS).alias(name)
    return pl.lit(None, TS).alias(name)


def unparsed_counts(df: pl.DataFrame, raw: dict[str, str]) -> dict[str, dict[str, int]]:
    """{column: {reason: rows}} for the raw string columns of `df` ({column: raw column name})."""
    out: dict[str, dict[str, int]] = {}
    for name, source in raw.items():
        reasons = df.select(PARSERS[name][1](pl.col(source)).alias("r")).drop_nulls()
        counts = {str(r): int(n) for r, n in reasons.group_by("r").len().sort("r").iter_rows()}
        if counts:
            out[name] = counts
    return out


def upgrade_date_columns(dir: str | Path) -> dict[str, dict[str, int]]:
    """Parse string date columns of an older folder's manifest in place (each part file rewritten
    atomically; a killed upgrade is finished by the next run). Returns the values not parsed."""
    unparsed: dict[str, dict[str, int]] = {}
    for part in checked_manifest_files(dir):
        schema = pl.read_parquet_schema(part)
        todo = [c for c in DATE_COLUMNS if schema.get(c) == pl.String]
        if not todo:
            continue
        df = pl.read_parquet(part)
        for name, counts in unparsed_counts(df, {c: c for c in todo}).items():
            for r, n in counts.items():
                unparsed.setdefault(name, {})[r] = unparsed.get(name, {}).get(r, 0) + n
        df = df.with_columns([timestamp_column(c, pl.String) for c in todo])
        write_parquet_atomic(part, df, compression="zstd", compression_level=1, statistics=True)
        log.info("%s: %s parsed from strings to timestamp[us, UTC]", part, ", ".join(todo))
    return unparsed
