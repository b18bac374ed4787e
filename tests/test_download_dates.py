"""The pure parts of `tic download`'s bookkeeping: HTTP-date and EXIF parsing with the reason a value
is not parsed, the failure reasons of the summary's histogram, the round's busy time."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pytest

from ticdata.download_dates import exif_date, http_date, reason_exif_date, reason_http_date
from ticdata.download_stats import _busy_seconds, error_histogram, failure_reason, round_figures


def utc(*parts):
    return datetime(*parts, tzinfo=timezone.utc)


HTTP = [
    ("Tue, 05 Aug 2014 07:52:34 GMT", utc(2014, 8, 5, 7, 52, 34), None),  # IMF-fixdate
    ("Sunday, 06-Nov-94 08:49:37 GMT", utc(1994, 11, 6, 8, 49, 37), None),  # RFC 850
    ("Sunday, 06-Nov-19 08:49:37 GMT", utc(2019, 11, 6, 8, 49, 37), None),
    ("Sun Nov  6 08:49:37 1994", utc(1994, 11, 6, 8, 49, 37), None),  # asctime
    ("Wed, 05 Aug 2014 07:52:34 GMT", utc(2014, 8, 5, 7, 52, 34), None),  # a wrong weekday: the date counts
    ("tue, 5 aug 2014 07:52:34 UTC", utc(2014, 8, 5, 7, 52, 34), None),
    ("Mon, 31 Feb 2014 07:52:34 GMT", None, "impossible date"),
    ("Tue, 05 Aug 2014 25:52:34 GMT", None, "impossible date"),
    ("Tue, 05 Aug 2014 07:52:34 +0200", None, "not an HTTP-date"),
    ("Tue, 05 Foo 2014 07:52:34 GMT", None, "not an HTTP-date"),
    ("1407225154", None, "not an HTTP-date"),
    ("   ", None, "empty"),
    (None, None, None),
]
EXIF = [
    ("2019:07:12 10:11:12", utc(2019, 7, 12, 10, 11, 12), None),
    ("2019:07:12 10:11:12\x00", utc(2019, 7, 12, 10, 11, 12), None),
    ("2019-07-12T10:11:12.250", utc(2019, 7, 12, 10, 11, 12), None),
    ("0000:00:00 00:00:00", None, "placeholder 0000:00:00"),
    ("    :  :     :  :  ", None, "empty"),
    ("2019:13:12 10:11:12", None, "impossible date"),
    ("2019:07:12", None, "not an EXIF date-time"),
    ("July 2019", None, "not an EXIF date-time"),
    (None, None, None),
]


@pytest.mark.parametrize("parse, reason, cases", [(http_date, reason_http_date, HTTP), (exif_date, reason_exif_date, EXIF)])
def test_dates_parse_or_say_why_not(parse, reason, cases):
    df = pl.DataFrame({"v": [c[0] for c in cases]}, schema={"v": pl.String})
    got = df.select(parse(pl.col("v")).alias("t"), reason(pl.col("v")).alias("r"))
    assert got.schema["t"] == pl.Datetime("us", "UTC")
    assert list(zip(got["t"].to_list(), got["r"].to_list())) == [(c[1], c[2]) for c in cases]


def test_failure_reasons_group_messages():
    messages = {
        "HTTP Error 404: Not Found": "HTTP 404",
        "HTTP Error 503: Service Unavailable": "HTTP 503",
        "<urlopen error timed out>": "timed out",
        "The read operation timed out": "timed out",
        "deadline: the fetch took over 4 s in all (the server sends too slowly)": "deadline exceeded",
        "incomplete read: 120 of 5000 bytes": "incomplete read",
        "refused: a.example resolves to a non-global address (10.0.0.1: private, ...); pass --allow-private-hosts": "refused: non-global address",
        "refused: 9000x9000 pixels, over the cap of 40000000": "refused: over the pixel cap",
        "refused: more than 20971520 bytes": "refused: over the byte cap",
        "refused: Use of image disallowed by X-Robots-Tag directive": "refused: X-Robots-Tag",
        "cannot resolve nohost.example: [Errno -2] Name or service not known": "cannot resolve host",
        "<urlopen error [Errno 111] Connection refused>": "connection refused",
        "image decoding failed: bad marker 0x42 at 1234": "image decoding failed: bad marker NxN at N",
    }
    df = pl.DataFrame({"m": list(messages)})
    assert df.select(failure_reason(pl.col("m")).alias("r"))["r"].to_list() == list(messages.values())
    rows = pl.DataFrame({"status": ["success", "failed_to_download", "refused", "failed_to_download", "skipped", "failed_to_resize"],
                         "error_message": [None, "HTTP Error 404: Not Found", "refused: more than 5 bytes", "HTTP Error 404: x",
                                           "outside every bucket", None]})
    hist = error_histogram(rows)
    assert hist == {"HTTP 404": 2, "refused: over the byte cap": 1, "(no message)": 1} and list(hist)[0] == "HTTP 404"


def test_round_throughput_counts_busy_time_once():
    assert _busy_seconds([(0, 10), (5, 12), (20, 25), (21, 22)]) == 17
    assert _busy_seconds([]) == 0
    shards = [{"start_time": 100.0, "end_time": 104.0, "successes": 40, "count": 50, "bytes_downloaded": 2_000_000,
               "unparsed_dates": {"last_modified": {"not an HTTP-date": 2}}},
              {"start_time": 102.0, "end_time": 108.0, "successes": 40, "count": 40, "bytes_downloaded": 2_000_000,
               "unparsed_dates": {"last_modified": {"not an HTTP-date": 1}, "exif_datetime_original": {"empty": 3}}}]
    r = round_figures(2, shards)
    assert (r["seconds"], r["images"], r["rows"], r["images_per_s"], r["mb_per_s"]) == (8.0, 80, 90, 10.0, 0.5)
    assert r["unparsed_dates"] == {"last_modified": {"not an HTTP-date": 3}, "exif_datetime_original": {"empty": 3}}
