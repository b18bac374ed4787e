"""The crawl id found in `source` paths: the fast path (a window after the first mark, matched once
per distinct window) must equal the pattern run over every whole path, whatever the paths hold."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from ticdata.recover import _snapshot_in_source
from ticdata.snapshots import SNAPSHOT_REGEX

PIECES = ["CC-MAIN-", "CC-MAIN", "2014", "2019-04", "20", "-", "1", "12345", "/", "é", "x", "crawl-data/", ".warc.gz"]
paths = st.lists(st.sampled_from(PIECES), max_size=8).map("".join)


def reference(source: pl.Series) -> list:
    return source.str.extract(SNAPSHOT_REGEX, 1).to_list()


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.none(), paths), max_size=40), st.integers(1, 5))
def test_equals_the_pattern_over_whole_paths(values, repeat):
    # repeated rows take the once-per-distinct-window branch, unrepeated ones the per-row branch
    source = pl.Series("source", values * repeat, dtype=pl.String)
    assert _snapshot_in_source(source).to_list() == reference(source)


def test_cases_a_window_could_get_wrong():
    cases = [
        "ééé/crawl-data/CC-MAIN-2019-04/segments/x.warc.gz",  # multi-byte chars before the mark
        "CC-MAIN-x/CC-MAIN-2020-10/",  # the first mark is not a crawl id, the second is
        "CC-MAIN-CC-MAIN-2019-04",  # a second mark inside the first one's window
        "CC-MAIN-2014-12345/",  # five digits: the id stops at the year
        "CC-MAIN-2014-1",  # one digit: the year alone
        "CC-MAIN-20144",  # a fifth year digit: no id
        "CC-MAIN-2017-13",  # the id ends the path
        "s3://commoncrawl/crawl-data/CC-MAIN-2023-40/segments/1695/wat/CC-MAIN-20230923003714-76524.warc.wat.gz",
        None,
        "",
    ]
    source = pl.Series("source", cases * 3, dtype=pl.String)
    got = _snapshot_in_source(source).to_list()
    assert got == reference(source)
    assert got[:8] == ["CC-MAIN-2019-04", "CC-MAIN-2020-10", "CC-MAIN-2019-04", "CC-MAIN-2014", "CC-MAIN-2014", None, "CC-MAIN-2017-13",
                       "CC-MAIN-2023-40"]
