"""`tic uids import` as a join by uid range: the same bytes as the one-process join it replaces, at
any number of ranges; refusals of uids listed twice found wherever they fall; no row in the driver."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import ticdata.uidimport_tasks as T
import ticdata.uidlists as uidlists
from ticdata.cli import main
from ticdata.errors import UserError
from ticdata.benchmarks import benchmark_from_manifest
from ticdata.layout import CuratedFolder
from ticdata.manifest import count_buckets
from ticdata.uidlists import UID_DTYPE, uids_to_array, write_uid_file
from ticdata.uidsplits import import_uids

from driver_guard import ProcessExecutor, refuse_row_readers


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    from ticdata.synth.pool import make_pool

    root = tmp_path_factory.mktemp("import")
    make_pool(root / "pool", rows=5000, seed=9, rows_per_file=1250)
    assert main(["-q", "curate", str(root / "pool"), "--out", str(root / "cur"), "--executor", "inline", "--partitions", "3"]) == 0
    return root / "cur"


def one_process_import(folder, lists: dict[str, list[str]]) -> dict[str, bytes]:
    """The definition (the import before the range join): every manifest file joined on uid with the
    whole table of listed uids, sorted by uid, split reset to train, written with zstd and statistics."""
    table = pl.DataFrame([{"uid": u, "bucket": b} for b, us in lists.items() for u in us], schema={"uid": pl.String, "bucket": pl.String})
    out = {}
    for part in CuratedFolder(folder).manifest_files():
        sel = pl.read_parquet(part).join(table, on="uid", how="inner").sort("uid")
        if "split" in sel.columns:
            sel = sel.with_columns([pl.lit("train").alias("split")] + [pl.lit(None, t).alias(c) for c, t in T.EVAL_MARKS.items() if c in sel.columns])
        if sel.height:
            path = folder.parent / "ref.parquet"
            sel.write_parquet(path, compression="zstd", statistics=True)
            out[f"{part.parent.name}/{part.name}"] = path.read_bytes()
    return out


def make_lists(curated, tmp_path, seed: int, unsorted: str | None = None) -> tuple[dict, list[str]]:
    rng = np.random.default_rng(seed)
    uids = pl.read_parquet(CuratedFolder(curated).manifest_dir / "**" / "*.parquet")["uid"].to_list()
    picked = list(rng.permutation(uids)[:1800])
    strangers = ["%016x%016x" % (int(a), int(b)) for a, b in rng.integers(0, 2**63, (50, 2))]  # listed, absent from the pool
    lists = {"2017": picked[:600] + strangers[:25], "2019": picked[600:1500], "late": picked[1500:] + strangers[25:]}
    specs = []
    for name, us in lists.items():
        path = tmp_path / f"{name}.npy"
        if name == unsorted:
            np.save(path, rng.permutation(uids_to_array(us)), allow_pickle=False)
        else:
            write_uid_file(path, us)
        specs.append(f"{name}={path}")
    return lists, specs


@pytest.mark.parametrize("range_uids", [50, 10**6])
def test_range_join_gives_the_one_process_bytes(curated, tmp_path, monkeypatch, range_uids):
    monkeypatch.setattr(T, "RANGE_UIDS", range_uids)  # 50: about 60 ranges; 10**6: one
    lists, specs = make_lists(curated, tmp_path, seed=range_uids, unsorted="2019")
    doc = import_uids(curated, specs, tmp_path / "sel")
    want = one_process_import(curated, lists)
    got = {f"{p.parent.name}/{p.name}": p.read_bytes() for p in CuratedFolder(tmp_path / "sel").manifest_files()}
    assert got.keys() == want.keys() and got == want
    info = doc["inputs"]["uid_lists"]
    assert {n: v["uids"] for n, v in info.items()} == {"2017": 625, "2019": 900, "late": 325}
    assert {n: v["matched"] for n, v in info.items()} == {"2017": 600, "2019": 900, "late": 300}
    led = doc["ledger"]
    assert doc["rows"] == led["kept"] == 1800 and led["dropped"] == {"not_in_uid_lists": 3710 - 1800} and led["rows_in"] == 3710
    assert not (tmp_path / "sel" / ".tic" / "uids-import").exists()
    bench = benchmark_from_manifest(doc, CuratedFolder(tmp_path / "sel").manifest_json)
    assert (doc["buckets"], doc["outside_buckets"]) == count_buckets(tmp_path / "sel", bench)  # the tasks' counts = a scan


def test_uids_listed_twice_are_refused_in_any_range(curated, tmp_path, monkeypatch):
    monkeypatch.setattr(T, "RANGE_UIDS", 7)
    u = ["%032x" % (i * 2**100 + 5) for i in range(1, 40)]
    write_uid_file(tmp_path / "a.npy", u[:20])
    write_uid_file(tmp_path / "b.npy", u[19:])  # u[19] in both, deep inside the uid space
    with pytest.raises(UserError, match=f"uid {u[19]} is in more than one uid file \\(a, b\\)"):
        import_uids(curated, [str(tmp_path / "a.npy"), str(tmp_path / "b.npy")], tmp_path / "sel")
    arr = uids_to_array(u[:10])
    np.save(tmp_path / "c.npy", np.concatenate([arr, arr[4:5]]), allow_pickle=False)  # sorted but for the repeat at the end
    with pytest.raises(UserError, match=f"uid {u[4]} is listed more than once in the uid file of bucket c"):
        import_uids(curated, [str(tmp_path / "c.npy")], tmp_path / "sel2")
    np.save(tmp_path / "d.npy", np.concatenate([arr[3:4], arr]), allow_pickle=False)
    with pytest.raises(UserError, match=f"uid {u[3]} is listed more than once"):
        import_uids(curated, [str(tmp_path / "d.npy")], tmp_path / "sel3")


def test_order_check_crosses_blocks(monkeypatch):
    monkeypatch.setattr(uidlists, "ORDER_BLOCK", 3)
    arr = uids_to_array(["%032x" % i for i in range(1, 12)])
    assert uidlists.out_of_order(arr) is None
    for i in range(1, 11):
        swapped = arr.copy()
        swapped[[i - 1, i]] = swapped[[i, i - 1]]
        assert uidlists.out_of_order(swapped) == (i, False)
        repeated = arr.copy()
        repeated[i] = repeated[i - 1]
        assert uidlists.out_of_order(repeated) == (i, True)


def test_the_driver_reads_no_row(curated, tmp_path, monkeypatch):
    """Tasks in spawned processes, every row reader refused in the driver: same bytes."""
    lists, specs = make_lists(curated, tmp_path, seed=3)
    ex = ProcessExecutor()
    refuse_row_readers(monkeypatch)
    try:
        import_uids(curated, specs, tmp_path / "sel", executor=ex)
    finally:
        ex.pool.shutdown()
    monkeypatch.undo()
    got = {f"{p.parent.name}/{p.name}": p.read_bytes() for p in CuratedFolder(tmp_path / "sel").manifest_files()}
    assert got == one_process_import(curated, lists)


def test_rerun_is_done_and_another_plan_needs_overwrite(curated, tmp_path):
    lists, specs = make_lists(curated, tmp_path, seed=5)
    out = tmp_path / "sel"
    assert main(["-q", "uids", "import", str(curated), *specs, "--out", str(out), "--executor", "inline"]) == 0
    first = {p.name: p.read_bytes() for p in CuratedFolder(out).manifest_files()}
    assert main(["-q", "uids", "import", str(curated), *specs, "--out", str(out), "--executor", "inline"]) == 0  # nothing to do
    assert main(["-q", "uids", "import", str(curated), specs[0], "--out", str(out), "--executor", "inline"]) == 2
    assert main(["-q", "uids", "import", str(curated), specs[0], "--out", str(out), "--executor", "inline", "--overwrite"]) == 0
    assert main(["-q", "uids", "import", str(curated), *specs, "--out", str(out), "--executor", "inline", "--overwrite"]) == 0
    assert {p.name: p.read_bytes() for p in CuratedFolder(out).manifest_files()} == first
    assert np.load(tmp_path / "2017.npy").dtype == UID_DTYPE


def test_dating_of_lists_reads_no_row_in_the_driver(curated, tmp_path, monkeypatch):
    """`reshard --dating`: the import's join, then a count per manifest file; the figures equal a
    one-process count (listed, found, dated outside the list's year) and a rerun returns them."""
    from ticdata.official_dating import dating_of_lists

    lists, specs = make_lists(curated, tmp_path, seed=4)
    man = pl.read_parquet(CuratedFolder(curated).manifest_dir / "**" / "*.parquet", hive_partitioning=True)
    year = dict(zip(man["uid"].to_list(), man["year"].to_list()))
    ex = ProcessExecutor()
    with monkeypatch.context() as m:
        refuse_row_readers(m)
        try:
            got = dating_of_lists(curated, specs, tmp_path / "out", ex)
        finally:
            ex.pool.shutdown()
    for name, us in lists.items():
        found = [u for u in us if u in year]
        elsewhere = sum(1 for u in found if name.isdigit() and year[u] != int(name)) if name.isdigit() else None
        assert got[name]["listed"] == len(us) and got[name]["dated_by_tic"] == len(found)
        if elsewhere is not None:
            assert got[name]["dated_elsewhere"] == elsewhere
    assert dating_of_lists(curated, specs, tmp_path / "out") == got  # done: the stored figures
