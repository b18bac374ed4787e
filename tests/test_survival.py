"""Link rot figures: the Wilson interval against a hand-computed value, survival against hand
arithmetic over status counts, and (tests/test_download_scale.py) against a count of a real
download's manifest."""

from __future__ import annotations

import polars as pl
import pytest

from ticdata import survival_domains as SD
from ticdata.executor import InlineExecutor
from ticdata.job import Job
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


def _domain_file(seed: int, rows: int) -> pl.DataFrame:
    """Rows of 40 domains with skewed sizes and survival, in two buckets, some never attempted."""
    import numpy as np

    rng = np.random.default_rng(seed)
    d = rng.zipf(1.6, rows) % 40
    ok = rng.random(rows) < (0.3 + d / 60)  # each domain its own survival
    status = np.where(ok, "success", np.where(rng.random(rows) < 0.8, "failed_to_download", "refused"))
    status = np.where(rng.random(rows) < 0.05, "skipped", status)
    return pl.DataFrame({"url": [f"https://Site{k}.example/img/{i}.jpg" for i, k in enumerate(d)], "status": status,
                         "bucket": np.where(rng.random(rows) < 0.5, "2014-2016", "2022")})


def test_top_domains_merged_by_hash_class_equal_one_count(tmp_path, monkeypatch):
    """Three files summed in 1 class and in 5: the same top domains per bucket as one group_by of
    every row; each bucket's shares of attempted rows and of survivors by hand."""
    frames = [_domain_file(s, 3000) for s in range(3)]
    files = []
    for i, df in enumerate(frames):
        files.append(tmp_path / f"d{i}.parquet")
        SD.domain_counts(df, pl.col("bucket")).write_parquet(files[-1])
    whole = pl.concat(frames).filter(pl.col("status").is_in(["success", "failed_to_download", "refused"]))
    want = {}
    for (b,), g in whole.group_by("bucket"):
        c = (g.group_by(pl.col("url").str.extract(r"://([^/]+)", 1).str.to_lowercase().alias("d"))
             .agg(n=pl.len(), ok=(pl.col("status") == "success").sum()).sort("n", "d", descending=[True, False]))
        want[b] = [list(r) for r in c.head(5).rows()]
    for classes_rows in (10**9, 7):  # one class; then about 5 classes (35 domain rows per bucket pair / 7)
        monkeypatch.setattr(SD, "MERGE_ROWS", classes_rows)
        job = Job(tmp_path / f"job-{classes_rows}", "test", {"x": 1}, progress=False).check().open()
        rows = sum(pl.read_parquet(f).height for f in files)
        got = SD.merge_stage(job, InlineExecutor(), files, rows, top=5)
        assert got == want
    doc = survival({b: file_counts(whole.filter(pl.col("bucket") == b).with_columns(month=pl.lit(1, pl.Int8)), 2015)
                    for b in ("2014-2016", "2022")})
    doc = SD.with_domains(doc, got)
    for b, v in doc["buckets"].items():
        n_top, ok_top = sum(r[1] for r in want[b]), sum(r[2] for r in want[b])
        assert v["domains"]["attempted_share"] == n_top / v["attempted"]
        assert v["domains"]["survivor_share"] == ok_top / v["survived"]
        first = v["domains"]["top"][0]
        assert (first["low"], first["high"]) == wilson(first["survived"], first["attempted"])
    assert "top 5 domains:" in format_survival(doc) and "site1.example" in format_survival(doc)
