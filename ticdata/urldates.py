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

`parse_url_date(url)` returns (year, month, day or 0) or None; it is the reference. `url_dates(expr)`
is the vectorised Polars form `tic audit` uses (a struct of year, month, day; null where no date),
checked equal to `parse_url_date` on every shape above and on tens of thousands of random URLs
built to break it (tests/test_urldates.py). Polars' regex has no lookarounds. It finds the same
dates because no two matches of one pattern overlap (a match starts after a non-alphanumeric, and
inside one only a month, or a day no digit follows, comes after a separator), so `finditer` finds
every place a pattern fits; the vectorised form rewrites the path so that each context a lookaround
tests is one character a half word boundary tests without consuming it (`_prepared_path`), and
writes the calendar into its pattern (`_DATES`).
"""

from __future__ import annotations

import itertools
import re
import string
import unicodedata
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


# ---- the vectorised form --------------------------------------------------------------------------

STRUCT = pl.Struct({"year": pl.Int16, "month": pl.Int8, "day": pl.Int8})

# Unicode facts urlsplit and Python's `\d`/int() depend on. Known for the Unicode versions of
# Python 3.11 (14.0.0), 3.12 (15.0.0) and 3.13 (15.1.0); read from unicodedata (about half a second,
# once) under any other; tests/test_urldates.py checks them against unicodedata on every Python.
_ZEROS_14 = (  # the zero of each run of ten non-ASCII decimal digits
    0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66, 0xDE6, 0xE50,
    0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90, 0x1B50, 0x1BB0,
    0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10, 0x104A0, 0x10D30,
    0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730,
    0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8,
    0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0)
# host characters that NFKC turns into / ? # @ : (urlsplit's _checknetloc raises ValueError)
_DELIMS_14 = ("\u2047\u2048\u2049\u2100\u2101\u2105\u2106\u2a74\ufe13\ufe16\ufe55\ufe56\ufe5f\ufe6b"
              "\uff03\uff0f\uff1a\uff1f\uff20")
_ZEROS_15 = tuple(sorted(_ZEROS_14 + (0x11F50, 0x1E4F0)))  # Kawi, Nag Mundari


def _unicode_tables() -> tuple[tuple[int, ...], str]:
    known = {"14.0.0": (_ZEROS_14, _DELIMS_14), "15.0.0": (_ZEROS_15, _DELIMS_14), "15.1.0": (_ZEROS_15, _DELIMS_14)}
    if unicodedata.unidata_version in known:
        return known[unicodedata.unidata_version]
    chars = [chr(c) for c in range(0x80, 0x110000)]
    zeros = tuple(ord(c) for c in chars if unicodedata.decimal(c, -1) == 0)
    delims = "".join(c for c in chars if unicodedata.decomposition(c).startswith("<")
                     and any(d in unicodedata.normalize("NFKC", c) for d in "/?#@:"))
    return zeros, delims


_DIGIT_ZEROS, _NFKC_DELIMS = _unicode_tables()


def _digit(values: str = "0123456789") -> str:
    """A class of the characters Python's `\\d` takes whose value is in `values`."""
    return "[" + "".join(chr(z + int(v)) for z in (0x30, *_DIGIT_ZEROS) for v in values) + "]"


# a year-like number: URLs without one are not read (tab, CR and LF, which urlsplit drops, are
# allowed inside; Rust's \d takes more digits than Python's)
_T = r"[\t\r\n]*"
_YEARLIKE = rf"(?:1{_T}9{_T}9|2{_T}0{_T}[0-2]){_T}\d"
# a bracketed host urlsplit accepts (only the first [...] is read): IPvFuture, or IPv6 (RFC 3986)
_H, _O = "[0-9a-fA-F]{1,4}", r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_LS32 = rf"(?:{_H}:{_H}|{_O}\.{_O}\.{_O}\.{_O})"
_IPV6 = "|".join([rf"(?:{_H}:){{6}}{_LS32}", rf"::(?:{_H}:){{5}}{_LS32}"]  # at most m hextets before ::
                 + [rf"(?:(?:{_H}:){{0,{m - 1}}}{_H})?::(?:{_H}:){{{5 - m}}}{_LS32}" for m in range(1, 6)]
                 + [rf"(?:(?:{_H}:){{0,5}}{_H})?::{_H}", rf"(?:(?:{_H}:){{0,6}}{_H})?::"])
_NOT = rf"/?#{_NFKC_DELIMS}"  # never in a netloc urlsplit accepts
_HOST = rf"(?:v[0-9a-fA-F]+\.[^\]{_NOT}]+|(?:{_IPV6})(?:%[^%\]{_NOT}]+)?)"
_NETLOC = rf"(?:[^\[\]{_NOT}]*|[^\[{_NOT}]*\[{_HOST}\][^{_NOT}]*|[^\[{_NOT}]*\][^\[{_NOT}]*\[{_HOST})"
# urlsplit's leftovers, dropped: C0/space in front, a scheme, //netloc and the / that ends it (all of
# the URL where urlsplit raises ValueError), query and fragment; the \x01 put in front keeps the
# pattern from matching nothing, which is slow in Polars
_LEAD = (rf"^\x01[\x00-\x20]*(?:[A-Za-z][A-Za-z0-9+.-]*:)?(?://(?:{_NETLOC}(?:/|$)|(?s:.*)))?"
         r"|[?#](?s:.*)")
_SEP_V = r"[-#./]"  # _SEP once `_` is written `#`
_YEAR_V = rf"(?:199{_digit('56789')}|20[0-2]{_digit()})"  # _Y within MIN_YEAR..MAX_YEAR
_LEAP = rf"(?:199{_digit('6')}|20[02]{_digit('048')}|201{_digit('26')})"
_MONTHS = [f"{m:02d}" for m in range(1, 13)]
_LETTERS = string.ascii_letters


def _month_day(sep: str) -> str:
    """Month and day that make a date in any year (29 February apart), so no calendar check follows."""
    d = f"0[1-9]|[12]{_digit()}"
    return (rf"(?:(?:0[13578]|1[02]){sep}(?:{d}|3[01])|(?:0[469]|11){sep}(?:{d}|30)"
            rf"|02{sep}(?:0[1-9]|1{_digit()}|2{_digit('012345678')}))")


# every date of _PATTERNS that _valid keeps (a day before a month at one place); (?<![0-9A-Za-z])
# and (?![0-9]|x\d) are half word boundaries once `_` means x<digit>, or a letter taken after the
# date (no later date needs it: guards are settled by then)
_DATES = (r"(?-u:\b{start-half})"
          rf"(?:{_YEAR_V}{_SEP_V}{_month_day(_SEP_V)}|{_LEAP}{_SEP_V}02{_SEP_V}2{_digit('9')}"
          rf"|{_YEAR_V}{_month_day('')}|{_LEAP}022{_digit('9')}|{_YEAR_V}{_SEP_V}(?:0[1-9]|1[0-2]))"
          r"(?:(?-u:\b{end-half})|[A-Za-z])")
# the dates found, joined by ?, to numbers: a day YYYYMMDD, a month YYYY9999MM (larger than any day,
# so the smallest is the answer; its 9999MM becomes MM00 at the end); a letter taken dropped, digits
# made ASCII. Aho-Corasick, leftmost-first: a separator before a day's month goes with that month
_FOLD = {**{f"{s}{m}{t}": m for s in "-#./" for m in _MONTHS for t in "-#./"},
         **dict.fromkeys("-#./", "9999"), **dict.fromkeys(_LETTERS, ""),
         **{chr(z + v): str(v) for z in _DIGIT_ZEROS for v in range(10)}}
_MONTH_ONLY = {f"9999{m}": f"{m}00" for m in _MONTHS}
_KEY = r"^(?<year>[0-9]{4})(?<month>[0-9]{2})(?<day>[0-9]{2})$"


def _rewrites() -> dict[str, str]:
    """One Aho-Corasick pass (cheaper than a regex with groups): a separator after a guard (the ends
    of _GUARD_BEFORE, with the letters IGNORECASE also takes) becomes `g`, `_` becomes `#`, x<digit>
    becomes _<digit>."""
    versions = ("".join(c) for c in itertools.product("vV", "eE", "rR", "sSſ", "iIİı", "oO", "nN"))
    rewrites = {g + sep: g + "g" for g in (*versions, *"vVrR") for sep in "-_."}
    return {**rewrites, "_": "#", **{"x" + d: "_" + d for d in _digit()[1:-1]}}


_REWRITES = _rewrites()


def _prepared_path(urls: pl.Expr) -> pl.Expr:
    """The path (null without a year-like number), rewritten so that every context the Python
    patterns test is one plain character.

    A separator after a guard becomes `g` (a year after it then follows an alphanumeric, rejected as
    Python rejects it); `_` becomes `#` (no path holds one) and x<digit> becomes _<digit>, so
    `(?-u:\\b{end-half})` after a date means "neither a digit nor x<digit> follows"."""
    nothing_without_year = urls.str.find(_YEARLIKE).cast(pl.String).str.head(0)  # "" or null
    url = pl.concat_str([pl.lit("\x01"), urls, nothing_without_year])  # no when/then: CSE skips those
    path = url.str.replace_many({"\t": "", "\r": "", "\n": ""}).str.replace_all(_LEAD, "")
    return path.str.replace_many(_REWRITES, leftmost=True)  # leftmost: v_ is a guard, not a `_`


def url_dates(urls: pl.Expr) -> pl.Expr:
    """Struct {year, month, day} (Int16/Int8/Int8, day 0 when absent; a null struct without a date).

    One chain of string operations, each on the result of the one before (only `urls` is read twice):
    no Python per row, nothing computed twice where Polars does not eliminate common subexpressions
    (eager frames), and no when/then or list.eval, which keep lazy queries from eliminating them."""
    found = _prepared_path(urls).str.extract_all(_DATES).list.join("?").str.replace_many(_FOLD, leftmost=True)
    key = found.str.split("?").cast(pl.List(pl.Int32), strict=False).list.min().cast(pl.String)
    return key.str.replace_many(_MONTH_ONLY).str.extract_groups(_KEY).cast(STRUCT)
