"""Link rot figures: the Wilson interval against a hand-computed value, survival against hand
arithmetic over status counts, and (tests/test_download_scale.py) against a count of a real
download's manifest."""

from __future__ import annotations

import polars as pl
import pytest

from ticdata.survival import file_counts, format_survival, survival, wilson, with_official


def test_wilson_interval_by_hand():
    # 8 of 10 at z = 1.96: p = 0.8, denominator 1 + 3.8416/10 = 1.38416,
    # centre (0.8 + 0.19208) / 1.38416 = 0.716737, half-width 1.96 * sqrt(0.016 + 0.009604) / 1.38416 = 0.226581
    lo, hi = wilson(8, 10, z=1.96)
    assert lo == pytest.approx(0.49016, abs=1e-5) and hi == pytest.approx(0.94332, abs=1e-5)
    assert wilson(0, 0) == (None, None)
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == 1.0


def test_survival_by_bucket_year_and_month():
    old = pl.DataFrame({"status": ["success", "failed_to_download", "failed_to_download", "refused", "skipped", None],
                        "month": [1, 1, 2, None, 1, 1]}, schema_overrides={"month": pl.Int8})
    new = pl.DataFrame({"status": ["success", "success", "success", "failed_to_resize"], "month": [3, 3, 4, 4]},
                       schema_overrides={"month": pl.Int8})
    doc = survival({"2014-2016": file_counts(old, 2015) + file_counts(new, 2016), "2022": file_counts(new, 2022)})
    b = doc["buckets"]["2014-2016"]
    # attempted: 4 of the old file (skipped and pending are not), 4 of the new; survived 1 + 3
    assert (b["attempted"], b["survived"], b["survival"]) == (8, 4, 0.5)
    assert (b["low"], b["high"]) == pytest.approx(wilson(4, 8))
    assert b["lost"] == {"failed_to_download": 2, "failed_to_resize": 1, "refused": 1}
    assert {y: (r["survived"], r["attempted"]) for y, r in b["years"].items()} == {"2015": (1, 4), "2016": (3, 4)}
    assert {m: (r["survived"], r["attempted"]) for m, r in b["months"].items()} == {
        "2015-01": (1, 2), "2015-02": (0, 1), "2015-??": (0, 1), "2016-03": (2, 2), "2016-04": (1, 2)}
    assert doc["buckets"]["2022"]["survival"] == 0.75 and doc["min"] == 0.5
    table = format_survival(doc)
    assert "2014-2016" in table and "50.0%" in table and "  2015" in table and "75.0%" in table


def test_official_lists_listed_downloaded_lost():
    doc = survival({"2016": [[2016, 1, "success", 30], [2016, 1, "failed_to_download", 10]]})
    got = with_official(doc, {"2016": {"uids": 100, "matched": 40}, "2017": {"uids": 5, "matched": 0}})["official"]
    # 100 listed, 40 found in the pool, 30 of those downloaded: 70 lost (60 never in the pool, 10 failed)
    assert got["2016"] == {"listed": 100, "in_pool": 40, "downloaded": 30, "lost": 70, "kept": 0.3}
    assert got["2017"] == {"listed": 5, "in_pool": 0, "downloaded": 0, "lost": 5, "kept": 0.0}
    assert "official list" in format_survival(with_official(doc, {"2016": {"uids": 100, "matched": 40}}))
