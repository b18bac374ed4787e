"""`tic uids export` at scale: sorted runs merged by uid range give np.save's bytes of a global sort,
the driver reads no manifest row, and a run killed between stages resumes."""

from __future__ import annotations

import io
import numpy as np
import polars as pl
import pytest

import ticdata.uidexport as ux
from ticdata.benchmarks import benchmark_from_manifest
from ticdata.cli import main
from ticdata.executor import InlineExecutor
from ticdata.layout import CuratedFolder
from ticdata.manifest import load_manifest_json, scan_manifest
from ticdata.uidlists import UID_DTYPE, UidFileWriter, uids_to_array, write_uid_file

from driver_guard import ProcessExecutor, refuse_row_readers


def saved(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def random_uids(rng, n: int) -> list[str]:
    hi, lo = rng.integers(0, 2**63, n, dtype=np.uint64) * 2, rng.integers(0, 2**63, n, dtype=np.uint64)
    return ["%016x%016x" % (int(a) + int(b % 2), int(b)) for a, b in zip(hi, lo)]


@pytest.mark.parametrize("range_uids", [1, 7, 10_000])
def test_range_merge_equals_global_sort(tmp_path, monkeypatch, range_uids):
    """Runs with duplicates inside and across them, clustered high halves (many uids share f0) and the
    extremes of the uid space: the merge's file is byte for byte np.save of the sorted unique array."""
    monkeypatch.setattr(ux, "RANGE_UIDS", range_uids)
    rng = np.random.default_rng(range_uids)
    pool = random_uids(rng, 300) + ["0" * 32, "f" * 32, "8" + "0" * 31] + ["%016x%016x" % (7, i) for i in range(40)]
    runs, listed = [], []
    for k in range(6):
        members = list(rng.choice(pool, size=120)) + (["f" * 32] if k % 2 else [])
        listed += members
        path = tmp_path / f"run{k}.npy"
        write_uid_file(path, members)
        runs.append(str(path))
    empty = tmp_path / "empty.npy"
    write_uid_file(empty, [])
    total = sum(len(np.load(r)) for r in runs)
    stats = ux.merge_runs("b", runs + [str(empty)], str(tmp_path / "out.npy"), total)
    expected = uids_to_array(listed)
    assert stats["uids"] == len(expected) == len(set(listed))
    assert (tmp_path / "out.npy").read_bytes() == saved(expected)


def test_writer_moves_the_data_when_the_header_shrinks(tmp_path):
    """Room is left for the header of the largest possible count; a final header that is shorter
    (here forced by an absurd bound) moves the data down: still np.save's bytes."""
    arr = uids_to_array(random_uids(np.random.default_rng(3), 50))
    with UidFileWriter(tmp_path / "x.npy", 10**70) as w:
        assert w.offset > 128
        w.append(arr[:20])
        w.append(arr[20:])
    assert (tmp_path / "x.npy").read_bytes() == saved(arr)
    with pytest.raises(RuntimeError), UidFileWriter(tmp_path / "y.npy", 5) as w:
        w.append(arr[:5])
        raise RuntimeError("killed")
    assert not list(tmp_path.glob("*y.npy*"))  # nothing half-written is left under any name


def reference_export(folder, split="train") -> dict[str, bytes]:
    """The definition: every uid of the bucket's rows of `split`, globally sorted, unique, np.save."""
    doc = load_manifest_json(folder)
    bench = benchmark_from_manifest(doc, CuratedFolder(folder).manifest_json)
    df = scan_manifest(folder).filter(pl.col("split") == split).with_columns(b=bench.bucket_expr()).collect()
    return {name: saved(uids_to_array(df.filter(pl.col("b") == name)["uid"].to_list())) for name in doc["buckets"]}


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    from ticdata.synth.pool import make_pool

    root = tmp_path_factory.mktemp("export")
    make_pool(root / "pool", rows=6000, seed=4, rows_per_file=1500)
    assert main(["-q", "curate", str(root / "pool"), "--out", str(root / "cur"), "--executor", "inline", "--partitions", "5"]) == 0
    return root / "cur"


def test_export_equals_the_global_definition_with_small_ranges(curated, tmp_path, monkeypatch):
    monkeypatch.setattr(ux, "RANGE_UIDS", 97)  # every bucket merged in many ranges
    written = ux.export_uids(curated, tmp_path / "uids", executor=InlineExecutor(workers=2))
    expected = reference_export(curated)
    assert set(written) == set(expected)
    for name, data in expected.items():
        assert (tmp_path / "uids" / f"{name}.npy").read_bytes() == data, name
    assert sum(written.values()) == scan_manifest(curated).select(pl.len()).collect().item() - outside(curated)
    assert not (tmp_path / "uids" / ".tic" / "uids-export").exists()  # the runs went with the state


def outside(folder) -> int:
    return load_manifest_json(folder)["outside_buckets"]["rows"]


def test_the_driver_reads_no_manifest_row(curated, tmp_path, monkeypatch):
    """By construction: with every Parquet/IPC row reader of Polars and pyarrow refused in the driver,
    the export (tasks in other processes) still writes the same files. The driver reads footers and
    manifest.json only, so its memory is O(files + buckets) whatever the pool's size."""
    ex = ProcessExecutor()
    refuse_row_readers(monkeypatch)
    try:
        written = ux.export_uids(curated, tmp_path / "uids", executor=ex)
    finally:
        ex.pool.shutdown()
    monkeypatch.undo()
    for name, data in reference_export(curated).items():
        assert (tmp_path / "uids" / f"{name}.npy").read_bytes() == data
    assert written


def test_killed_between_stages_resumes(curated, tmp_path, monkeypatch):
    """A merge that dies leaves the runs and their markers; the rerun merges only, same bytes."""
    calls = {"runs": 0}
    real_runs, real_merge = ux.write_runs, ux.merge_runs

    def counting_runs(*a):
        calls["runs"] += 1
        return real_runs(*a)

    def dying_merge(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(ux, "write_runs", counting_runs)
    monkeypatch.setattr(ux, "merge_runs", dying_merge)
    with pytest.raises(KeyboardInterrupt):
        ux.export_uids(curated, tmp_path / "uids")
    first = calls["runs"]
    assert first == len(CuratedFolder(curated).manifest_files())
    monkeypatch.setattr(ux, "merge_runs", real_merge)
    ux.export_uids(curated, tmp_path / "uids")
    assert calls["runs"] == first  # no manifest file read again
    for name, data in reference_export(curated).items():
        assert (tmp_path / "uids" / f"{name}.npy").read_bytes() == data
    again = ux.export_uids(curated, tmp_path / "uids")  # done: nothing runs
    assert calls["runs"] == first and again


def test_other_split_into_the_same_folder_needs_overwrite(curated, tmp_path):
    out = tmp_path / "uids"
    assert main(["-q", "uids", "export", str(curated), "--out", str(out), "--executor", "inline"]) == 0
    assert main(["-q", "uids", "export", str(curated), "--out", str(out), "--split", "all", "--executor", "inline"]) == 2
    assert main(["-q", "uids", "export", str(curated), "--out", str(out), "--split", "all", "--executor", "inline", "--overwrite"]) == 0
    assert np.load(out / "2019.npy").dtype == UID_DTYPE
