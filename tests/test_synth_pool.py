"""The synthetic CommonCrawl-style pool: deterministic bytes, planted defects that a query finds
exactly, re-sightings spread over files and snapshots, web-growth years, and a guarded out dir."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from ticdata.errors import UserError
from ticdata.snapshots import SNAPSHOT_REGEX, SnapshotTable
from ticdata.synth import REASONS, BadRowRates, make_pool

ROWS = 80_000
PER_FILE = 20_000
GROUP = 4_096
SEED = 7


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "pool"  # does not exist yet: make_pool creates it
    summary = make_pool(out, ROWS, seed=SEED, rows_per_file=PER_FILE, row_group_rows=GROUP)
    return out, summary


def _windows() -> pl.DataFrame:
    t = SnapshotTable.load()
    return pl.DataFrame(
        {
            "snapshot": [s.id for s in t.snapshots],
            "win_from": [s.start for s in t.snapshots],
            "win_to": [s.end for s in t.snapshots],
        },
        schema={"snapshot": pl.String, "win_from": pl.Datetime("us", "UTC"), "win_to": pl.Datetime("us", "UTC")},
    )


def _read(out: Path) -> pl.DataFrame:
    """Every row in file order, with its file, its position, its crawl id and that crawl's window."""
    df = pl.read_parquet(sorted(out.glob("pool-*.parquet")), include_file_paths="file").with_row_index("order")
    return df.with_columns(snapshot=pl.col("source").str.extract(SNAPSHOT_REGEX, 1)).join(
        _windows(), on="snapshot", how="left", maintain_order="left"
    )


def _defects() -> dict[str, pl.Expr]:
    """Each reason as a predicate over the written columns, independent of the generator's code."""
    no_ct = pl.col("crawl_time").is_null()
    return {
        "missing_url": pl.col("url").is_null() | (pl.col("url") == ""),
        "missing_text": pl.col("text").is_null() | (pl.col("text").str.strip_chars() == ""),
        "bad_uid": ~pl.col("uid").str.contains(r"^[0-9a-f]{32}$"),
        "unknown_snapshot": pl.col("snapshot").is_not_null() & pl.col("win_from").is_null() & no_ct,
        "no_timestamp": pl.col("snapshot").is_null() & no_ct,
    }


def _valid(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(~pl.any_horizontal(list(_defects().values())))


def _bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    kw = dict(rows=30_000, rows_per_file=8_000, row_group_rows=2_048)
    a = make_pool(tmp_path / "a", seed=3, **kw)
    b = make_pool(tmp_path / "b", seed=3, workers=1, **kw)  # thread count must not matter
    c = make_pool(tmp_path / "c", seed=4, **kw)
    files_a, files_b, files_c = _bytes(tmp_path / "a"), _bytes(tmp_path / "b"), _bytes(tmp_path / "c")
    assert sorted(files_a) == ["_synth.json", "pool-00000.parquet", "pool-00001.parquet", "pool-00002.parquet", "pool-00003.parquet"]
    assert a == b and files_a == files_b
    assert sorted(files_c) == sorted(files_a)
    assert all(files_a[n] != files_c[n] for n in files_a)
    assert a["expected"] != c["expected"] or a["seed"] != c["seed"]
    uids_a = set(pl.read_parquet(tmp_path / "a" / "pool-00000.parquet")["uid"])
    uids_c = set(pl.read_parquet(tmp_path / "c" / "pool-00000.parquet")["uid"])
    assert len(uids_a & uids_c) == 0


def test_layout_columns_and_row_groups(pool):
    out, summary = pool
    files = sorted(out.glob("pool-*.parquet"))
    assert [f.name for f in files] == [f"pool-{i:05d}.parquet" for i in range(ROWS // PER_FILE)]
    assert summary["files"] == len(files) and summary["rows"] == ROWS and summary["seed"] == SEED
    assert json.loads((out / "_synth.json").read_text()) == summary
    assert (out / "_synth.json").read_text() == json.dumps(summary, sort_keys=True, indent=2) + "\n"
    for f in files:
        meta = pq.ParquetFile(f).metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        assert sizes[:-1] == [GROUP] * (len(sizes) - 1) and 0 < sizes[-1] <= GROUP
        assert sum(sizes) == PER_FILE
        assert meta.row_group(0).column(0).compression == "ZSTD"
    schema = pl.read_parquet_schema(files[0])
    assert schema == {
        "uid": pl.String,
        "url": pl.String,
        "text": pl.String,
        "source": pl.String,
        "crawl_time": pl.String,
        "original_width": pl.Int32,
        "original_height": pl.Int32,
        "clip_b32_similarity_score": pl.Float32,
    }


def test_planted_counts_are_what_a_query_finds(pool):
    out, summary = pool
    df = _read(out)
    assert df.height == ROWS
    masks = _defects()
    found = df.select(**{r: m.sum() for r, m in masks.items()}).row(0, named=True)
    assert found == summary["planted"] == BadRowRates().counts(ROWS)
    assert set(summary["planted"]) == set(REASONS)
    assert all(n > 0 for n in found.values())
    # one defect a row: the reasons are disjoint
    assert df.select(pl.sum_horizontal([m.cast(pl.Int8) for m in masks.values()]).max()).item() == 1
    # the variants are mixed as promised: half null, half empty
    n_url = summary["planted"]["missing_url"]
    assert df["url"].null_count() == (n_url + 1) // 2
    assert df.filter(pl.col("url") == "").height == n_url // 2
    n_text = summary["planted"]["missing_text"]
    assert df["text"].null_count() == (n_text + 1) // 2
    assert df.filter(pl.col("text") == "   ").height > 0 and df.filter(pl.col("text") == "").height > 0
    bad_uid = df.filter(masks["bad_uid"])["uid"]
    assert bad_uid.str.contains("[A-F]").any() and (bad_uid.str.len_chars() != 32).any()
    # undatable rows carry no crawl_time; everything the curator keeps is datable
    valid = _valid(df)
    assert valid.height == summary["expected"]["valid_rows"]
    assert valid.filter(pl.col("win_from").is_null()).height == 0
    kept = valid["uid"].n_unique()
    assert summary["expected"] == {"valid_rows": valid.height, "kept": kept, "duplicates": valid.height - kept}


def test_values_look_like_datacomp_commoncrawl(pool):
    out, _ = pool
    df = _read(out)
    good = df.filter(pl.col("uid").str.contains(r"^[0-9a-f]{32}$"))
    ct = df.filter(pl.col("crawl_time").is_not_null())
    assert 0.17 < ct.height / df.height < 0.23
    assert ct["crawl_time"].str.contains(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").all()
    inside = ct.filter(pl.col("win_from").is_not_null()).with_columns(
        t=pl.col("crawl_time").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC", time_unit="us")
    )
    assert inside.height == ct.height
    assert inside.filter((pl.col("t") < pl.col("win_from")) | (pl.col("t") > pl.col("win_to"))).height == 0
    assert df["source"].drop_nulls().str.starts_with("crawl-data/CC-MAIN-").mean() > 0.99
    urls = df["url"].drop_nulls().filter(df["url"].drop_nulls() != "")
    assert urls.str.contains(r"^https://[a-z0-9.-]+\.[a-z.]+/").all()
    domains = urls.str.extract(r"^https://([^/]+)/", 1)
    assert 1_000 <= domains.n_unique() <= 2_000
    texts = df["text"].drop_nulls()
    assert texts.str.contains(r"[^\x00-\x7f]").mean() > 0.05  # some unicode
    assert texts.str.len_chars().min() < 10 and texts.str.len_chars().max() > 60  # varied lengths
    assert good.select(pl.col("original_width").min() > 0, pl.col("original_height").min() > 0).row(0) == (True, True)
    score = df["clip_b32_similarity_score"]
    assert 0.25 < score.mean() < 0.35 and score.min() >= 0 and score.max() <= 0.6


def test_resightings_span_files_and_snapshots(pool):
    out, summary = pool
    df = _valid(_read(out))
    per_uid = df.group_by("uid").agg(
        n=pl.len(),
        files=pl.col("file").n_unique(),
        snaps=pl.col("snapshot").n_unique(),
        urls=pl.col("url").n_unique(),
        texts=pl.col("text").n_unique(),
        first_in_file_order=pl.col("win_from").sort_by("order").first(),
        earliest=pl.col("win_from").min(),
    )
    assert per_uid.select(pl.col("urls").max(), pl.col("texts").max()).row(0) == (1, 1)  # same pair each time
    again = per_uid.filter(pl.col("n") > 1)
    assert again["n"].sum() - again.height == summary["expected"]["duplicates"]
    assert again.height > 0.1 * per_uid.height
    assert (again["files"] > 1).mean() > 0.5
    assert (again["snaps"] > 1).mean() > 0.5
    assert (again["snaps"] == 1).sum() > 0  # some re-sightings in the same snapshot too
    late_first = (again["first_in_file_order"] > again["earliest"]).mean()
    assert late_first > 0.25, late_first
    assert summary["resightings"] == ROWS // 4 and summary["unique_pairs"] == ROWS - ROWS // 4


def test_first_sightings_grow_over_the_years(pool):
    out, _ = pool
    first = _valid(_read(out)).group_by("uid").agg(year=pl.col("win_from").min().dt.year())
    counts = dict(first.group_by("year").len().iter_rows())
    core = [counts.get(y, 0) for y in range(2014, 2023)]
    assert all(a < b for a, b in zip(core, core[1:])), core
    total = first.height
    before = sum(n for y, n in counts.items() if y < 2014) / total
    after = sum(n for y, n in counts.items() if y > 2022) / total
    assert 0.005 < before < 0.05 and 0.005 < after < 0.05, (before, after)
    assert {y for y in counts if y < 2014} <= {2008, 2009, 2012, 2013}
    assert {y for y in counts if y > 2022} == {2023, 2024, 2025}


def test_a_custom_crawl_index_and_rates(tmp_path):
    crawls = [
        {"id": "CC-MAIN-2015-14", "from": "2015-03-26T00:00:00", "to": "2015-04-04T00:00:00"},
        {"id": "CC-MAIN-2019-51", "from": "2019-12-05T00:00:00", "to": "2019-12-16T00:00:00"},
        {"id": "CC-MAIN-2024-10", "from": "2024-02-20T00:00:00", "to": "2024-03-05T00:00:00"},
    ]
    (tmp_path / "collinfo.json").write_text(json.dumps(crawls))
    table = SnapshotTable.load(tmp_path / "collinfo.json")
    rates = BadRowRates(missing_url=0.01, missing_text=0, bad_uid=0, unknown_snapshot=0.02, no_timestamp=0)
    s = make_pool(tmp_path / "p", 5_000, rates=rates, snapshots=table)
    assert s["planted"] == {"missing_url": 50, "missing_text": 0, "bad_uid": 0, "unknown_snapshot": 100, "no_timestamp": 0}
    ids = pl.read_parquet(tmp_path / "p" / "pool-00000.parquet")["source"].str.extract(SNAPSHOT_REGEX, 1)
    known = ids.is_in([c["id"] for c in crawls])
    assert ids.null_count() == 0 and (~known).sum() == 100
    with pytest.raises(UserError):
        make_pool(tmp_path / "q", 100, rates=BadRowRates(missing_url=0.6, missing_text=0.6))
    with pytest.raises(UserError):
        make_pool(tmp_path / "q", 0)


def test_refuses_a_folder_that_holds_a_pool(tmp_path):
    out = tmp_path / "pool"
    out.mkdir()
    (out / "README.txt").write_text("other files are fine")
    make_pool(out, 3_000, rows_per_file=1_000)
    assert len(list(out.glob("pool-*.parquet"))) == 3
    with pytest.raises(UserError) as e:
        make_pool(out, 3_000)
    assert str(out) in str(e.value) and "\n" not in str(e.value)
    s = make_pool(out, 2_000, overwrite=True)  # one file now: the old three are gone
    assert sorted(p.name for p in out.iterdir()) == ["README.txt", "_synth.json", "pool-00000.parquet"]
    assert s["rows"] == pl.scan_parquet(out / "pool-*.parquet").select(pl.len()).collect().item() == 2_000


def test_a_200k_row_pool_with_default_files_is_what_its_summary_says(tmp_path):
    """At the default file size a 200k-row pool is one file whose rows, defects and keepers a query counts."""
    out = tmp_path / "p"
    s = make_pool(out, 200_000)
    assert sorted(p.name for p in out.iterdir()) == ["_synth.json", "pool-00000.parquet"]
    assert json.loads((out / "_synth.json").read_text()) == s
    assert s["rows"] == 200_000 and s["files"] == 1
    df = _read(out)
    assert df.height == 200_000
    found = df.select(**{r: m.sum() for r, m in _defects().items()}).row(0, named=True)
    assert found == s["planted"] == BadRowRates().counts(200_000)
    valid = _valid(df)
    kept = valid["uid"].n_unique()
    assert s["expected"] == {"valid_rows": valid.height, "kept": kept, "duplicates": valid.height - kept}
    assert s["resightings"] == 200_000 // 4 and s["unique_pairs"] == 200_000 - 200_000 // 4


@pytest.mark.parametrize("share,sightings", [(0.0, 1.0), (0.75, 4.0)])
def test_the_resight_share_sets_sightings_per_uid_and_the_summary_stays_exact(tmp_path, share, sightings):
    """The benchmark's pool shapes (1 to 4 sightings per uid) keep an exact summary: the valid rows,
    the distinct uids a curation keeps and the duplicates it drops, counted here by a query."""
    rows = 40_000
    s = make_pool(tmp_path / "p", rows=rows, seed=2, rows_per_file=15_000, row_group_rows=4_000, resight_share=share)
    assert s["unique_pairs"] == rows - round(rows * share)
    df = _read(tmp_path / "p")
    assert df.height == rows and rows / df["uid"].n_unique() == pytest.approx(sightings, rel=0.02)
    valid = _valid(df)
    kept = valid["uid"].n_unique()
    assert s["expected"] == {"valid_rows": valid.height, "kept": kept, "duplicates": valid.height - kept}
    assert pq.ParquetFile(tmp_path / "p" / "pool-00000.parquet").metadata.num_row_groups == 4  # 15,000 rows in groups of 4,000
