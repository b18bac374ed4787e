"""`tic audit`'s driver holds bounded tables only: the domains, the one partial table that grows
with the pool, are summed by hash class in tasks and reach the driver as a top per class."""

from __future__ import annotations

import polars as pl
import pytest

import ticdata.audit as audit
from driver_guard import ProcessExecutor
from test_audit import planted  # noqa: F401  (the fixture: a curated pool with planted wrong dates)
from ticdata.executor import InlineExecutor


def _run(cur, out, executor):
    r = audit.run_audit(cur, out, executor, progress=False)
    assert r["domains"], "the planted pool has domains with disagreement"
    return r


def test_domains_merged_by_hash_class_equal_one_merge(planted, tmp_path, monkeypatch):  # noqa: F811
    cur, _ = planted
    one = _run(cur, tmp_path / "one", InlineExecutor())
    calls = []
    real = audit.top_domains
    monkeypatch.setattr(audit, "top_domains", lambda spec: calls.append(spec.classes) or real(spec))
    monkeypatch.setattr(audit, "DOMAIN_MERGE_ROWS", 7)
    many = _run(cur, tmp_path / "many", InlineExecutor())
    assert len(calls) == calls[0] > 5  # the per-part domain rows cut into classes of about 7
    assert many["domains"] == one["domains"]
    assert len(one["domains"]) == audit.TOP_DOMAINS


@pytest.mark.slow
def test_the_driver_reads_no_domain_row(planted, tmp_path, monkeypatch):  # noqa: F811
    cur, _ = planted
    one = _run(cur, tmp_path / "one", InlineExecutor())
    real = pl.read_parquet

    def bounded_only(source, *a, **k):
        assert "domains" not in str(source), "the driver read a part's domains"
        return real(source, *a, **k)

    monkeypatch.setattr(pl, "read_parquet", bounded_only)
    monkeypatch.setattr(pl, "scan_parquet", lambda *a, **k: pytest.fail("the driver scanned a part"))
    monkeypatch.setattr(audit, "DOMAIN_MERGE_ROWS", 50)
    got = _run(cur, tmp_path / "proc", ProcessExecutor())
    assert got["domains"] == one["domains"]
