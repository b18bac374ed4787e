"""The URL-date parser on real-world URL shapes, including ones that must not match, and its
vectorised form checked equal to it on those shapes and on random URLs built to break it."""

from __future__ import annotations

import random
import re
import unicodedata
from urllib.parse import urlsplit

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticdata import urldates
from ticdata.urldates import parse_url_date, url_dates

CASES = [
    # (url, expected (year, month, day) or None)
    ("https://example.com/wp-content/uploads/2019/07/photo.jpg", (2019, 7, 0)),
    ("https://news.example.org/2019/07/12/story-title/image.jpg", (2019, 7, 12)),
    ("http://blog.example.com/2015/12/31/new-year.png", (2015, 12, 31)),
    ("https://cdn.example.com/images/IMG_20190712_153000.jpg", (2019, 7, 12)),
    ("https://cdn.example.com/photos/20180230.jpg", None),  # 30 February is no date
    ("https://example.com/uploads/2020-03-15-launch.jpg", (2020, 3, 15)),
    ("https://example.com/img/photo_2017_11_02.jpeg", (2017, 11, 2)),
    ("https://example.com/archive/2016.05/header.png", (2016, 5, 0)),
    ("https://example.com/media/2014-08/banner.webp", (2014, 8, 0)),
    ("https://i.example.com/sites/default/files/styles/large/public/2021-06/cover.jpg", (2021, 6, 0)),
    ("https://example.com/wallpapers/1920x1080/sunset.jpg", None),  # a resolution
    ("https://example.com/thumbs/2019x1200/sunset.jpg", None),  # looks like a year, is a width
    ("https://example.com/files/image-2048x1536.jpg", None),
    ("https://example.com/static/v2019.07/logo.png", None),  # a version number
    ("https://example.com/assets/version-2020.11/app.png", None),
    ("https://example.com/product/123456789012/pic.jpg", None),  # a long id, not a date
    ("https://example.com/p/1201907121/x.jpg", None),  # the date is inside a longer number
    ("https://example.com/2019/photo.jpg", None),  # a year alone is not a date
    ("https://example.com/img/1890/05/old.jpg", None),  # outside the plausible years
    ("https://example.com/gallery/2019/13/x.jpg", None),  # month 13
    ("https://2019-07-12.example.com/pic.jpg", None),  # host names are not evidence
    ("https://example.com/pic.jpg?date=2019-07-12", None),  # nor query strings
    ("https://example.com/2018/03/2018-03-05-event.jpg", (2018, 3, 5)),  # the most specific wins
    ("https://example.com/2012/01/re-upload-2019-06-01.jpg", (2019, 6, 1)),  # a day beats a month
    ("", None),
    (None, None),
]


@pytest.mark.parametrize("url,want", CASES)
def test_url_shapes(url, want):
    assert parse_url_date(url) == want


def test_vectorised_form_agrees():
    df = pl.DataFrame({"url": [u for u, _ in CASES]}, schema={"url": pl.String})
    got = df.select(d=url_dates(pl.col("url")))["d"].to_list()
    want = [None if w is None else {"year": w[0], "month": w[1], "day": w[2]} for _, w in CASES]
    assert got == want


# ---- the vectorised form against the reference ------------------------------------------------------

def _vectorised(urls: list[str | None]) -> list[dict | None]:
    return pl.DataFrame({"url": urls}, schema={"url": pl.String}).select(d=url_dates(pl.col("url")))["d"].to_list()


def _reference(urls: list[str | None]) -> list[dict | None]:
    return [None if d is None else {"year": d[0], "month": d[1], "day": d[2]} for d in map(parse_url_date, urls)]


def _assert_same(urls: list[str | None]) -> None:
    for url, got, want in zip(urls, _vectorised(urls), _reference(urls), strict=True):
        assert got == want, f"{url!r}: url_dates {got}, parse_url_date {want}"


def test_vectorised_equals_reference_on_every_shape():
    shapes = [u for u, _ in CASES]
    # the same shapes behind a query, a fragment, tab/newline (dropped by urlsplit) and odd schemes
    more = [u + tail for u in shapes if u for tail in ("?d=2019-07-12", "#2020/01/02", "?a#b")]
    more += [u.replace("://", ":\t//", 1) for u in shapes if u] + [u.upper() for u in shapes if u]
    _assert_same(shapes + more)


# pieces likely to break an emulation of lookarounds, calendar checks and urlsplit
_DIGITS = ["2019", "2020", "1996", "2000", "2001", "1900", "1994", "1995", "2029", "2030", "1980", "201",
           "20190712", "19960229", "20010229", "20180230", "201907", "0229", "0", "1", "9", "12", "123456",
           "201\u0669", "199\u0666", "2\u0669", "1\u0665", "\u0663", "\uff13", "\U0001d7d9", "201\U00010d45"]
_SEPS = ["-", "_", ".", "/", "//", "", " ", "x", "X", "x1", "x\u0663", "v", "V", "r", "R", "rev", "ver",
         "version", "VERSION", "ver\u017fion", "vers\u0130on", "v-", "r_", "version.", "é", "%20", "\t", "\n"]
_HOSTS = ["https://example.com", "http://2019-07-12.example.com", "//cdn.example.org", "https:", "", "ftp://a.b",
          "HTTP://x.y", "  https://e.com", "2019:", "a+b-c.d://h", "mailto:", "https://例え.jp",
          "https://[::1]", "https://[v1.x]", "https://[1.2.3.4]", "https://[::1%eth0]", "https://u@[fe80::1]:80",
          "https://[::1", "https://a]b", "https://]a[::1", "https://[1:2:3:4:5:6:7:8:9]", "https://ex\uff0fample.com",
          "https://ex\u2047.com", "https://ex\u2100.com", "//[::]"]
_TAILS = ["", "", "?d=2019-07-12", "#2019/07/12", "?a=1#2020-01-01", "?", "#"]


def _date(rng: random.Random) -> str:
    """Year, separator, month 00..13 and often a day 00..32 (29 February in leap and other years)."""
    y = rng.choice(["2019", "2020", "1996", "1999", "2000", "2009", "1900", "1994", "1995", "2029", "2030", "2028",
                    "201\u0669"])
    m = "02" if rng.random() < 0.3 else f"{rng.randint(0, 13):02d}"
    d = rng.choice([f"{rng.randint(0, 32):02d}", "29", "30", "31", "2\u0669", "1\u0665"])
    parts = [y, rng.choice(_SEPS[:8]), m] + ([rng.choice(_SEPS[:8]), d] if rng.random() < 0.6 else [])
    return "".join(parts)


def _random_url(rng: random.Random) -> str | None:
    if rng.random() < 0.02:
        return rng.choice([None, ""])
    pieces = [_date(rng) if rng.random() < 0.5 else rng.choice(_DIGITS + _SEPS) for _ in range(rng.randint(1, 8))]
    return rng.choice(_HOSTS) + rng.choice(["/", "", "/a/", "/v-"]) + "".join(pieces) + rng.choice(_TAILS)


def test_vectorised_equals_reference_on_random_urls():
    rng = random.Random(20240601)
    urls = [_random_url(rng) for _ in range(30_000)]
    assert sum(parse_url_date(u) is not None for u in urls) > 2_000  # the comparison covers many dates
    _assert_same(urls)


_piece = st.one_of(st.sampled_from(_DIGITS + _SEPS), st.text(alphabet="0123456789-_./xvr", max_size=12),
                   st.text(max_size=4))
_url = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.builds(lambda host, lead, pieces, tail: host + lead + "".join(pieces) + tail, st.sampled_from(_HOSTS),
              st.sampled_from(["/", "", "/a/"]), st.lists(_piece, max_size=8), st.sampled_from(_TAILS)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_url, min_size=1, max_size=40))
def test_vectorised_equals_reference_property(urls):
    _assert_same(urls)


def test_unicode_tables_match_this_python():
    """_DIGIT_ZEROS and _NFKC_DELIMS are what unicodedata says (the vectorised form hard-codes them)."""
    chars = [chr(c) for c in range(0x80, 0x110000) if not 0xD800 <= c < 0xE000]
    digits = re.findall(r"\d", "".join(chars))  # Python's \d beyond ASCII, in runs of ten from a zero
    assert set(digits) == {chr(z + v) for z in urldates._DIGIT_ZEROS for v in range(10)}
    assert all(unicodedata.digit(chr(z + v)) == v for z in urldates._DIGIT_ZEROS for v in range(10))
    nfkc = unicodedata.normalize("NFKC", "\0".join(chars)).split("\0")  # \0 never composes: char by char
    assert "".join(c for c, n in zip(chars, nfkc) if any(d in n for d in "/?#@:")) == urldates._NFKC_DELIMS


def test_unicode_tables_of_an_unknown_version_are_read_from_unicodedata(monkeypatch):
    """A Python whose Unicode version the module does not know gets the tables unicodedata gives."""
    known = urldates._unicode_tables()
    monkeypatch.setattr(unicodedata, "unidata_version", "99.0.0")
    assert urldates._unicode_tables() == known


def test_bracketed_hosts_as_urlsplit_checks_them():
    """The IPv6/IPvFuture pattern accepts exactly the [hosts] urlsplit does not raise ValueError on."""
    rng = random.Random(7)
    bits = ["1", "ff", "ABCD", "12345", "0", "::", ":", ":", ".", "1.2.3.4", "255", "256", "01", "%", "eth0", "v",
            "g", ""]
    hosts = ["".join(rng.choice(bits) for _ in range(rng.randint(0, 10))) for _ in range(20_000)]
    hosts += ["::", "::1", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::ffff:1.2.3.4", "fe80::1%eth0", "v1.x", "v1."]
    got = pl.Series(hosts).str.contains(f"^{urldates._HOST}$").to_list()
    for host, ok in zip(hosts, got, strict=True):
        try:
            urlsplit(f"//[{host}]/")
            want = True
        except ValueError:
            want = False
        assert ok == want, host
