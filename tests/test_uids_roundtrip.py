"""Official splits both ways (issue 13): `tic uids import` of any set of uid lists, then `tic uids
export`, gives back the very bytes of the lists (the uids the folder holds), and the imported
folder keeps its buckets through `tic evalsets`."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticdata.cli import main
from ticdata.uidlists import write_uid_file

from worldfolder import copy_small_run

NAMES = ["2014-2016", "2017", "2018-01", "x", "b.c", "v+1"]


@pytest.fixture(scope="module")
def curated(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("pool")
    assert main(["-q", "synth", "pool", "--rows", "600", "--out", str(root / "pool"), "--seed", "3"]) == 0
    assert main(["-q", "curate", str(root / "pool"), "--out", str(root / "cur"), "--executor", "inline"]) == 0
    uids = pl.read_parquet(root / "cur" / "manifest" / "*" / "*.parquet")["uid"].to_list()
    return root / "cur", sorted(uids)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_import_then_export_gives_back_the_same_bytes(curated, data, capsys):
    cur, uids = curated
    names = data.draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    # every uid goes to one bucket or to none; a bucket may also list uids the folder lacks
    where = data.draw(st.lists(st.integers(-1, len(names) - 1), min_size=len(uids), max_size=len(uids)))
    strangers = data.draw(st.lists(st.text("0123456789abcdef", min_size=32, max_size=32), max_size=5, unique=True))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lists = {n: sorted(u for u, w in zip(uids, where) if w == i) for i, n in enumerate(names)}
        specs = []
        for n, members in lists.items():
            write_uid_file(tmp / "lists" / f"{n}.npy", members)
            specs.append(f"{n}={tmp / 'lists' / f'{n}.npy'}")
        with_strangers = tmp / "strangers.npy"
        write_uid_file(with_strangers, sorted(set(lists[names[0]]) | {s for s in strangers if s not in uids}))
        specs[0] = f"{names[0]}={with_strangers}"
        assert main(["-q", "uids", "import", str(cur), *specs, "--out", str(tmp / "imp")]) == 0
        assert main(["-q", "uids", "export", str(tmp / "imp"), "--out", str(tmp / "back")]) == 0
        capsys.readouterr()
        for n in names:
            assert (tmp / "back" / f"{n}.npy").read_bytes() == (tmp / "lists" / f"{n}.npy").read_bytes(), n
        doc = json.loads((tmp / "imp" / "manifest.json").read_text())
        assert {n: b["rows"] for n, b in doc["buckets"].items()} == {n: len(v) for n, v in lists.items()}
        assert all(b["splits"] == ({"train": len(lists[n])} if lists[n] else {}) for n, b in doc["buckets"].items())
        listed = doc["inputs"]["uid_lists"][names[0]]
        assert listed["missing"] == len({s for s in strangers if s not in uids})


@pytest.mark.slow
def test_an_imported_folder_keeps_its_buckets_through_evalsets(small_run, tmp_path, capsys):
    cur, _ = copy_small_run(small_run, tmp_path)
    assert main(["-q", "uids", "export", str(cur), "--out", str(tmp_path / "lists"), "--split", "all"]) == 0
    files = sorted((tmp_path / "lists").glob("*.npy"))
    imp = tmp_path / "imp"
    assert main(["-q", "uids", "import", str(cur), *map(str, files), "--out", str(imp)]) == 0
    shutil.copytree(cur / "shards", imp / "shards")
    assert main(["-q", "evalsets", str(imp), "--executor", "inline", "--retrieval", "2", "--per-class", "1"]) == 0
    assert main(["-q", "uids", "export", str(imp), "--out", str(tmp_path / "back"), "--split", "all"]) == 0
    capsys.readouterr()
    for f in files:
        assert (tmp_path / "back" / f.name).read_bytes() == f.read_bytes()
    doc = json.loads((imp / "manifest.json").read_text())
    for f in files:
        b = doc["buckets"][f.stem]
        assert b["rows"] == len(np.load(f)) == sum(b["splits"].values()) and b["splits"]["retrieval"] == 2


@pytest.mark.slow
def test_official_lists_dated_elsewhere_are_counted_and_audited(small_run, tmp_path, capsys):
    """Lists named by year hold some rows tic dates in another year: the import counts them (equal to
    an independent count over the source manifest), and tic audit shows the figure."""
    cur, _ = small_run
    man = pl.read_parquet(cur / "manifest" / "*" / "*.parquet", hive_partitioning=True).select("uid", "year")
    y2019 = sorted(man.filter(pl.col("year") == 2019)["uid"].to_list())
    y2020 = sorted(man.filter(pl.col("year") == 2020)["uid"].to_list())
    lists = {"2019": sorted(y2019[:20] + y2020[:7]), "2020": y2020[7:]}
    for name, members in lists.items():
        write_uid_file(tmp_path / f"{name}.npy", members)
    imp = tmp_path / "imp"
    assert main(["-q", "uids", "import", str(cur), str(tmp_path / "2019.npy"), str(tmp_path / "2020.npy"), "--out", str(imp)]) == 0
    doc = json.loads((imp / "manifest.json").read_text())
    years = dict(zip(man["uid"], man["year"]))
    for name, members in lists.items():
        independent = sum(1 for u in members if years[u] != int(name))
        assert doc["inputs"]["uid_lists"][name]["dated_elsewhere"] == independent
    assert doc["inputs"]["uid_lists"]["2019"]["dated_elsewhere"] == 7
    assert main(["-q", "audit", str(imp), "--out", str(tmp_path / "audit"), "--executor", "inline"]) == 0
    audit = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert audit["official"]["uid_lists"]["2019"]["dated_elsewhere"] == 7
    assert "## Official lists against tic's dating" in (tmp_path / "audit" / "audit.md").read_text()
    capsys.readouterr()


@pytest.mark.slow
def test_one_command_regenerates_official_buckets_and_compares_the_dating(small_run, tmp_path, capsys):
    """`tic reshard SHARDS --uids LISTS --dating CUR`: the listed samples per bucket (listed / found /
    missing) and, per list, how many listed uids tic dates elsewhere, equal to an independent count."""
    cur, _ = small_run
    man = pl.read_parquet(cur / "manifest" / "*" / "*.parquet", hive_partitioning=True).select("uid", "year")
    y2019 = sorted(man.filter(pl.col("year") == 2019)["uid"].to_list())
    y2020 = sorted(man.filter(pl.col("year") == 2020)["uid"].to_list())
    stranger = "f" * 32
    lists = {"2019": sorted(y2019[:20] + y2020[:7] + [stranger]), "2020": y2020[7:]}
    for name, members in lists.items():
        write_uid_file(tmp_path / f"{name}.npy", members)
    out = tmp_path / "official"
    code = main(["-q", "reshard", str(cur / "shards"), "--uids", str(tmp_path / "2019.npy"), str(tmp_path / "2020.npy"),
                 "--dating", str(cur), "--out", str(out), "--executor", "inline"])
    printed = capsys.readouterr().out
    assert code == 0 and "dated elsewhere" in printed
    dating = json.loads((out / "dating.json").read_text())["lists"]
    reshard = json.loads((out / "reshard.json").read_text())["buckets"]
    years = dict(zip(man["uid"], man["year"]))
    for name, members in lists.items():
        dated = [u for u in members if u in years]
        assert dating[name]["listed"] == len(members) and dating[name]["dated_by_tic"] == len(dated)
        assert dating[name]["dated_elsewhere"] == sum(1 for u in dated if years[u] != int(name))
    assert dating["2019"]["dated_elsewhere"] == 7 and reshard["2019"]["missing"] == 1  # the stranger
    one_line = [x for x in printed.splitlines() if x.startswith("2019 ")][-1]
    assert "7 (25.9%)" in one_line
