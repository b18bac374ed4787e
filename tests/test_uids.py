"""uid lists in DataComp's format: export per bucket, import to restrict a manifest, round trips."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ticdata.cli import main
from ticdata.errors import UserError
from ticdata.manifest import scan_manifest
from ticdata.uidlists import UID_DTYPE, array_to_uids, read_uid_file, uids_to_array, write_uid_file
from ticdata.uidexport import export_uids
from ticdata.uidsplits import import_uids


def datacomp_array(uids: list[str]) -> np.ndarray:
    """DataComp's own conversion (dataset2metadata / resharder): int(uid[:16], 16), int(uid[16:], 16)."""
    return np.sort(np.array([(int(u[:16], 16), int(u[16:32], 16)) for u in uids], np.dtype("u8,u8")))


def test_format_matches_datacomp(tmp_path):
    rng = np.random.default_rng(0)
    uids = ["%032x" % int(x) for x in rng.integers(0, 2**63, 500)] + ["f" * 32, "0" * 32, "8000000000000000" + "0" * 16]
    arr = uids_to_array(uids)
    assert arr.dtype == UID_DTYPE
    assert np.array_equal(arr, datacomp_array(uids))
    assert sorted(array_to_uids(arr)) == sorted(set(uids))
    path = tmp_path / "b.npy"
    write_uid_file(path, uids)
    loaded = np.load(path, allow_pickle=False)
    assert np.array_equal(loaded, datacomp_array(uids))
    assert read_uid_file(path) == array_to_uids(datacomp_array(uids))


def test_bad_uid_files_are_refused(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.arange(3))
    with pytest.raises(UserError, match="u8,u8"):
        read_uid_file(p)
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="not a numpy uid file"):
        read_uid_file(obj)


@pytest.fixture()
def curated(tmp_path):
    from ticdata.synth.pool import make_pool

    make_pool(tmp_path / "pool", rows=5000, seed=1, rows_per_file=2500)
    assert main(["-q", "curate", str(tmp_path / "pool"), "--out", str(tmp_path / "cur"), "--executor", "inline"]) == 0
    return tmp_path / "cur"


def test_export_one_file_per_bucket(curated, tmp_path):
    written = export_uids(curated, tmp_path / "uids")
    df = scan_manifest(curated).collect()
    assert list(written) == ["2014-2016", "2017", "2018", "2019", "2020", "2021", "2022"]
    for name, years in [("2014-2016", [2014, 2015, 2016]), ("2019", [2019])]:
        want = df.filter(pl.col("year").is_in(years))["uid"].to_list()
        assert np.array_equal(np.load(tmp_path / "uids" / f"{name}.npy"), datacomp_array(want))
        assert written[name] == len(want)


def test_import_restricts_and_labels(curated, tmp_path):
    df = scan_manifest(curated).collect().sort("uid")
    a = df["uid"][:40].to_list()
    b = df["uid"][40:100].to_list()
    missing = ["%032x" % (2**127 + i) for i in range(5)]
    write_uid_file(tmp_path / "first.npy", a + missing)
    write_uid_file(tmp_path / "other.npy", b)
    code = main(["-q", "uids", "import", str(curated), str(tmp_path / "first.npy"), f"late={tmp_path / 'other.npy'}",
                 "--out", str(tmp_path / "sel")])
    assert code == 0
    sel = scan_manifest(tmp_path / "sel").collect()
    assert sel.height == 100
    assert dict(sel.group_by("bucket").len().iter_rows()) == {"first": 40, "late": 60}
    assert set(sel.filter(pl.col("bucket") == "first")["uid"]) == set(a)
    # rows keep their own timestamps
    joined = sel.join(df, on="uid", suffix="_src")
    assert (joined["ts"] == joined["ts_src"]).all() and (joined["year"] == joined["year_src"]).all()
    import json

    doc = json.loads((tmp_path / "sel" / "manifest.json").read_text())
    assert doc["inputs"]["uid_lists"]["first"] | {} == {**doc["inputs"]["uid_lists"]["first"], "uids": 45, "matched": 40, "missing": 5}
    assert doc["ledger"]["rows_in"] == df.height and doc["ledger"]["kept"] == 100
    assert doc["ledger"]["dropped"] == {"not_in_uid_lists": df.height - 100}


def test_a_uid_in_two_lists_is_refused(curated, tmp_path):
    uid = scan_manifest(curated).select("uid").head(1).collect().item()
    write_uid_file(tmp_path / "a.npy", [uid])
    write_uid_file(tmp_path / "b.npy", [uid])
    with pytest.raises(UserError, match="more than one uid file"):
        import_uids(curated, [str(tmp_path / "a.npy"), str(tmp_path / "b.npy")], tmp_path / "sel")


def test_a_uid_file_whose_header_does_not_tokenize_is_refused_by_name(tmp_path):
    """Found by the fuzz test: bits flipped inside the .npy header's dict made numpy's header parser
    raise tokenize.TokenError, which escaped as a traceback."""
    import numpy as np

    from ticdata.errors import UserError
    from ticdata.uidlists import read_uid_array

    path = tmp_path / "2017.npy"
    np.save(path, np.array([(1, 2), (3, 4)], dtype="u8,u8"))
    data = bytearray(path.read_bytes())
    data[data.index(b"}")] = ord("(")  # an unclosed bracket: the header no longer tokenizes
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="2017.npy: not a numpy uid file"):
        read_uid_array(path)
