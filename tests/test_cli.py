"""The command line: every verb and flag is explained; the shipped benchmarks load; synth pool runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ticdata.benchmarks import load_benchmark, shipped_names
from ticdata.cli import build_parser, main
from ticdata.errors import UserError

TIC = str(Path(sys.executable).with_name("tic"))


def _leaf_parsers(parser, prefix=()):
    import argparse

    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
        return
    for name, p in subs[0].choices.items():
        yield from _leaf_parsers(p, prefix + (name,))


def test_every_flag_has_help():
    leaves = list(_leaf_parsers(build_parser()))
    assert {" ".join(p) for p, _ in leaves} >= {"curate", "synth pool", "uids export", "uids import", "benchmarks",
                                                        "evalsets", "train", "eval", "report", "demo", "audit"}
    for path, parser in leaves:
        assert parser.description, path
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, (path, action.option_strings)


VERBS = {"synth pool", "synth world", "serve-images", "curate", "uids export", "uids import", "download", "reshard",
         "evalsets", "train", "eval", "report", "demo", "audit", "benchmarks"}


def _command_paths(parser, prefix=()):
    """Every command the parser defines: the top level, each verb, each group (synth, uids) and sub-verb."""
    import argparse

    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, p in action.choices.items():
                yield from _command_paths(p, prefix + (name,))


def test_the_parser_defines_every_known_verb():
    assert {" ".join(p) for p, _ in _leaf_parsers(build_parser())} >= VERBS


@pytest.mark.parametrize("path", list(_command_paths(build_parser())), ids=lambda p: " ".join(("tic", *p)))
def test_help_runs_for_every_verb(path):
    res = subprocess.run([TIC, *path, "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    usage = " ".join(("usage:", "tic", *path))
    assert res.stdout.startswith(usage + " ") or res.stdout.startswith(usage + "\n"), res.stdout[:200]


def test_shipped_benchmarks():
    assert shipped_names() == ["demo", "tic-datacomp", "tic-redcaps", "tic-yfcc"]
    dc = load_benchmark("tic-datacomp")
    assert [s.name for s in dc.steps] == ["2014-2016", "2017", "2018", "2019", "2020", "2021", "2022"]
    assert dc.steps[0].years == (2014, 2015, 2016)
    assert dc.bucket_of(2023, 1) is None and dc.bucket_of(2015, 6) == "2014-2016"
    assert [s.name for s in load_benchmark("tic-yfcc").steps] == ["2004-2008", "2009-2010", "2011-2012", "2013-2014"]
    assert [s.name for s in load_benchmark("tic-redcaps").steps] == ["2011-2017", "2018", "2019", "2020"]
    assert dc.with_granularity("month").bucket_of(2019, 7) == "2019-07"


def test_user_benchmark_file(tmp_path):
    good = tmp_path / "mine.toml"
    good.write_text('name = "mine"\n[[steps]]\nname = "early"\nyears = [2010, 2011]\n[[steps]]\nname = "late"\nyears = [2012]\n')
    assert [s.name for s in load_benchmark(str(good)).steps] == ["early", "late"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[steps]]\nname = "a"\nyears = [2010]\n[[steps]]\nname = "b"\nyears = [2010]\n')
    with pytest.raises(UserError, match="year 2010 is in both step"):
        load_benchmark(str(bad))


def test_synth_pool_command(tmp_path, capsys):
    assert main(["synth", "pool", "--rows", "3000", "--out", str(tmp_path / "p"), "--seed", "4"]) == 0
    assert "3,000 rows" in capsys.readouterr().out
    summary = json.loads((tmp_path / "p" / "_synth.json").read_text())
    assert summary["rows"] == 3000 and summary["seed"] == 4
    assert main(["synth", "pool", "--rows", "3000", "--out", str(tmp_path / "p")]) == 2  # refuses to overwrite


def test_every_verb_refuses_a_wrong_folder_by_its_real_path_before_heavy_imports(tmp_path):
    """A folder that is not a curation or a run is named as given, in one line, before torch,
    open_clip or Ray is imported (a refusal costs well under a second); the main folder is
    positional everywhere, `tic train` included."""
    wrong = tmp_path / "not-a-curation"
    wrong.mkdir()
    cases = {
        "download": ["download", str(wrong)],
        "evalsets": ["evalsets", str(wrong)],
        "audit": ["audit", str(wrong), "--out", str(tmp_path / "audit")],
        "uids": ["uids", "export", str(wrong), "--out", str(tmp_path / "uids")],
        "train": ["train", str(wrong), "--out", str(tmp_path / "run"), "--method", "sequential"],
        "train --data": ["train", "--data", str(wrong), "--out", str(tmp_path / "run"), "--method", "sequential"],
        "eval": ["eval", str(wrong)],
        "report": ["report", str(wrong), "--out", str(tmp_path / "report")],
    }
    code = ("import contextlib, io, json, sys; from ticdata.cli import main\n"
            "res = {}\n"
            "for name, argv in json.loads(sys.argv[1]).items():\n"
            "    err = io.StringIO()\n"
            "    with contextlib.redirect_stderr(err):\n"
            "        res[name] = [main(['-q', *argv]), err.getvalue()]\n"
            "print(json.dumps([res, sorted(m for m in ('torch', 'open_clip', 'ray') if m in sys.modules)]))")
    r = subprocess.run([sys.executable, "-c", code, json.dumps(cases)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    res, loaded = json.loads(r.stdout.strip().splitlines()[-1])
    assert loaded == []
    for name, (status, err) in res.items():
        lines = err.strip().splitlines()
        assert status == 2 and len(lines) == 1 and str(wrong) in lines[0] and " DIR" not in lines[0], (name, err)
    assert not any((tmp_path / p).exists() for p in ("audit", "uids", "run", "report"))


def test_the_top_level_help_describes_every_stage():
    text = build_parser().format_help()
    assert "later verbs" not in text and "curate -> download" in text
