"""`tic download` at any pool size: the plan and the merge are tasks per manifest file, the driver
reads no row, and the shards pack a bucket's files in order (a shard may span two files)."""

from __future__ import annotations

import json

import polars as pl

from driver_guard import ProcessExecutor, refuse_row_readers
from test_download import config, make_pool, server  # noqa: F401  (the loopback image server fixture)
from ticdata.curate import CurateConfig, curate
from ticdata.download import download, format_summary
from ticdata.download_plan import number_shards
from ticdata.executor import InlineExecutor
from ticdata.manifest import scan_manifest
from ticdata.survival import ATTEMPTED


def test_shards_are_numbered_across_files_in_order():
    table = number_shards([("a", 0, 0, 5), ("a", 1, 0, 4), ("b", 2, 0, 3)], {"a": 2, "b": 0}, 4)
    assert table.rows() == [("a", 2, 0, 0, 4), ("a", 3, 0, 4, 1), ("a", 3, 1, 0, 3), ("a", 4, 1, 3, 1), ("b", 0, 2, 0, 3)]
    assert number_shards([("a", 0, 0, 0)], {"a": 0}, 4).height == 0
    # a file holding two buckets (months, uid lists): each bucket's rows start at their offset in the plan file
    mixed = number_shards([("a", 0, 0, 3), ("b", 0, 3, 2), ("a", 1, 0, 2)], {"a": 0, "b": 5}, 4)
    assert mixed.rows() == [("a", 0, 0, 0, 3), ("b", 5, 0, 3, 2), ("a", 0, 1, 0, 1), ("a", 1, 1, 1, 1)]


def test_the_driver_reads_no_row(tmp_path, server, monkeypatch):  # noqa: F811
    _, records = make_pool(tmp_path, server.url, normal_per_year=30)
    out = tmp_path / "parts"  # the same pool curated into three files per year: a bucket spans files
    curate(CurateConfig(inputs=(str(tmp_path / "pool.parquet"),), out=out, progress=False, partitions=3), InlineExecutor())
    files = sorted((out / "manifest").rglob("*.parquet"))
    assert len(files) >= 6
    with monkeypatch.context() as m:
        refuse_row_readers(m)
        summary = download(config(out, samples_per_shard=8), ProcessExecutor())
    man = scan_manifest(out).collect()
    assert man["status"].null_count() == 0 and man.height == len(records)
    ok = man.filter(pl.col("status") == "success")
    for bucket, b in summary.items():
        sizes = json.loads((out / "shards" / bucket / "sizes.json").read_text())
        assert sum(sizes.values()) == b["samples"] == ok.filter(pl.col("shard").str.starts_with(f"{bucket}/")).height
        tables = sorted((out / "shards" / bucket).glob("*.parquet"))
        rows = [pl.read_parquet(t).height for t in tables]
        assert rows[:-1] == [8] * (len(rows) - 1) and 0 < rows[-1] <= 8  # packed: only the last shard is short
        assert sum(rows) == b["rows"]
    assert {k: v for k, v in summary.items()} == json.loads((out / "manifest.json").read_text())["download"]["buckets"]
    # survival per bucket and year equals a count of the manifest's statuses (skipped rows are not attempted)
    surv = json.loads((out / "manifest.json").read_text())["download"]["survival"]
    for bucket, got in surv["buckets"].items():
        rows = man.filter((pl.col("year") == int(bucket)) & pl.col("status").is_in(list(ATTEMPTED)))
        assert (got["attempted"], got["survived"]) == (rows.height, rows.filter(pl.col("status") == "success").height)
        assert 0 < got["survival"] < 1 and got["low"] < got["survival"] < got["high"]
        # its top domains, counted apart from the tasks: every attempted row's host
        hosts = rows.group_by(pl.col("url").str.extract(r"://([^/:?#]+)", 1).str.to_lowercase().alias("d")).agg(
            n=pl.len(), ok=(pl.col("status") == "success").sum()).sort("n", "d", descending=[True, False])
        assert [(r["domain"], r["attempted"], r["survived"]) for r in got["domains"]["top"]] == hosts.head(10).rows()
        assert got["domains"]["attempted_share"] == hosts.head(10)["n"].sum() / rows.height
    assert set(surv["buckets"]) == {"2017", "2019"} and surv["min"] == min(b["survival"] for b in surv["buckets"].values())
    assert "survival (successes / attempted rows" in format_summary(summary)
    again = download(config(out, samples_per_shard=8), InlineExecutor())  # round 2: only the failures
    assert json.loads((out / "manifest.json").read_text())["download"]["rounds"] == 2
    assert sum(b["statuses"].get("success", 0) for b in again.values()) == ok.height
    # tic audit's survival section counts the same statuses, and --fail-if reads it
    from ticdata.audit import check_fail_if, run_audit
    from ticdata.audit_report import write_report

    audited = run_audit(out, tmp_path / "audit", InlineExecutor(), progress=False)
    assert audited["survival"] == json.loads((out / "manifest.json").read_text())["download"]["survival"]
    assert check_fail_if(audited, ["survival.min<0.99"]) and not check_fail_if(audited, ["survival.min<0.01"])
    write_report(audited, tmp_path / "audit")
    assert "## Survival (link rot)" in (tmp_path / "audit" / "audit.md").read_text()


def test_a_folder_of_official_lists_reports_listed_downloaded_lost(tmp_path, server):  # noqa: F811
    """A regeneration from official uid lists: per list, listed / in the pool / downloaded / lost."""
    from ticdata.cli import main
    from ticdata.uidlists import write_uid_file

    out, _ = make_pool(tmp_path, server.url)
    uids = scan_manifest(out).filter(pl.col("year") == 2017).select("uid").collect()["uid"].to_list()
    strangers = [f"{i:032x}" for i in range(3)]  # listed, never in the pool
    write_uid_file(tmp_path / "2017.npy", sorted(uids + strangers))
    assert main(["-q", "uids", "import", str(out), f"2017={tmp_path / '2017.npy'}", "--out", str(tmp_path / "sel"),
                 "--executor", "inline"]) == 0
    summary = download(config(tmp_path / "sel"), InlineExecutor())
    got = summary.survival["official"]["2017"]
    ok = scan_manifest(tmp_path / "sel").filter(pl.col("status") == "success").select(pl.len()).collect().item()
    assert got == {"listed": len(uids) + 3, "in_pool": len(uids), "downloaded": ok, "lost": len(uids) + 3 - ok,
                   "kept": ok / (len(uids) + 3)}
    assert 0 < ok < len(uids) and "official list" in format_summary(summary)
