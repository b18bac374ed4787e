"""Dates embedded in image URLs: evidence of when an image was published, independent of the crawl.

Shapes recognised (year 1995..2029, month 01..12, day 01..31, checked as a calendar date):

    /2019/07/12/          a path of year, month, day (blogs, news sites)
    /2019/07/             year and month (WordPress: wp-content/uploads/2019/07/)
    /2019-07-12/, _2019_07_12_   separators - _ . between the parts, in a path segment or file name
    20190712              eight digits in a file name or segment, bounded by non-digits (IMG_20190712_...)
    2019-07, 2019_07      year and month in a file name, bounded by non-digits

Guards against numbers that only look like dates: a candidate inside a longer run of digits or
directly beside `x` (resolutions: 1920x1080, 2019x1200), after `v`/`version`/`rev` (v2019.07),
or in the host name is rejected; eight digits must be a valid date whose year is plausible; a bare
year (`/2019/` without a month) is not a date; query strings and fragments are ignored. When several
dates match, the most specific (day over month) and then the earliest is taken.

`parse_url_date(url)` returns (year, month, day or 0) or None; `url_dates(expr)` is the vectorised
Polars form returning a struct of year, month, day (nulls where no date) for a column of URLs.
"""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import urlsplit

import polars as pl

MIN_YEAR, MAX_YEAR = 1995, 2029
_Y = r"(19[89]\d|20[0-2]\d)"
_M = r"(0[1-9]|1[0-2])"
_D = r"(0[1-9]|[12]\d|3[01])"
_SEP = r"[-_./]"
# (regex, has_day); every regex has groups year, month[, day]; lookarounds keep digits and x/v out
_PATTERNS = [
    (re.compile(rf"(?<![0-9A-Za-z]){_Y}{_SEP}{_M}{_SEP}{_D}(?![0-9]|x\d)"), True),
    (re.compile(rf"(?<![0-9A-Za-z]){_Y}{_M}{_D}(?![0-9]|x\d)"), True),
    (re.compile(rf"(?<![0-9A-Za-z]){_Y}{_SEP}{_M}(?![0-9]|x\d)"), False),
]
_GUARD_BEFORE = re.compile(r"(?:v|ver|version|rev|r)[-_.]?$", re.IGNORECASE)


def _valid(y: int, m: int, d: int) -> bool:
    if not MIN_YEAR <= y <= MAX_YEAR:
        return False
    if d:
        try:
            date(y, m, d)
        except ValueError:
            return False
    return True


def parse_url_date(url: str | None) -> tuple[int, int, int] | None:
    """(year, month, day) of the date in the URL's path (day 0 when only a month is given), or None."""
    if not url:
        return None
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    found = []
    for rx, has_day in _PATTERNS:
        for m in rx.finditer(path):
            before = path[: m.start()]
            if _GUARD_BEFORE.search(before) or before.endswith("x"):
                continue
            y, mo = int(m.group(1)), int(m.group(2))
            d = int(m.group(3)) if has_day else 0
            if not has_day:
                # year-month alone must be its own path segment (/2019/07/) or a name part (photo-2019-07.jpg),
                # never a month-day piece of something longer (handled by the lookarounds)
                pass
            if _valid(y, mo, d):
                found.append((0 if d else 1, (y, mo, d)))
    if not found:
        return None
    return sorted(found)[0][1]


def _as_struct(u: str | None) -> dict | None:
    d = parse_url_date(u)
    return None if d is None else {"year": d[0], "month": d[1], "day": d[2]}


def url_dates(urls: pl.Expr) -> pl.Expr:
    """Struct {year, month, day} (Int16/Int8/Int8, day 0 when absent, all null without a date).

    URLs without four digits that could be a year (most of them) skip the Python parser."""
    maybe = urls.str.contains(r"(?:19[89]|20[0-2])[0-9]").fill_null(False)
    return pl.when(maybe).then(urls).otherwise(None).map_elements(
        _as_struct, return_dtype=pl.Struct({"year": pl.Int16, "month": pl.Int8, "day": pl.Int8}), skip_nulls=True)
