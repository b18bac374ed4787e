"""reshard's uid -> bucket lookup built by tasks, by uid range: the same sorted arrays (and content
hash) as the one-process build it replaces, the same answers, a uid in two buckets refused in any
range, and no manifest row read in the driver."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import polars as pl
import pytest

import ticdata.reshard_lookup as RL
from ticdata.cli import main
from ticdata.errors import UserError
from ticdata.executor import InlineExecutor, run_stage
from ticdata.layout import CuratedFolder
from ticdata.reshard_select import selection_from_manifest, selection_from_uid_files
from ticdata.uidlists import uids_to_array, write_uid_file

from driver_guard import ProcessExecutor, refuse_row_readers


def reference(lists: dict[str, list[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """The one-process build: every (uid, bucket) sorted by (hi, lo, bucket), duplicates dropped,
    and its hash as reshard.json recorded it (names, then hi, lo, bucket bytes)."""
    names = list(lists)
    rows = sorted({(int(u[:16], 16), int(u[16:], 16), names.index(b)) for b, us in lists.items() for u in us})
    hi, lo, b = (np.array([r[i] for r in rows], dtype=t) for i, t in enumerate(("<u8", "<u8", np.uint16)))
    h = hashlib.sha256(json.dumps(names).encode())
    for a in (hi, lo, b):
        h.update(np.ascontiguousarray(a).data)
    return hi, lo, b, h.hexdigest()


def build(selection, state, executor=None):
    ex = executor or InlineExecutor()
    return RL.build_lookup(selection, state, lambda name, tasks: run_stage(ex, name, tasks, state / "done", progress=False))


def random_uids(rng, n):
    pairs = rng.integers(0, 2**63, (n, 2), dtype=np.uint64)
    return ["%016x%016x" % (int(a) * 2 + int(b) % 2, int(b)) for a, b in pairs]


@pytest.mark.parametrize("range_uids", [3, 10**6])
def test_uid_file_lookup_equals_the_one_process_build(tmp_path, monkeypatch, range_uids):
    monkeypatch.setattr(RL, "RANGE_UIDS", range_uids)
    rng = np.random.default_rng(range_uids)
    pool = random_uids(rng, 400) + ["%016x%016x" % (5, i) for i in range(30)]  # shared high halves
    lists = {"a": pool[:150], "b": pool[150:300] + pool[150:160], "c": pool[300:]}  # b repeats ten uids
    specs = []
    for name, us in lists.items():
        path = tmp_path / f"{name}.npy"
        if name == "c":  # unsorted: sorted into the state
            np.save(path, rng.permutation(uids_to_array(us)), allow_pickle=False)
        else:
            write_uid_file(path, us)
        specs.append(f"{name}={path}")
    sel = selection_from_uid_files(specs)
    listed = build(sel, tmp_path / "state")
    hi, lo, b, sha = reference(lists)
    folder = tmp_path / "state" / "lookup"
    ranges = len(json.loads((folder / "ranges.json").read_text())["lower_bounds"])
    assert (ranges > 100) == (range_uids == 3)
    got = [np.concatenate([np.load(folder / f"range-{r:05d}-{n}.npy") for r in range(ranges)]) for n in ("hi", "lo", "bucket")]
    assert all(np.array_equal(x, y) for x, y in zip(got, (hi, lo, b)))
    assert RL.content_sha256(folder, sel.names) == sha
    assert listed == {"a": 150, "b": 150, "c": len(set(pool[300:]))}
    lookup = RL.Lookup.open(folder)
    queries = pool + random_uids(rng, 100)
    qh = np.array([int(u[:16], 16) for u in queries], dtype="<u8")
    ql = np.array([int(u[16:], 16) for u in queries], dtype="<u8")
    truth = {u: i for i, us in enumerate(lists.values()) for u in us}
    assert lookup.find_many(qh, ql).tolist() == [truth.get(u, -1) for u in queries]
    assert [lookup.find(int(h), int(l)) for h, l in zip(qh, ql)] == [truth.get(u, -1) for u in queries]


def test_a_uid_in_two_buckets_is_refused_in_whichever_range_it_falls(tmp_path, monkeypatch):
    monkeypatch.setattr(RL, "RANGE_UIDS", 2)
    u = ["%032x" % (i * 2**120 + 9) for i in range(1, 15)]
    write_uid_file(tmp_path / "a.npy", u[:9])
    write_uid_file(tmp_path / "b.npy", u[8:])
    with pytest.raises(UserError, match=f"uid {u[8]} is in buckets a and b"):
        build(selection_from_uid_files([str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]), tmp_path / "state")


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    from ticdata.synth.pool import make_pool

    root = tmp_path_factory.mktemp("lookup")
    make_pool(root / "pool", rows=4000, seed=11, rows_per_file=1000)
    assert main(["-q", "curate", str(root / "pool"), "--out", str(root / "cur"), "--executor", "inline", "--partitions", "3"]) == 0
    return root / "cur"


def test_manifest_lookup_with_rows_refused_in_the_driver(curated, tmp_path, monkeypatch):
    """Tasks in spawned processes, Parquet/IPC/npy row readers refused here: the lookup equals the
    one-process build from the manifest's train rows per bucket."""
    monkeypatch.setattr(RL, "RANGE_UIDS", 300)
    sel = selection_from_manifest(curated, "train")
    ex = ProcessExecutor()
    refuse_row_readers(monkeypatch)
    try:
        listed = build(sel, tmp_path / "state", ex)
        sha = RL.content_sha256(tmp_path / "state" / "lookup", sel.names)  # streams files, reads no row into memory
    finally:
        ex.pool.shutdown()
    monkeypatch.undo()
    man = pl.read_parquet(CuratedFolder(curated).manifest_dir / "**" / "*.parquet", hive_partitioning=True)
    lists = {n: man.filter((pl.col("year") == int(n) if n.isdigit() else pl.col("year").is_between(2014, 2016))
                           & (pl.col("split") == "train"))["uid"].to_list() for n in sel.names}
    assert sha == reference(lists)[3]
    assert listed == {n: len(us) for n, us in lists.items()}
