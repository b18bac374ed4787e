"""`tic audit` of a folder whose curation kept rows outside every bucket (years before the first
step or after the last): those rows form their own group in the per-crawl table instead of
breaking the audit (a left join on a null bucket used to leave their share empty)."""

from __future__ import annotations

import json

from ticdata.cli import main


def test_audit_counts_rows_outside_every_bucket(tmp_path):
    from ticdata.synth.pool import make_pool

    make_pool(tmp_path / "pool", rows=3000, seed=2, rows_per_file=3000)
    assert main(["-q", "curate", str(tmp_path / "pool"), "--out", str(tmp_path / "cur"), "--executor", "inline"]) == 0
    outside = json.loads((tmp_path / "cur" / "manifest.json").read_text())["outside_buckets"]["rows"]
    assert outside > 0  # the synthetic pool has rows from 2008-2013 and 2023-2025
    assert main(["-q", "audit", str(tmp_path / "cur"), "--out", str(tmp_path / "a"), "--executor", "inline"]) == 0
    crawls = json.loads((tmp_path / "a" / "audit.json").read_text())["crawls"]
    per_bucket: dict = {}
    for c in crawls:
        per_bucket.setdefault(c["bucket"], []).append(c)
    assert sum(c["rows"] for c in per_bucket[None]) == outside
    for rows in per_bucket.values():  # shares of each bucket's rows, outside rows included, add up to one
        assert abs(sum(c["share_of_bucket"] for c in rows) - 1) < 1e-9
