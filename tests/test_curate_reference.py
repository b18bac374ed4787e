"""`tic curate` equals an independent DuckDB computation on random pools, and its ledger balances."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from reference import curated_rows, reference_curation
from ticdata.curate import CurateConfig, curate
from ticdata.executor import InlineExecutor, RayExecutor
from ticdata.ledger import Ledger

UIDS = ["%032x" % (0x9E3779B97F4A7C15 * (i + 1) % 2**128) for i in range(6)]
BAD_UIDS = ["A" * 32, "abc", None, "g" * 32]
URLS = ["http://a.example/1.jpg", "https://b.example/x/2.png", "http://c.example/3.jpg", None, "", "   "]
TEXTS = ["a red car", "two dogs", "ünïcode caption", None, "", "  "]
SOURCES = [
    "crawl-data/CC-MAIN-2019-51/segments/1/warc/CC-MAIN-20191205-00042.warc.gz",
    "CC-MAIN-2014-10",
    "s3://commoncrawl/crawl-data/CC-MAIN-2022-05/wat/CC-MAIN-20220116123456-0001.warc.wat.gz",
    "crawl-data/CC-MAIN-2099-01/x.warc.gz",  # unknown crawl
    "no crawl id here",
    None,
    "crawl-data/CC-MAIN-2012/x",
    "CC-MAIN-2008-2009",
    "crawl-data/CC-MAIN-2023-50/y",
]
CRAWL_TIMES = ["2016-02-03T04:05:06Z", "2021-12-31T23:59:59Z", "2013-06-01T00:00:00Z", "1970-01-01T00:00:00Z", "garbage", None]

row = st.fixed_dictionaries(
    {
        "uid": st.one_of(st.sampled_from(UIDS), st.sampled_from(BAD_UIDS)),
        "url": st.sampled_from(URLS),
        "text": st.sampled_from(TEXTS),
        "source": st.sampled_from(SOURCES),
        "crawl_time": st.sampled_from(CRAWL_TIMES),
        "file": st.integers(0, 2),
    }
)


def write_pool(rows: list[dict], folder: Path, row_group_size: int = 4) -> list[Path]:
    files = []
    schema = {"uid": pl.String, "url": pl.String, "text": pl.String, "source": pl.String, "crawl_time": pl.String, "extra": pl.Int64}
    for f in sorted({r["file"] for r in rows}):
        part = [r for r in rows if r["file"] == f]
        df = pl.DataFrame([{k: v for k, v in r.items() if k != "file"} | {"extra": i} for i, r in enumerate(part)], schema=schema)
        path = folder / f"pool-{f}.parquet"
        df.write_parquet(path, row_group_size=row_group_size)
        files.append(path)
    return files


def check_against_reference(files: list[Path], out: Path, doc: dict) -> None:
    expected, dropped = reference_curation(files)
    led = doc["ledger"]
    assert Ledger.balanced(led)
    assert {k: v for k, v in led["dropped"].items() if v} == dropped
    assert led["kept"] == expected.height
    assert led["duplicates"] == int(expected["n_seen"].sum() or 0) - expected.height
    if expected.height == 0:
        assert not list((out / "manifest").rglob("*.parquet"))
        return
    assert_frame_equal(curated_rows(out), expected, check_dtypes=False)
    assert doc["rows"] == expected.height
    assert sum(doc["years"].values()) == expected.height


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(row, min_size=1, max_size=40), partitions=st.integers(1, 4), chunk_rows=st.integers(1, 12))
def test_random_pools_match_duckdb(rows, partitions, chunk_rows):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = write_pool(rows, tmp)
        config = CurateConfig(inputs=(str(tmp),), out=tmp / "out", partitions=partitions, chunk_rows=chunk_rows, progress=False)
        doc = curate(config, InlineExecutor())
        check_against_reference(files, tmp / "out", doc)


def test_larger_random_pool_on_ray_matches_duckdb(tmp_path, ray_local):
    import random

    rnd = random.Random(7)
    uids = ["%032x" % rnd.getrandbits(128) for _ in range(3000)]
    rows = []
    for i in range(12000):
        rows.append(
            {
                "uid": rnd.choice(uids) if rnd.random() > 0.01 else rnd.choice(BAD_UIDS),
                "url": rnd.choice(URLS[:3]) + f"?{i % 5000}" if rnd.random() > 0.01 else rnd.choice(URLS[3:]),
                "text": f"caption {i % 4000}" if rnd.random() > 0.01 else rnd.choice(TEXTS[3:]),
                "source": rnd.choice(SOURCES),
                "crawl_time": rnd.choice(CRAWL_TIMES),
                "file": rnd.randrange(4),
            }
        )
    pool = tmp_path / "pool"
    pool.mkdir()
    files = write_pool(rows, pool, row_group_size=500)
    config = CurateConfig(inputs=(str(pool),), out=tmp_path / "out", partition_rows=2500, chunk_rows=1000, progress=False)
    with RayExecutor() as ex:
        doc = curate(config, ex)
    assert doc["parameters"]["partitions"] == 5
    check_against_reference(files, tmp_path / "out", doc)
    ts_years = curated_rows(tmp_path / "out").group_by("year").len()
    assert {str(y): n for y, n in ts_years.iter_rows()} == doc["years"]


def test_buckets_follow_the_benchmark(tmp_path):
    rows = [
        {"uid": UIDS[0], "url": "http://a/1", "text": "t", "source": "CC-MAIN-2014-10", "crawl_time": None, "file": 0},
        {"uid": UIDS[1], "url": "http://a/2", "text": "t", "source": "CC-MAIN-2016-07", "crawl_time": None, "file": 0},
        {"uid": UIDS[2], "url": "http://a/3", "text": "t", "source": "CC-MAIN-2019-51", "crawl_time": None, "file": 0},
        {"uid": UIDS[3], "url": "http://a/4", "text": "t", "source": "CC-MAIN-2023-50", "crawl_time": None, "file": 0},
        {"uid": UIDS[4], "url": "http://a/5", "text": "t", "source": None, "crawl_time": "2019-07-12T10:00:00Z", "file": 0},
    ]
    write_pool(rows, tmp_path)
    doc = curate(CurateConfig(inputs=(str(tmp_path / "pool-0.parquet"),), out=tmp_path / "y", progress=False), InlineExecutor())
    assert doc["buckets"]["2014-2016"]["rows"] == 2
    assert doc["buckets"]["2019"]["rows"] == 2
    assert doc["buckets"]["2017"]["rows"] == 0
    assert doc["outside_buckets"] == {"rows": 1, "years": {"2023": 1}}
    assert list(doc["buckets"]) == ["2014-2016", "2017", "2018", "2019", "2020", "2021", "2022"]
    monthly = curate(
        CurateConfig(inputs=(str(tmp_path / "pool-0.parquet"),), out=tmp_path / "m", granularity="month", progress=False),
        InlineExecutor(),
    )
    # CC-MAIN-2019-51 starts 2019-12-05; the crawl_time row is July 2019.
    assert {k: v["rows"] for k, v in monthly["buckets"].items()} == {"2014-03": 1, "2016-02": 1, "2019-07": 1, "2019-12": 1}
    assert monthly["buckets"]["2019-07"]["step"] == "2019"
