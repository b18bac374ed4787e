"""`tic curate`'s driver reads no row: it plans from footers, the map and reduce tasks read and write
every row, and the bucket table comes from the tasks' counts; so its memory follows files and
partitions, never the pool."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from driver_guard import ProcessExecutor, refuse_row_readers
from ticdata.curate import CurateConfig, curate
from ticdata.executor import InlineExecutor


def test_the_driver_reads_no_row(tmp_path, monkeypatch):
    tic = str(Path(sys.executable).parent / "tic")
    subprocess.run([tic, "-q", "synth", "pool", "--rows", "30000", "--rows-per-file", "10000", "--out", str(tmp_path / "pool")],
                   check=True)
    config = CurateConfig(inputs=(str(tmp_path / "pool"),), out=tmp_path / "inline", progress=False, partitions=3)
    curate(config, InlineExecutor())
    with monkeypatch.context() as m:
        refuse_row_readers(m)
        curate(CurateConfig(inputs=config.inputs, out=tmp_path / "guarded", progress=False, partitions=3), ProcessExecutor())
    mine = sorted(p.relative_to(tmp_path / "guarded") for p in (tmp_path / "guarded" / "manifest").rglob("*.parquet"))
    assert mine and mine == sorted(p.relative_to(tmp_path / "inline") for p in (tmp_path / "inline" / "manifest").rglob("*.parquet"))
    assert all((tmp_path / "guarded" / p).read_bytes() == (tmp_path / "inline" / p).read_bytes() for p in mine)
