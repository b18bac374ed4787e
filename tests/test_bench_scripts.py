"""The benchmark scripts run end to end at a tiny size (their figures are for humans, not asserts)."""

from __future__ import annotations

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
def test_bench_download_runs(tmp_path):
    res = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_download.py"), "--pairs-per-step", "30", "--repeats", "1",
         "--samples-per-shard", "50"],
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
