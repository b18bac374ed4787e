"""How far tic's own dating agrees with an official split (`tic uids import`, `tic regenerate`).

An official uid list names a bucket: TiC-DataComp's yearly lists a year (`2016.npy`), its monthly
ones a month (`201603.npy` or `2016-03.npy`), a benchmark's steps a year range (`2014-2016.npy`).
For every listed uid found in the curated folder, tic has recovered its own first-seen year and
month; a found row is "dated elsewhere" when that date lies outside the span its list's name
denotes (or, for a name that denotes no date, when tic's bucket for the row has another name).
The share dated elsewhere is a timestamp-quality figure of either side."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import polars as pl

from ticdata.benchmarks import Benchmark

_YEARS = re.compile(r"(\d{4})(?:-(\d{4}))?")
_MONTH = re.compile(r"(\d{4})-?(\d{2})")


def official_span(name: str) -> tuple[tuple[int, int], int | None] | None:
    """((first year, last year), month or None) that a bucket name denotes, or None."""
    m = _MONTH.fullmatch(name)
    if m and 1 <= int(m.group(2)) <= 12 and not _YEARS.fullmatch(name):
        return (int(m.group(1)), int(m.group(1))), int(m.group(2))
    m = _YEARS.fullmatch(name)
    if m:
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        return ((a, b), None) if a <= b else None
    return None


def tally(sel: pl.DataFrame, year: int, bench: Benchmark, counts: Counter) -> None:
    """Add (official bucket, tic year, tic month, tic bucket) counts of the found rows `sel` of one
    manifest part (whose hive year is `year`; `bucket` is the official list's name)."""
    month = pl.col("month") if "month" in sel.columns else pl.lit(None, pl.Int8)
    tic_bucket = bench.bucket_expr(year=pl.lit(year, pl.Int32), month=month) if bench.granularity != "list" else pl.col("bucket")
    if bench.granularity == "list" and "src_bucket" in sel.columns:
        tic_bucket = pl.col("src_bucket")
    rows = sel.select("bucket", month.alias("_m"), tic_bucket.alias("_tic")).group_by("bucket", "_m", "_tic").len()
    for official, m, tic, n in rows.iter_rows():
        counts[(official, year, None if m is None else int(m), tic)] += n


def agreement(counts: Counter) -> dict[str, dict]:
    """Per official bucket: found rows, how many tic dates elsewhere, and tic's buckets for them."""
    out: dict[str, dict] = {}
    for (official, year, month, tic), n in sorted(counts.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        b = out.setdefault(official, {"found": 0, "dated_elsewhere": 0, "tic_buckets": {}})
        b["found"] += n
        span = official_span(official)
        if span is not None:
            (a, z), want_month = span
            inside = a <= year <= z and (want_month is None or month == want_month)
        else:
            inside = tic == official
        if not inside:
            b["dated_elsewhere"] += n
        key = tic if tic is not None else "outside"
        b["tic_buckets"][key] = b["tic_buckets"].get(key, 0) + n
    return out


def dating_of_lists(curated: Path, specs: list[str], out: Path, executor=None, progress: bool = False) -> dict[str, dict]:
    """Per official list (BUCKET=FILE.npy specs): how many of its uids the curated folder dates, and
    how many of those it dates outside the list's bucket (`tic reshard --uids ... --dating DIR`):
    tasks by uid range and per manifest file (`ticdata.uidsplits.date_lists`), state in OUT."""
    from ticdata.uidsplits import date_lists

    return date_lists(curated, specs, out, executor, progress)


def format_dating(dating: dict[str, dict], reshard_doc: dict | None = None) -> str:
    """The one table of a regeneration: listed / found / missing (from the reshard) / dated by tic / elsewhere."""
    lines = [f"{'bucket':<12} {'listed':>12} {'found':>12} {'missing':>10} {'dated by tic':>13} {'dated elsewhere':>16}"]
    for name, d in dating.items():
        b = (reshard_doc or {}).get("buckets", {}).get(name, {})
        share = f" ({d['dated_elsewhere'] / d['dated_by_tic']:.1%})" if d["dated_by_tic"] else ""
        lines.append(f"{name:<12} {d['listed']:>12,} {b.get('samples', 0):>12,} {b.get('missing', 0):>10,} "
                     f"{d['dated_by_tic']:>13,} {d['dated_elsewhere']:>9,}{share}")
    return "\n".join(lines)
