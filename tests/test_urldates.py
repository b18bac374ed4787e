"""The URL-date parser on real-world URL shapes, including ones that must not match."""

from __future__ import annotations

import polars as pl
import pytest

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
