"""Earliest row per uid: ties go to input order, n_seen counts every valid sighting."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl

from ticdata.dedupe import earliest_per_uid, partition_index


def _frame(rows):
    return pl.DataFrame(
        rows, schema={"uid": pl.String, "url": pl.String, "ts": pl.Datetime("us", "UTC"), "_order": pl.Int64}, orient="row"
    )


def test_earliest_wins_and_ties_go_to_input_order():
    t1, t2 = datetime(2015, 1, 1, tzinfo=timezone.utc), datetime(2019, 1, 1, tzinfo=timezone.utc)
    a, b = "a" * 32, "b" * 32
    # Built from several chunks, as the reduce concatenates one frame per map task.
    df = pl.concat(
        [
            _frame([(a, "late", t2, 1), (b, "b-first", t1, 2)]),
            _frame([(a, "tie-first", t1, 5), (b, "b-second", t1, 7)]),
            _frame([(a, "tie-second", t1, 9)]),
        ],
        rechunk=False,
    )
    out = earliest_per_uid(df).sort("uid")
    assert out["url"].to_list() == ["tie-first", "b-first"]
    assert out["n_seen"].to_list() == [3, 2]
    assert "_order" not in out.columns


def test_unsorted_input_is_handled():
    t = datetime(2016, 5, 5, tzinfo=timezone.utc)
    df = _frame([("c" * 32, "second", t, 20), ("c" * 32, "first", t, 10)])
    assert earliest_per_uid(df)["url"].to_list() == ["first"]


def test_partition_index_is_uniform_and_tolerates_bad_uids():
    import random

    rnd = random.Random(0)
    uids = ["%032x" % rnd.getrandbits(128) for _ in range(20000)] + ["NOT-HEX", None]
    parts = pl.DataFrame({"uid": uids}, schema={"uid": pl.String}).select(partition_index(8))["uid"]
    counts = parts.drop_nulls().value_counts()["count"]
    assert counts.len() == 8 and counts.min() > 2300 and counts.max() < 2700
    assert parts[-2:].null_count() == 2
