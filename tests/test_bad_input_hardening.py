"""The hardening corpus (issue 12): hostile and broken inputs that used to end in a traceback, a hang,
a silent loss or a write outside the output folder. Each case: exit status 2 with one line naming
the file, or a counted drop with a balanced ledger; nothing written outside the output folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ticdata.cli import main
from ticdata.errors import UserError
from ticdata.tars import TarError, _header, _pax_record, iter_members


GOOD = {"url": ["http://a/1.jpg", "http://a/2.jpg"], "text": ["a cat on a mat", "a dog in a fog"],
        "source": ["crawl-data/CC-MAIN-2019-04/segments/1/wat/x.warc.wat.gz"] * 2}


def run(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def one_line(err: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tic: error: ") and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def curate(inputs, out, *extra) -> list[str]:
    return ["-q", "curate", *map(str, inputs), "--out", str(out), "--executor", "inline", *extra]


def ledger_balances(out: Path) -> dict:
    led = json.loads((out / "manifest.json").read_text())["ledger"]
    assert led["rows_in"] == led["kept"] + led["duplicates"] + sum(led["dropped"].values())
    return led


# ------------------------------------------------------------------------------ input files


def test_a_fifo_named_like_parquet_is_refused_not_waited_on(tmp_path, capsys):
    fifo = tmp_path / "x.parquet"
    os.mkfifo(fifo)
    code, err = run(curate([fifo], tmp_path / "out"), capsys)
    assert code == 2
    one_line(err, "x.parquet", "not a regular file")
    assert not (tmp_path / "out").exists()


def test_a_symlink_loop_is_named(tmp_path, capsys):
    (tmp_path / "a.parquet").symlink_to(tmp_path / "b.parquet")
    (tmp_path / "b.parquet").symlink_to(tmp_path / "a.parquet")
    code, err = run(curate([tmp_path / "a.parquet"], tmp_path / "out"), capsys)
    assert code == 2
    one_line(err, "a.parquet", "symlink loop")


def test_hidden_and_underscore_folders_are_skipped_at_any_depth(tmp_path, capsys):
    pool = tmp_path / "pool"
    for sub in ("", "deep/er"):
        (pool / sub).mkdir(parents=True, exist_ok=True)
    pl.DataFrame(GOOD).write_parquet(pool / "deep" / "er" / "ok.parquet")
    for hidden in (".cache/x", "_tmp", "deep/_spark/part"):  # junk a reader would choke on
        (pool / hidden).mkdir(parents=True)
        (pool / hidden / "junk.parquet").write_text("not parquet")
    code, err = run(curate([pool], tmp_path / "out"), capsys)
    assert code == 0, err
    assert ledger_balances(tmp_path / "out")["rows_in"] == 2


def test_an_unwritable_out_is_refused_before_any_work(tmp_path, capsys):
    pl.DataFrame(GOOD).write_parquet(tmp_path / "ok.parquet")
    (tmp_path / "afile").write_text("x")
    for out, why in ((tmp_path / "afile" / "out", "cannot write"), (Path("/proc/tic-test-out"), "cannot write")):
        code, err = run(["-q", "curate", str(tmp_path / "ok.parquet"), "--out", str(out), "--executor", "ray"], capsys)
        assert code == 2
        one_line(err, str(out), why)


def test_out_inside_an_input_folder_is_left_out_and_an_input_inside_out_is_refused(tmp_path, capsys):
    pool = tmp_path / "pool"
    pool.mkdir()
    pl.DataFrame(GOOD).write_parquet(pool / "ok.parquet")
    for _ in range(2):  # the rerun must not read the first run's manifest as input
        code, err = run(curate([pool], pool / "out"), capsys)
        assert code == 0, err
        assert ledger_balances(pool / "out")["rows_in"] == 2
    code, err = run(curate([pool / "ok.parquet"], tmp_path), capsys)
    assert code == 2
    one_line(err, "ok.parquet", "inside --out")


def test_carried_columns_in_tics_internal_namespace_are_renamed_not_clobbered(tmp_path, capsys):
    df = pl.DataFrame(GOOD | {"_order": [7, 8], "_row": ["x", "y"], "_reason": ["r1", "r2"], "_part": [1, 2]})
    df.write_parquet(tmp_path / "p.parquet")
    code, err = run(curate([tmp_path / "p.parquet"], tmp_path / "out"), capsys)
    assert code == 0, err
    man = pl.read_parquet(tmp_path / "out" / "manifest" / "*" / "*.parquet").sort("url")
    assert man["src__order"].to_list() == [7, 8] and man["src__reason"].to_list() == ["r1", "r2"]
    assert man["src__row"].to_list() == ["x", "y"] and man["src__part"].to_list() == [1, 2]
    assert ledger_balances(tmp_path / "out")["kept"] == 2


def _utf8_lie(path: Path) -> None:
    """A Parquet file whose string column holds bytes that are not UTF-8."""
    raw = pa.array([b"bad \xc3\x28 text", b"ok"], pa.binary())
    text = pa.Array.from_buffers(pa.string(), 2, raw.buffers())
    pq.write_table(pa.table({"url": GOOD["url"], "text": text, "source": GOOD["source"]}), path)


def test_damaged_parquet_data_is_one_line(tmp_path, capsys):
    _utf8_lie(tmp_path / "utf8.parquet")
    big = pl.DataFrame({"url": [f"http://a/{i}.jpg" for i in range(3000)], "text": [f"caption number {i}" for i in range(3000)],
                        "source": GOOD["source"][:1] * 3000})
    big.write_parquet(tmp_path / "good.parquet", compression="uncompressed")
    data = bytearray((tmp_path / "good.parquet").read_bytes())
    data[2000:2400] = bytes(b ^ 0xFF for b in data[2000:2400])  # a data page, not the footer
    (tmp_path / "page.parquet").write_bytes(bytes(data))
    for bad, needle in (("utf8.parquet", "UTF-8"), ("page.parquet", "cannot be read")):
        code, err = run(curate([tmp_path / bad], tmp_path / f"out-{bad}"), capsys)
        assert code == 2
        one_line(err, bad, needle)


def test_timestamps_beyond_any_calendar_are_a_counted_drop(tmp_path, capsys):
    crawl = pa.array([2**62, -(2**62), 1_600_000_000_000], pa.timestamp("ms"))
    pq.write_table(pa.table({"url": ["http://a/1.jpg", "http://a/2.jpg", "http://a/3.jpg"], "text": ["a b c", "d e f", "g h i"],
                             "crawl_time": crawl}), tmp_path / "ts.parquet")
    code, err = run(curate([tmp_path / "ts.parquet"], tmp_path / "out"), capsys)
    assert code == 0 and "panicked" not in err, err
    led = ledger_balances(tmp_path / "out")
    assert led["kept"] == 1 and led["dropped"]["no_timestamp"] == 2


def test_terminal_escapes_in_a_file_name_are_shown_escaped(tmp_path, capsys):
    evil = tmp_path / "x\x1b[31mred\x1b[0m.parquet"
    evil.write_text("not parquet at all")
    code, err = run(curate([evil], tmp_path / "out"), capsys)
    assert code == 2
    line = one_line(err, "\\x1b[31mred")
    assert "\x1b" not in line


def test_a_failed_run_leaves_nothing_that_forces_overwrite(tmp_path, capsys):
    """Bad data found inside a task; the user fixes the file; the same command then just works."""
    _utf8_lie(tmp_path / "p.parquet")
    code, err = run(curate([tmp_path / "p.parquet"], tmp_path / "out"), capsys)
    assert code == 2 and "UTF-8" in err
    assert (tmp_path / "out" / ".tic" / "curate").exists()  # its scratch state, nothing final
    pl.DataFrame(GOOD).write_parquet(tmp_path / "p.parquet")  # fixed (new size and mtime: another plan)
    code, err = run(curate([tmp_path / "p.parquet"], tmp_path / "out"), capsys)
    assert code == 0, err
    assert ledger_balances(tmp_path / "out")["kept"] == 2


# -------------------------------------------------------------------------------- tars (reshard)


def _b256(n: int) -> bytes:
    return bytes([0x80]) + n.to_bytes(11, "big")


@pytest.mark.parametrize("case", ["b256-2^62", "b256-2^88-1", "pax-1e18", "pax--5", "pax-abc"])
def test_forged_tar_sizes_are_tar_errors_not_allocations(tmp_path, case):
    if case.startswith("b256"):
        n = 2**62 if case == "b256-2^62" else 2**88 - 1
        blob = _header(b"a.json", _b256(n)) + bytes(512) + bytes(1024)
    else:
        value = {"pax-1e18": b"1000000000000000000", "pax--5": b"-5", "pax-abc": b"abc"}[case]
        rec = _pax_record("size", value)
        blob = (_header(b"././@PaxHeader", b"%011o\x00" % len(rec), b"x") + rec + bytes(-len(rec) % 512)
                + _header(b"a.json", b"%011o\x00" % 2) + b"{}" + bytes(510) + bytes(1024))
    tar = tmp_path / f"{case}.tar"
    tar.write_bytes(blob)
    with pytest.raises(TarError):
        list(iter_members(tar))


def test_reshard_names_the_forged_tar(tmp_path, capsys):
    tar = tmp_path / "pool" / "00000000.tar"
    tar.parent.mkdir()
    tar.write_bytes(_header(b"a.json", _b256(2**62)) + bytes(512) + bytes(1024))
    from ticdata.uidlists import write_uid_file

    write_uid_file(tmp_path / "b.npy", ["0" * 32])
    code, err = run(["-q", "reshard", str(tar.parent), "--uids", str(tmp_path / "b.npy"), "--out", str(tmp_path / "out"),
                     "--executor", "inline"], capsys)
    assert code == 2
    one_line(err, "00000000.tar")


# --------------------------------------------------------------------------------- uid lists


def test_a_uid_file_named_to_escape_is_refused(tmp_path, capsys):
    from ticdata.uidlists import write_uid_file

    pl.DataFrame(GOOD).write_parquet(tmp_path / "p.parquet")
    assert run(curate([tmp_path / "p.parquet"], tmp_path / "cur"), capsys)[0] == 0
    write_uid_file(tmp_path / "f.npy", ["0" * 32])
    code, err = run(["-q", "uids", "import", str(tmp_path / "cur"), f"../x={tmp_path / 'f.npy'}", "--out", str(tmp_path / "sel")], capsys)
    assert code == 2
    one_line(err, "'../x'", "cannot name a folder")
    assert not (tmp_path / "x.npy").exists() and not (tmp_path / "sel").exists()


def test_imported_lists_export_back_unchanged(tmp_path, capsys):
    """uids import then uids export gives back the listed uids found in the pool, per bucket
    (it wrote empty lists before the one bucket rule)."""
    rng = np.random.default_rng(1)
    urls = [f"http://a/{i}.jpg" for i in range(300)]
    pl.DataFrame({"url": urls, "text": [f"t {i} x" for i in range(300)], "source": GOOD["source"][:1] * 300}).write_parquet(tmp_path / "p.parquet")
    assert run(curate([tmp_path / "p.parquet"], tmp_path / "cur"), capsys)[0] == 0
    uids = pl.read_parquet(tmp_path / "cur" / "manifest" / "*" / "*.parquet")["uid"].to_list()
    from ticdata.uidlists import read_uid_file, write_uid_file

    pick = rng.permutation(len(uids))
    lists = {"early": sorted(uids[i] for i in pick[:100]), "late": sorted(uids[i] for i in pick[100:180])}
    for name, us in lists.items():
        write_uid_file(tmp_path / f"{name}.npy", us + ["f" * 32] * (name == "late"))  # one uid not in the pool
    assert run(["-q", "uids", "import", str(tmp_path / "cur"), str(tmp_path / "early.npy"), str(tmp_path / "late.npy"),
                "--out", str(tmp_path / "sel")], capsys)[0] == 0
    assert run(["-q", "uids", "export", str(tmp_path / "sel"), "--out", str(tmp_path / "back")], capsys)[0] == 0
    for name, us in lists.items():
        assert read_uid_file(tmp_path / "back" / f"{name}.npy") == us


# ------------------------------------------------------------------------------------- Ray


def test_ray_that_will_not_start_is_retried_once_then_one_line(monkeypatch):
    import ray

    from ticdata.executor import RayExecutor

    calls = []

    def fails(self, ray_mod, common):
        calls.append(1)
        raise RuntimeError("node timed out during startup\nmore detail")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setattr(RayExecutor, "_init", fails)
    with pytest.raises(UserError, match="Ray did not start \\(node timed out during startup\\)"):
        with RayExecutor():
            pass
    assert len(calls) == 2

    def fails_once(self, ray_mod, common):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("Failed to connect to GCS")

    monkeypatch.setattr(RayExecutor, "_init", fails_once)
    ex = RayExecutor()
    assert ex.__enter__() is ex and len(calls) == 4
    ex._owns_ray = False  # nothing was started: nothing to stop


# -------------------------------------------------------------------------------------- YFCC


def test_yfcc_webscope_23_columns_read_as_the_aws_25(tmp_path):
    from test_sources_yfcc import PHOTOS, _row, check, read_all

    from ticdata.sources import detect_kind, yfcc

    lines = ["\t".join(_row(*r)[c] for c in yfcc.WEBSCOPE_COLUMNS) for r in PHOTOS]
    path = tmp_path / "yfcc100m_dataset"
    path.write_text("\n".join(lines) + "\n")
    assert len(lines[0].split("\t")) == 23 and detect_kind(path) == "yfcc"
    check(*read_all(path))


def test_yfcc_bytes_that_are_not_utf8_are_replaced_not_fatal(tmp_path, capsys):
    from test_sources_yfcc import PHOTOS, _row

    from ticdata.sources import yfcc

    lines = ["\t".join(_row(*r)[c] for c in yfcc.FULL_COLUMNS[1:]) for r in PHOTOS]
    data = ("\n".join(f"{i}\t{line}" for i, line in enumerate(lines)) + "\n").encode()
    data = data.replace(b"Golden", b"Gol\xffden\xc3")  # a stray byte and a cut sequence in a title
    (tmp_path / "y.tsv").write_bytes(data)
    code, err = run(curate([tmp_path / "y.tsv"], tmp_path / "out", "--benchmark", "tic-yfcc"), capsys)
    assert code == 0, err
    led = ledger_balances(tmp_path / "out")
    man = pl.read_parquet(tmp_path / "out" / "manifest" / "*" / "*.parquet")
    assert led["rows_in"] == len(PHOTOS) and man.filter(pl.col("text").str.contains("Gol\ufffdden")).height == 1


# ----------------------------------------------------------------------------------- RedCaps


def test_redcaps_deep_json_is_one_line_and_removed_captions_are_counted_drops(tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text('{"annotations": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, err = run(curate([deep], tmp_path / "o1", "--benchmark", "tic-redcaps"), capsys)
    assert code == 2
    one_line(err, "deep.json", "nested too deep")
    anns = [{"image_id": f"i{k}", "url": f"https://i.redd.it/{k}.jpg", "created_utc": 1546300800 + k,
             "caption": cap, "raw_caption": "the raw text", "subreddit": "pics"}
            for k, cap in enumerate(["a kept caption", "", None])]
    (tmp_path / "pics_2019.json").write_text(json.dumps({"info": {}, "annotations": anns}))
    code, err = run(curate([tmp_path / "pics_2019.json"], tmp_path / "o2", "--benchmark", "tic-redcaps"), capsys)
    assert code == 0, err
    led = ledger_balances(tmp_path / "o2")
    assert led["kept"] == 1 and sum(led["dropped"].values()) == 2
    assert pl.read_parquet(tmp_path / "o2" / "manifest" / "*" / "*.parquet")["text"].to_list() == ["a kept caption"]


def test_member_names_with_terminal_escapes_are_counted_never_copied(tmp_path):
    """A sample whose member extension carries control characters is malformed (counted, named in
    reshard.json's examples, escaped), and no output member name holds such a character."""
    from ticdata.executor import InlineExecutor
    from ticdata.reshard import reshard
    from ticdata.tars import TarWriter
    from ticdata.uidlists import write_uid_file

    uids = ["%032x" % k for k in (1, 2)]
    (tmp_path / "pool").mkdir()
    with open(tmp_path / "pool" / "00000000.tar", "wb") as fh:
        w = TarWriter(fh)
        for uid, ext in ((uids[0], "jpg"), (uids[1], "jpg\x1b[2J")):
            w.add(f"k{uid}.{ext}", b"\xff\xd8 image")
            w.add(f"k{uid}.json", json.dumps({"uid": uid}).encode())
        w.close()
    write_uid_file(tmp_path / "b.npy", uids)
    doc = reshard([str(tmp_path / "pool")], tmp_path / "out", InlineExecutor(), uid_files=[str(tmp_path / "b.npy")], progress=False)
    assert doc["ledger"]["selected"] == 1 and doc["ledger"]["malformed"]["bad_member_name"] == 1
    names = [n for t in (tmp_path / "out" / "shards" / "b").glob("*.tar") for n, _ in iter_members(t)]
    assert names == [f"{uids[0]}.jpg", f"{uids[0]}.json"]
