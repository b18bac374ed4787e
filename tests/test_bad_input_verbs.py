"""The verbs after curate never harm their input (issue 17, "Harm"): each case asserts exit status 2
with one line naming the file or flag, and the input folder byte-for-byte unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from ticdata.cli import main
from ticdata.errors import UserError

from refusals import one_line, tree

GOOD = {"url": [f"http://a/{i}.jpg" for i in range(6)], "text": [f"a photo number {i}" for i in range(6)],
        "source": ["crawl-data/CC-MAIN-2019-04/segments/1/wat/x.warc.wat.gz"] * 6}


@pytest.fixture()
def curated(tmp_path, capsys) -> Path:
    pl.DataFrame(GOOD).write_parquet(tmp_path / "pool.parquet")
    assert main(["-q", "curate", str(tmp_path / "pool.parquet"), "--out", str(tmp_path / "cur"), "--executor", "inline"]) == 0
    capsys.readouterr()
    return tmp_path / "cur"


def test_uids_import_into_its_own_input_is_refused_and_the_input_kept(curated, tmp_path, capsys):
    from ticdata.uidlists import write_uid_file

    uids = pl.read_parquet(curated / "manifest" / "*" / "*.parquet")["uid"].to_list()
    write_uid_file(tmp_path / "a.npy", uids[:2])
    before = tree(curated)
    for out in (curated, curated / "sub", tmp_path):
        code = main(["-q", "uids", "import", str(curated), str(tmp_path / "a.npy"), "--out", str(out), "--overwrite"])
        one_line(capsys, code, "--out", "curated folder")
        assert tree(curated) == before


def test_audit_fix_inside_the_audited_folder_is_refused(curated, tmp_path, capsys):
    before = tree(curated)
    code = main(["-q", "audit", str(curated), "--out", str(tmp_path / "a"), "--fix", str(curated / "manifest" / "year=2099"),
                 "--executor", "inline"])
    one_line(capsys, code, "--fix", "inside the audited folder")
    assert tree(curated) == before
    assert main(["-q", "uids", "export", str(curated), "--out", str(tmp_path / "u")]) == 0  # still readable


@pytest.mark.parametrize("name", ["../../x", "/abs/x", "a/b"])
def test_bucket_names_from_a_hand_edited_manifest_json_never_name_a_path(curated, tmp_path, capsys, name):
    doc = json.loads((curated / "manifest.json").read_text())
    doc["buckets"] = {name: next(iter(doc["buckets"].values()))}
    doc["benchmark"]["steps"][0]["name"] = name
    (curated / "manifest.json").write_text(json.dumps(doc))
    before = tree(curated)
    code = main(["-q", "uids", "export", str(curated), "--out", str(tmp_path / "u")])
    one_line(capsys, code, "manifest.json", "cannot name a folder")
    code = main(["-q", "evalsets", str(curated), "--executor", "inline"])
    one_line(capsys, code, "manifest.json", "cannot name a folder")
    assert tree(curated) == before  # refused before the first write: the split column untouched
    assert not (tmp_path / "x").exists() and not Path("/abs/x").exists() and not (tmp_path / "u" / "a").exists()


def test_outputs_replace_a_link_never_write_through_it(tmp_path):
    """Reports are written through a temporary name and a rename: a symlink planted at the output
    path is replaced, and the file it pointed to is untouched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ticdata.storage import save_figure_atomic, write_text_atomic

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "report"
    out.mkdir()
    for name in ("report.md", "fig.png"):
        (out / name).symlink_to(victim)
    write_text_atomic(out / "report.md", "# report\n")
    fig = plt.figure()
    save_figure_atomic(fig, out / "fig.png")
    plt.close(fig)
    assert victim.read_text() == "precious"
    assert not (out / "report.md").is_symlink() and (out / "report.md").read_text() == "# report\n"
    assert not (out / "fig.png").is_symlink() and (out / "fig.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("arch", ["hf-hub:someone/model", "https://example.invalid/model", "no-such-architecture", 7])
def test_a_checkpoint_naming_a_remote_or_unknown_model_is_refused_by_name(tmp_path, arch):
    from tic_train.checkpoint import CONFIG
    from tic_train.evaluate import checkpoint_architecture

    (tmp_path / CONFIG).write_text(json.dumps({"architecture": arch}))
    with pytest.raises(UserError, match="not a local open_clip config"):
        checkpoint_architecture(tmp_path)
    (tmp_path / CONFIG).write_text("{trunc")
    with pytest.raises(UserError, match="cannot read the checkpoint"):
        checkpoint_architecture(tmp_path)


def test_an_unsafe_resume_state_is_refused_without_advising_the_unsafe_option(tmp_path):
    import pickle

    from tic_train.checkpoint import STATE, load_state

    class Evil:
        def __reduce__(self):
            return (print, ("never run",))

    (tmp_path / STATE).write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(UserError) as got:
        load_state(tmp_path)
    assert "weights_only" not in str(got.value) and "delete" in str(got.value)


# --------------------------------------------------------------------------------- uid files


def _uid_file_cases(tmp_path: Path) -> dict[str, Path]:
    import io
    import os

    import numpy as np

    from ticdata.uidlists import write_uid_file

    write_uid_file(tmp_path / "ok.npy", ["%032x" % i for i in (5, 3, 9)])
    good = (tmp_path / "ok.npy").read_bytes()
    hdr = np.lib.format.header_data_from_array_1_0(np.zeros(3, dtype="u8,u8"))
    hdr["shape"] = (10**12,)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, hdr)
    np.savez(tmp_path / "z.npz", a=np.zeros(3))
    blobs = {"empty": b"", "truncated": good[:-10], "cut-header": good[:60], "claims-1e12": buf.getvalue() + bytes(48),
             "npz-as-npy": (tmp_path / "z.npz").read_bytes()}
    out = {}
    for name, blob in blobs.items():
        (tmp_path / f"{name}.npy").write_bytes(blob)
        out[name] = tmp_path / f"{name}.npy"
    os.mkfifo(tmp_path / "fifo.npy")
    out["fifo"] = tmp_path / "fifo.npy"
    return out


def test_broken_uid_files_are_one_line_each(curated, tmp_path, capsys):
    from ticdata.tars import TarWriter

    (tmp_path / "pool").mkdir()
    with open(tmp_path / "pool" / "00000000.tar", "wb") as fh:
        w = TarWriter(fh)
        w.add("k.json", json.dumps({"uid": "0" * 32}).encode())
        w.close()
    before = tree(curated)
    for name, path in _uid_file_cases(tmp_path).items():
        code = main(["-q", "uids", "import", str(curated), str(path), "--out", str(tmp_path / f"sel-{name}")])
        one_line(capsys, code, path.name)
        code = main(["-q", "reshard", str(tmp_path / "pool"), "--uids", str(path), "--out", str(tmp_path / f"rs-{name}"),
                     "--executor", "inline"])
        one_line(capsys, code, path.name)
    assert tree(curated) == before


def test_a_uid_repeated_inside_one_file_is_named_as_such(curated, tmp_path, capsys):
    import numpy as np

    arr = np.array([(1, 2), (1, 2)], dtype="u8,u8")
    np.save(tmp_path / "rep.npy", arr)
    code = main(["-q", "uids", "import", str(curated), str(tmp_path / "rep.npy"), "--out", str(tmp_path / "sel")])
    one_line(capsys, code, "more than once in the uid file of bucket rep")


def test_silent_acceptance_is_refused(curated, tmp_path, capsys):
    code = main(["-q", "uids", "export", str(curated), "--split", "nope", "--out", str(tmp_path / "u")])
    one_line(capsys, code, "--split 'nope'", "train")
    assert not (tmp_path / "u").exists() or not list((tmp_path / "u").glob("*.npy"))
    code = main(["-q", "download", str(curated), "--timeout", "nan", "--executor", "inline"])
    one_line(capsys, code, "--timeout", "'nan'")
    code = main(["-q", "train", "--data", str(curated), "--out", str(tmp_path / "run"), "--method", "sequential", "--device", "tpu"])
    one_line(capsys, code, "device 'tpu'")
    code = main(["-q", "train", "--data", str(curated), "--out", str(tmp_path / "run"), "--method", "sequential", "--lr", "nan"])
    one_line(capsys, code, "--lr", "'nan'")
    from tic_train.config import RunConfig, check

    with pytest.raises(UserError, match="lr = nan"):  # a config built in code gets the same check
        check(RunConfig(data="d", out="o", lr=float("nan")))


def test_a_fifo_given_to_reshard_is_refused_not_waited_on(tmp_path, capsys):
    import os

    from ticdata.uidlists import write_uid_file

    os.mkfifo(tmp_path / "pool.tar")
    write_uid_file(tmp_path / "b.npy", ["0" * 32])
    code = main(["-q", "reshard", str(tmp_path / "pool.tar"), "--uids", str(tmp_path / "b.npy"), "--out", str(tmp_path / "o"),
                 "--executor", "inline"])
    one_line(capsys, code, "pool.tar", "not a regular file")
