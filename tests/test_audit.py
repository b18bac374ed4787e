"""`tic audit` on pools with planted errors: a known share of rows first seen years after their real
date (evidence in the URL or in EXIF on a random subset), planted impossible orders; the audit's
wrong-bucket interval holds the planted share, and --fix moves exactly the rows it should."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from ticdata.audit import check_fail_if, run_audit, wilson
from ticdata.audit_report import write_report
from ticdata.curate import CurateConfig, curate
from ticdata.errors import UserError
from ticdata.executor import InlineExecutor, RayExecutor
from ticdata.manifest import scan_manifest
from ticdata.snapshots import SnapshotTable

N = 6000
WRONG_SHARE = 0.12
URL_SHARE, EXIF_SHARE = 0.30, 0.15
IMPOSSIBLE = 40
YEARS = (2017, 2018, 2019, 2020, 2021)


def _url(rng, when, i):
    y, m, d = when.year, when.month, when.day
    shape = i % 3
    if shape == 0:
        return f"https://blog{i % 50}.example.com/wp-content/uploads/{y}/{m:02d}/photo-{i}.jpg"
    if shape == 1:
        return f"https://news{i % 30}.example.org/{y}/{m:02d}/{d:02d}/story-{i}/image.jpg"
    return f"https://cdn{i % 20}.example.net/u/{i}/IMG_{y}{m:02d}{d:02d}_120000.jpg"


def _pool(tmp_path):
    rng = np.random.default_rng(7)
    snaps = SnapshotTable.load()
    crawl = {y: next(s for s in snaps.snapshots if s.start.year == y and s.start.month == 2) for y in YEARS}
    rows, truth = [], []
    for i in range(N):
        y = int(rng.choice(YEARS))
        c = crawl[y]
        ts = c.start
        wrong = rng.random() < WRONG_SHARE
        real = ts.replace(year=y - 2) - timedelta(days=int(rng.integers(1, 200))) if wrong else ts - timedelta(days=int(rng.integers(1, 15)))
        ev = rng.random()
        url = f"https://plain{i % 40}.example.com/images/{i}.jpg"
        exif = None
        kind = "none"
        if ev < URL_SHARE:
            url, kind = _url(rng, real, i), "url"
        elif ev < URL_SHARE + EXIF_SHARE:
            exif, kind = real.strftime("%Y:%m:%d %H:%M:%S"), "exif"
        if i < IMPOSSIBLE:  # a URL dated after the row was first seen
            wrong, kind, exif = False, "impossible", None
            url = f"https://late.example.com/{ts.year}/{ts.month + 6:02d}/{10:02d}/late-{i}.jpg"
        rows.append({"uid": f"{i:032x}", "url": url, "text": f"row {i}", "source": f"crawl-data/{c.id}/segments/1/wat/x.warc.wat.gz",
                     "exif_datetime_original": exif})
        truth.append({"uid": f"{i:032x}", "wrong": wrong, "kind": kind})
    pl.DataFrame(rows, schema_overrides={"exif_datetime_original": pl.String}).write_parquet(tmp_path / "pool.parquet")
    out = tmp_path / "cur"
    curate(CurateConfig(inputs=(str(tmp_path / "pool.parquet"),), out=out, progress=False), InlineExecutor())
    return out, pl.DataFrame(truth)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return _pool(tmp_path_factory.mktemp("audit"))


@pytest.mark.slow
def test_the_planted_share_lies_in_the_interval(planted, tmp_path, ray_local):
    cur, truth = planted
    with RayExecutor() as ex:
        r = run_audit(cur, tmp_path / "a", ex, fix=tmp_path / "fixed", progress=False)
    assert r["rows"] == N
    w = r["wrong_bucket"]
    population = truth["wrong"].mean()  # the share of all rows whose bucket is wrong
    lo, hi = w["ci95"]
    assert lo <= population <= hi and lo <= WRONG_SHARE <= hi, (w, population)
    # exactly the evidence-carrying wrong rows are counted
    with_ev = truth.filter(pl.col("kind").is_in(["url", "exif"]))
    assert w["with_evidence"] == with_ev.height + IMPOSSIBLE
    assert w["wrong"] == with_ev["wrong"].sum()
    assert r["impossible_order"]["rows"] == IMPOSSIBLE
    assert r["coverage"]["url"]["rows"] == truth.filter(pl.col("kind").is_in(["url", "impossible"])).height
    assert r["coverage"]["exif"]["rows"] == truth.filter(pl.col("kind") == "exif").height
    assert r["agreement"]["url"]["same_year"] < 1.0 and r["domains"][0]["domain"] == "late.example.com"
    assert sum(r["lag_days"]["counts"]) == w["with_evidence"]
    assert {c["bucket"] for c in r["crawls"]} == {str(y) for y in YEARS}
    # --fix: the wrong rows move to their real year, the original time is kept
    fixed = scan_manifest(tmp_path / "fixed").collect().join(truth, on="uid")
    orig = scan_manifest(cur).select("uid", "year").collect().rename({"year": "year0"})
    fixed = fixed.join(orig, on="uid")
    moved = fixed.filter(pl.col("ts_fix_source").is_not_null())
    assert set(moved.filter(pl.col("year") != pl.col("year0"))["uid"]) == set(with_ev.filter("wrong")["uid"])
    assert (moved["ts"] < moved["ts_original"]).all()
    assert fixed.filter(pl.col("kind") == "none")["ts_fix_source"].null_count() == fixed.filter(pl.col("kind") == "none").height
    doc = json.loads((tmp_path / "fixed" / "manifest.json").read_text())
    assert "rule" in doc["audit_fix"] and sum(b["rows"] for b in doc["buckets"].values()) + doc["outside_buckets"]["rows"] == N
    # thresholds for CI use, and the report
    assert check_fail_if(r, ["wrong_bucket.share>0.05"]) and not check_fail_if(r, ["wrong_bucket.share>0.5"])
    with pytest.raises(UserError, match="no figure"):
        check_fail_if(r, ["nope.share>1"])
    md = write_report(r, tmp_path / "a")
    text = md.read_text()
    for png in ("rows-by-month.png", "agreement.png", "lag.png"):
        assert (tmp_path / "a" / png).stat().st_size > 5000 and png in text
    assert "late.example.com" in text


def test_signals_read_typed_and_older_string_dates_alike():
    """Downloads store Last-Modified and EXIF DateTimeOriginal as timestamp[us, UTC]; folders downloaded
    before hold the raw strings. The audit's signals are the same from either."""
    from ticdata.audit_signals import with_signals

    ts = pl.Series(["2020-03-01T00:00:00"] * 4).str.to_datetime(time_zone="UTC")
    lm = ["Tue, 05 Aug 2014 07:52:34 GMT", "Sunday, 06-Nov-19 08:49:37 GMT", "not a date", None]
    ex = ["2019:07:12 10:11:12", "0000:00:00 00:00:00", "2019-07-12T10:11:12", None]
    old = pl.DataFrame({"uid": list("abcd"), "url": ["https://x.example.com/a.jpg"] * 4, "ts": ts, "last_modified": lm,
                        "exif_datetime_original": ex})
    want_lm = [(2014, 8, 5, 7, 52, 34), (2019, 11, 6, 8, 49, 37), None, None]
    want_ex = [(2019, 7, 12, 10, 11, 12), None, (2019, 7, 12, 10, 11, 12), None]
    typed = old.with_columns(
        last_modified=pl.Series([None if w is None else datetime(*w, tzinfo=timezone.utc) for w in want_lm], dtype=pl.Datetime("us", "UTC")),
        exif_datetime_original=pl.Series([None if w is None else datetime(*w, tzinfo=timezone.utc) for w in want_ex],
                                         dtype=pl.Datetime("us", "UTC")))
    cols = ["sig_exif", "sig_last_modified", "sig_earliest"]
    a = with_signals(old.lazy(), old.columns, None).select(cols).collect()
    b = with_signals(typed.lazy(), typed.columns, None).select(cols).collect()
    assert a.equals(b) and a.schema["sig_exif"] == pl.Datetime("us", "UTC")
    assert a["sig_last_modified"].to_list() == typed["last_modified"].to_list()
    assert a["sig_exif"].to_list() == typed["exif_datetime_original"].to_list()


def test_wilson_interval():
    lo, hi = wilson(12, 100)
    assert 0.069 < lo < 0.071 and 0.198 < hi < 0.201
    assert wilson(0, 0) == (None, None)


def test_cli_fails_when_a_threshold_is_crossed(planted, tmp_path, capsys):
    from ticdata.cli import main

    cur, _ = planted
    rc = main(["audit", str(cur), "--out", str(tmp_path / "a"), "--executor", "inline", "-q", "--fail-if", "wrong_bucket.share>0.05"])
    assert rc == 3 and "failed: wrong_bucket.share>0.05" in capsys.readouterr().err
    rc = main(["audit", str(cur), "--out", str(tmp_path / "b"), "--executor", "inline", "-q", "--fail-if", "wrong_bucket.share>0.5"])
    out = capsys.readouterr().out
    assert rc == 0 and "wrong bucket:" in out and (tmp_path / "b" / "audit.html").exists()
    assert json.loads((tmp_path / "b" / "audit.json").read_text())["rows"] == N


def test_a_killed_fix_resumes_to_the_bytes_of_an_uninterrupted_run(planted, tmp_path, monkeypatch):
    """--fix is a job like the others: killed after some tasks, the rerun finishes the corrected
    manifest with the bytes of a run that was never interrupted (and refuses other inputs)."""
    import ticdata.audit as audit_mod
    from conftest import tree_digest
    from ticdata.layout import state_dir

    cur, _ = planted
    run_audit(cur, tmp_path / "clean", InlineExecutor(), fix=tmp_path / "clean-fix", progress=False)
    real, calls = audit_mod.audit_part, []

    def dies_on_third(spec):
        calls.append(spec.index)
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed in the middle of the stage
        return real(spec)

    monkeypatch.setattr(audit_mod, "audit_part", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_audit(cur, tmp_path / "a", InlineExecutor(), fix=tmp_path / "fix", progress=False)
    assert len(list((state_dir(tmp_path / "a", "audit") / "completions").glob("*.json"))) == 2
    assert not (tmp_path / "fix" / "manifest.json").exists()
    monkeypatch.setattr(audit_mod, "audit_part", real)
    calls.clear()
    r = run_audit(cur, tmp_path / "a", InlineExecutor(), fix=tmp_path / "fix", progress=False)
    assert r["fix"]["rows_moved"] > 0 and not state_dir(tmp_path / "a", "audit").exists()
    clean = tree_digest(tmp_path / "clean-fix")
    fixed = {k: v for k, v in tree_digest(tmp_path / "fix").items() if k != "manifest.json"}
    assert len(fixed) >= 5 and fixed == {k: v for k, v in clean.items() if k != "manifest.json"}
    # manifest.json names its own folder in audit_fix.out: equal but for that
    a = json.loads((tmp_path / "fix" / "manifest.json").read_text())
    b = json.loads((tmp_path / "clean-fix" / "manifest.json").read_text())
    assert a["buckets"] == b["buckets"] and a["audit_fix"]["rows_moved"] == b["audit_fix"]["rows_moved"]
    # the bucket table comes from the tasks' counts: equal to a count of the corrected files on disk
    from ticdata.benchmarks import benchmark_from_manifest
    from ticdata.manifest import count_buckets

    assert count_buckets(tmp_path / "fix", benchmark_from_manifest(a, tmp_path / "fix" / "manifest.json")) == (a["buckets"], a["outside_buckets"])
    # the same inputs again: nothing to do; another --fix folder into the same OUT: refused
    assert run_audit(cur, tmp_path / "a", InlineExecutor(), fix=tmp_path / "fix", progress=False)["rows"] == r["rows"]
    with pytest.raises(UserError, match="--overwrite"):
        run_audit(cur, tmp_path / "a", InlineExecutor(), fix=tmp_path / "fix2", progress=False)
