"""`tic evalsets` at any pool size: the driver reads no manifest row (tasks in other processes, row
readers refused in the driver), and however the work is cut (uid ranges, fetch rounds, a run killed
while marking the manifest) the eval sets and the marked manifest have the same bytes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

import ticdata.evalsets_pick as pick
import ticdata.evalsets_stages as stages
from driver_guard import ProcessExecutor, refuse_row_readers
from test_evalsets import _downloaded
from ticdata.evalsets import EvalConfig, build_evalsets
from ticdata.executor import InlineExecutor
from ticdata.serve import ImageServer

pytestmark = pytest.mark.slow
CFG = dict(retrieval=10, per_class=3, samples_per_shard=16, train_shards=False, progress=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A downloaded folder with planted copies (same image, near duplicate, same pair) and 404s."""
    root = tmp_path_factory.mktemp("scale")
    with ImageServer() as s:
        return _downloaded(root, s, plant=True, failing=3)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def _outputs(cur: Path) -> dict:
    """Every file the run leaves in the manifest and eval folders, by bytes, and evalsets.json
    without its timing and the hosts its tasks ran on."""
    out = {str(f.relative_to(cur)): f.read_bytes() for d in ("manifest", "eval") for f in sorted((cur / d).rglob("*"))
           if f.is_file() and f.name != "evalsets.json"}
    doc = json.loads((cur / "eval" / "evalsets.json").read_text())
    doc.pop("seconds")
    doc["written"] = {k: {n: v for n, v in s.items() if not n.startswith("_")} for k, s in doc["written"].items()}
    out["evalsets.json"] = doc
    return out


def test_the_driver_reads_no_manifest_row(folder, tmp_path, monkeypatch):
    """By construction: with every Parquet/IPC row reader refused in the driver, the eval sets and
    the marked manifest (a first run, then --overwrite with another seed: the old marks are reset
    by tasks too) are those of a run in one process. The driver reads footers and JSON only."""
    ref, cur = _copy(folder, tmp_path / "ref"), _copy(folder, tmp_path / "cur")
    build_evalsets(EvalConfig(dir=ref, **CFG), InlineExecutor())
    first = _outputs(ref)
    build_evalsets(EvalConfig(dir=ref, seed=1, overwrite=True, **CFG), InlineExecutor())
    second = _outputs(ref)
    monkeypatch.setattr(stages, "RANGE_ROWS", 40)  # several uid ranges: the join and the repeats cut in pieces
    ex = ProcessExecutor()
    refuse_row_readers(monkeypatch)
    try:
        build_evalsets(EvalConfig(dir=cur, **CFG), ex)
        got_first = _outputs(cur)  # plain file reads and JSON
        build_evalsets(EvalConfig(dir=cur, seed=1, overwrite=True, **CFG), ex)
    finally:
        ex.pool.shutdown()
    monkeypatch.undo()
    assert got_first == first
    assert _outputs(cur) == second
    assert second != first


def test_any_cut_of_the_work_gives_the_same_bytes(folder, tmp_path, monkeypatch):
    """Hashes of uids no manifest row holds (orphans), several uid ranges, counts summed by several
    tasks, and fetch caps far too low (every group fetched in several rounds): the same eval sets and
    manifest as one range, one sum and one round."""
    base = _copy(folder, tmp_path / "base")
    part = sorted((base / "manifest").rglob("*.parquet"))[-1]
    df = pl.read_parquet(part)
    gone = df.filter(pl.col("status") == "success").sort("uid")["uid"].to_list()[::9]
    df.filter(~pl.col("uid").is_in(gone)).write_parquet(part, compression="zstd", statistics=True)
    one, cut = _copy(base, tmp_path / "one"), _copy(base, tmp_path / "cut")
    want = build_evalsets(EvalConfig(dir=one, **CFG), InlineExecutor())
    assert want["buckets"]["2019"]["images"] - want["candidates"]["2019"]["images"] == len(gone)  # orphans: images, not candidates

    rounds = []
    real_cap, real_round = pick.cap_for, pick.Fetcher._round

    def low_cap(need, total):
        return min(real_cap(need, total), pick.ALL // max(total, 1) * 2)  # about two rows: a group needs rounds

    def counted(self, kind, caps, exclude):
        rounds.append((self.bucket, kind))
        return real_round(self, kind, caps, exclude)

    monkeypatch.setattr(stages, "RANGE_ROWS", 37)
    monkeypatch.setattr(stages, "COUNT_GROUP", 1)  # each file's counts summed by its own task
    monkeypatch.setattr(pick, "cap_for", low_cap)
    monkeypatch.setattr(pick.Fetcher, "_round", counted)
    got = build_evalsets(EvalConfig(dir=cut, **CFG), InlineExecutor())
    assert _outputs(cut) == _outputs(one)
    assert got["candidates"] == want["candidates"]
    assert rounds.count(("2019", "retrieval")) > 2 and rounds.count(("2019", "classification")) > 2


def test_a_run_killed_while_marking_the_manifest_resumes_to_the_same_bytes(folder, tmp_path, monkeypatch):
    """The manifest is marked file by file: a run killed after the first file resumes with the rest."""
    clean, cur = _copy(folder, tmp_path / "clean"), _copy(folder, tmp_path / "cur")
    build_evalsets(EvalConfig(dir=clean, **CFG), InlineExecutor())
    real, calls = stages.mark_file, []

    def dies_on_second(*args):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(stages, "mark_file", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        build_evalsets(EvalConfig(dir=cur, **CFG), InlineExecutor())
    monkeypatch.setattr(stages, "mark_file", real)
    build_evalsets(EvalConfig(dir=cur, **CFG), InlineExecutor())
    assert _outputs(cur) == _outputs(clean)
    assert len(calls) == 2
