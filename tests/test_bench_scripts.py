"""The benchmark scripts run end to end at a tiny size (their figures are for humans, not asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_curate_runs(tmp_path):
    res = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_curate.py"), "--rows", "200000", "--repeats", "1", "--workdir", str(tmp_path),
         "--shape", "many-small,resighted", "--executor", "inline"],
        capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    rows = [line.split() for line in res.stdout.splitlines()]
    table = [r for r in rows if r and r[0] in ("many-small", "resighted") and len(r) == 13]
    assert [(r[0], r[1], r[4]) for r in table] == [("many-small", "inline", "50,000"), ("many-small", "inline", "200,000"),
                                                   ("resighted", "inline", "50,000"), ("resighted", "inline", "200,000")]
    assert all(float(r[7]) > 0 for r in table)  # a ratio per shape and size (DuckDB's kept rows equal tic's: asserted inside)
    assert [int(r[2]) for r in table] == [1, 2, 1, 1]  # many-small: 180k-row files
    # the time profile of each: driver phases and task-seconds per step, then rows per task-second
    profile = [r for r in rows if r and r[0] in ("many-small", "resighted") and "|" in r]
    assert len(profile) == 4 and all(int(r[-1].replace(",", "")) > 0 and int(r[-2].replace(",", "")) > 0 for r in profile)
    assert not list(tmp_path.iterdir())  # pools and outputs cleaned up


@pytest.mark.slow
def test_bench_curate_on_a_pool_made_elsewhere(tmp_path):
    """make_heldout_pool.py (DuckDB, not tic's generator) then bench_curate --pool: tic and DuckDB keep
    the same number of rows (asserted inside the script) and one ratio is printed."""
    pool = tmp_path / "heldout"
    made = subprocess.run([sys.executable, str(REPO / "scripts" / "make_heldout_pool.py"), "--rows", "30000", "--files", "3",
                           "--row-group", "4000", "--out", str(pool)], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    assert len(list(pool.glob("*.parquet"))) == 3
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_curate.py"), "--pool", str(pool), "--repeats", "1",
                          "--executor", "inline", "--workdir", str(tmp_path / "work")], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    table = [r.split() for r in res.stdout.splitlines() if r.startswith("heldout ")]
    assert table and table[0][4] == "30,000" and float(table[0][7]) > 0, res.stdout
    # every kind of planted bad row is counted by its reason
    doc_lines = subprocess.run([str(Path(sys.executable).with_name("tic")), "curate", str(pool), "--out", str(tmp_path / "cur"), "-q"],
                               capture_output=True, text=True, timeout=300).stdout
    for reason in ("missing_url", "missing_text", "bad_uid", "unknown_snapshot", "no_timestamp"):
        assert f"dropped {reason}" in doc_lines, doc_lines


@pytest.mark.slow
def test_bench_download_runs(tmp_path):
    res = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_download.py"), "--pairs-per-step", "30", "--repeats", "1",
         "--samples-per-shard", "50", "--no-warm"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "tic overhead" in res.stdout and "150 images" in res.stdout


@pytest.mark.slow
def test_bench_train_runs(tmp_path, world_folder):
    data = world_folder  # the session's shared world (read only)
    res = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_train.py"), "--data", str(data), "--samples", "384", "--batch-size", "32",
         "--repeats", "1", "--log-every", "2", "--workers", "1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "ratio tic/open_clip" in res.stdout and "GMACs forward per sample" in res.stdout


def test_the_scale_projection_is_the_measured_rates_times_the_rows():
    """bench_curate's projection to 12.7B rows, against hand arithmetic on one made-up Ray run."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_curate", REPO / "scripts" / "bench_curate.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    run = {"tic_process_gib": 0.9, "timing": {
        "task_s": {"map.read": 10.0, "map.recover": 20.0, "map.write": 10.0, "reduce.read": 5.0, "reduce.dedupe": 5.0, "reduce.write": 10.0},
        "rows": {"map": 4_000_000, "reduce": 3_600_000, "kept": 3_000_000},
        "shuffle_bytes": 3_600_000 * 250, "manifest_bytes": 3_000_000 * 100}}
    default, larger = bench.projection(run, rows=1_000_000_000)
    assert default["map_rate"] == 100_000 and default["reduce_rate"] == 180_000  # rows per task-second
    assert default["core_hours"] == pytest.approx(1e9 / 100_000 / 3600 + 0.9e9 / 180_000 / 3600)
    assert default["shuffle_tb"] == pytest.approx(0.9e9 * 250 / 1e12) and default["output_tb"] == pytest.approx(0.75e9 * 100 / 1e12)
    assert (default["maps"], default["partitions"], default["reads"]) == (1000, 900, 900_000)
    assert (larger["maps"], larger["partitions"]) == (250, 225) and larger["task_gib"] == pytest.approx(3.6)


@pytest.mark.slow
def test_bench_scale_evalsets_standin_resumes_after_hashing(tmp_path):
    """The stand-in hashes are what the hash stage writes: `tic evalsets` reruns no hash task and
    counts every bucketed row as an image, and the manifest it marks is a copy (CUR untouched)."""

    tic = str(Path(sys.executable).parent / "tic")
    subprocess.run([tic, "-q", "synth", "pool", "--rows", "20000", "--out", str(tmp_path / "pool")], check=True)
    cur, work = tmp_path / "cur", tmp_path / "work"
    subprocess.run([tic, "-q", "curate", str(tmp_path / "pool"), "--out", str(cur), "--executor", "inline"], check=True)
    before = {p: p.read_bytes() for p in sorted((cur / "manifest").rglob("*.parquet"))}
    made = json.loads(subprocess.run([sys.executable, str(REPO / "scripts" / "bench_scale_inputs.py"), "evalsets", str(cur), str(work),
                                      "--per-tar", "1000"], check=True, capture_output=True, text=True).stdout)
    res = subprocess.run([tic, "evalsets", str(work), "--no-train-shards", "--executor", "inline"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"hash: {made['tars']} of {made['tars']} tasks already complete" in res.stderr
    doc = json.loads((work / "eval" / "evalsets.json").read_text())
    assert doc["hash"]["tars"] == made["tars"] and doc["hash"]["samples"] == made["rows"]
    assert sum(b["images"] for b in doc["buckets"].values()) == made["rows"]
    assert {p: p.read_bytes() for p in sorted((cur / "manifest").rglob("*.parquet"))} == before


def test_bench_scale_reshard_sources_half_listed(tmp_path):
    """Reshard's stand-in sources hold the pool's bucketed uids and unknown ones, half each."""
    tic = str(Path(sys.executable).parent / "tic")
    subprocess.run([tic, "-q", "synth", "pool", "--rows", "20000", "--out", str(tmp_path / "pool")], check=True)
    cur = tmp_path / "cur"
    subprocess.run([tic, "-q", "curate", str(tmp_path / "pool"), "--out", str(cur), "--executor", "inline"], check=True)
    subprocess.run([sys.executable, str(REPO / "scripts" / "bench_scale_inputs.py"), "reshard", str(cur), str(tmp_path / "src"),
                    "--tars", "2", "--samples", "100"], check=True, capture_output=True)
    res = subprocess.run([tic, "-q", "reshard", str(tmp_path / "src"), "--manifest", str(cur), "--out", str(tmp_path / "out"),
                          "--executor", "inline"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    ledger = json.loads((tmp_path / "out" / "reshard.json").read_text())["ledger"]
    assert ledger["rows_in"] == 200 and ledger["selected"] == 100 and ledger["not_selected"] == 100
