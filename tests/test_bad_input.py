"""Bad input: one line naming the file/column and what to do, exit status 2, nothing written."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from ticdata.cli import main

GOOD = {"uid": ["0" * 32], "url": ["http://a/1.jpg"], "text": ["a cat"], "source": ["CC-MAIN-2019-51"]}


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    return code, err


def assert_one_line(err: str, *needles: str) -> None:
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("tic: error: ")
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def curate_args(inputs: list[Path], out: Path, *extra: str) -> list[str]:
    return ["-q", "curate", *map(str, inputs), "--out", str(out), "--executor", "inline", *extra]


def test_missing_path(tmp_path, capsys):
    code, err = run_cli(curate_args([tmp_path / "nope.parquet"], tmp_path / "out"), capsys)
    assert code == 2
    assert_one_line(err, "nope.parquet", "no such file")
    assert not (tmp_path / "out").exists()


def test_file_that_is_not_a_pool(tmp_path, capsys):
    junk = tmp_path / "notes.txt"
    junk.write_text("just some text\nwithout tabs\n")
    gz = tmp_path / "random.gz"
    gz.write_bytes(gzip.compress(b"hello world, not a warc"))
    for bad in (junk, gz):
        code, err = run_cli(curate_args([bad], tmp_path / "out"), capsys)
        assert code == 2
        assert_one_line(err, bad.name, "not a Parquet, WARC/WAT, YFCC or RedCaps file")
    assert not (tmp_path / "out").exists()


def test_corrupt_parquet(tmp_path, capsys):
    good = tmp_path / "good.parquet"
    pl.DataFrame(GOOD).write_parquet(good)
    bad = tmp_path / "cut.parquet"
    bad.write_bytes(good.read_bytes()[:40])
    code, err = run_cli(curate_args([bad], tmp_path / "out"), capsys)
    assert code == 2
    assert_one_line(err, "cut.parquet", "not a readable Parquet file")
    assert not (tmp_path / "out").exists()


def test_missing_required_column(tmp_path, capsys):
    p = tmp_path / "pool.parquet"
    pl.DataFrame({k: v for k, v in GOOD.items() if k != "text"}).write_parquet(p)
    code, err = run_cli(curate_args([p], tmp_path / "out"), capsys)
    assert code == 2
    assert_one_line(err, "pool.parquet", "'text'", "--column text=")
    assert not (tmp_path / "out").exists()


def test_renamed_column_is_used(tmp_path, capsys):
    p = tmp_path / "pool.parquet"
    pl.DataFrame({"uid": GOOD["uid"], "URL": GOOD["url"], "caption": GOOD["text"], "src": GOOD["source"]}).write_parquet(p)
    code = main(curate_args([p], tmp_path / "out", "--column", "url=URL", "--column", "text=caption", "--column", "source=src"))
    assert code == 0
    df = pl.read_parquet(tmp_path / "out" / "manifest")
    assert df["text"].to_list() == ["a cat"] and df["first_snapshot"].to_list() == ["CC-MAIN-2019-51"]


@pytest.mark.parametrize(
    "column,values,needle",
    [
        ("url", [17], "'url' (url) has type int64"),
        ("text", [[1, 2]], "'text' (text) has type"),
        ("crawl_time", [[1]], "'crawl_time' (crawl_time) has type"),
        ("uid", [3.5], "'uid' (uid) has type double"),
    ],
)
def test_column_of_the_wrong_type(tmp_path, capsys, column, values, needle):
    p = tmp_path / "pool.parquet"
    pl.DataFrame(GOOD | {column: values}).write_parquet(p)
    code, err = run_cli(curate_args([p], tmp_path / "out"), capsys)
    assert code == 2
    assert_one_line(err, "pool.parquet", needle)
    assert not (tmp_path / "out").exists()


def test_bad_good_mix_writes_nothing(tmp_path, capsys):
    """A bad file anywhere in the inputs stops the run before any output exists."""
    (tmp_path / "in").mkdir()
    pl.DataFrame(GOOD).write_parquet(tmp_path / "in" / "a.parquet")
    pl.DataFrame(GOOD | {"url": [1]}).write_parquet(tmp_path / "in" / "b.parquet")
    code, err = run_cli(curate_args([tmp_path / "in"], tmp_path / "out"), capsys)
    assert code == 2
    assert_one_line(err, "b.parquet", "'url'")
    assert not (tmp_path / "out").exists()


def test_unknown_benchmark_and_bad_collinfo(tmp_path, capsys):
    p = tmp_path / "pool.parquet"
    pl.DataFrame(GOOD).write_parquet(p)
    code, err = run_cli(curate_args([p], tmp_path / "out", "--benchmark", "tic-nope"), capsys)
    assert code == 2
    assert_one_line(err, "tic-nope", "tic-datacomp")
    ci = tmp_path / "collinfo.json"
    ci.write_text("{not json")
    code, err = run_cli(curate_args([p], tmp_path / "out", "--collinfo", str(ci)), capsys)
    assert code == 2
    assert_one_line(err, "collinfo.json", "not JSON")
    assert not (tmp_path / "out").exists()


def test_out_dir_of_another_curation_is_refused(tmp_path, capsys):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pl.DataFrame(GOOD).write_parquet(a)
    pl.DataFrame(GOOD | {"text": ["a dog"]}).write_parquet(b)
    assert main(curate_args([a], tmp_path / "out")) == 0
    before = (tmp_path / "out" / "manifest.json").read_bytes()
    code, err = run_cli(curate_args([b], tmp_path / "out"), capsys)
    assert code == 2
    assert_one_line(err, "--overwrite")
    assert (tmp_path / "out" / "manifest.json").read_bytes() == before
    assert main(curate_args([b], tmp_path / "out", "--overwrite")) == 0
    assert pl.read_parquet(tmp_path / "out" / "manifest")["text"].to_list() == ["a dog"]


def test_console_script_exit_status_and_no_traceback(tmp_path):
    """The installed `tic` command, as users run it."""
    tic = Path(sys.executable).with_name("tic")
    res = subprocess.run([str(tic), "curate", str(tmp_path / "missing"), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "Traceback" not in res.stderr
    assert "missing: no such file or directory" in res.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_a_file_that_breaks_mid_run_is_named(tmp_path):
    """A WARC whose first record is fine but a later one is cut short passes the up-front checks
    and fails inside a Ray task: the error still names the file, in one line, exit status 2."""
    from conftest import SHARED_DATA

    (tmp_path / "in").mkdir()
    warc = (SHARED_DATA / "commoncrawl" / "whirlwind.warc.gz").read_bytes()
    (tmp_path / "in" / "cut.warc.gz").write_bytes(warc[:10000])
    pl.DataFrame(GOOD).write_parquet(tmp_path / "in" / "ok.parquet")
    tic = Path(sys.executable).with_name("tic")
    res = subprocess.run([str(tic), "curate", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "-q"], capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    lines = [l for l in res.stderr.splitlines() if l.startswith("tic: error:")]
    assert len(lines) == 1 and lines[0].count("cut.warc.gz") == 1 and "truncated" in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "o" / "manifest.json").exists()
