"""The data verbs with only the base dependencies: torch, torchvision, open_clip, matplotlib,
img2dataset, webdataset, pillow and tensorboard are hidden from a `tic` subprocess (not found,
as when they are not installed). `import ticdata`, synth pool,
curate, uids export, audit (its tables, no figures) and benchmarks run; a verb that needs an extra
says which, in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ticdata.extras import EXTRAS

pytestmark = pytest.mark.slow


HIDE = """\
import importlib.abc, sys

HIDDEN = {hidden!r}


class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden by tests/test_base_install.py)", name=name)
        return None


sys.meta_path.insert(0, _Hide())
"""


@pytest.fixture(scope="module")
def base_env(tmp_path_factory) -> dict:
    """An environment whose Python (and Ray's workers) cannot find the extras' modules: a
    sitecustomize on PYTHONPATH puts a finder first that answers "not installed" for each."""
    hide = tmp_path_factory.mktemp("hide")
    (hide / "sitecustomize.py").write_text(HIDE.format(hidden=sorted(EXTRAS)))
    path = os.pathsep.join([str(hide), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return dict(os.environ, PYTHONPATH=path)


def tic(env: dict, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ticdata.cli", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_the_hidden_packages_are_missing(base_env, tmp_path):
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    try:\n        importlib.import_module(m)\n    except ImportError:\n        continue\n    sys.exit(m)"
    r = subprocess.run([sys.executable, "-c", code, *EXTRAS], env=base_env, capture_output=True, text=True)
    assert r.returncode == 0, f"{r.stderr} imported although hidden"


def test_data_verbs_run_with_the_base_install(base_env, tmp_path):
    r = subprocess.run([sys.executable, "-c", "import ticdata, ticdata.curate, ticdata.audit, ticdata.uidexport, "
                        "ticdata.uidsplits, ticdata.download, ticdata.reshard, ticdata.evalsets, ticdata.cli; "
                        "import sys; print(sorted(m for m in sys.modules if m.split('.')[0] in sys.argv[1:]))", *EXTRAS],
                       env=base_env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr[-2000:]
    assert tic(base_env, "synth", "pool", "--rows", "3000", "--out", "pool", "-q", cwd=tmp_path).returncode == 0
    got = tic(base_env, "curate", "pool", "--out", "cur", "--benchmark", "tic-datacomp", "-q", cwd=tmp_path)
    assert got.returncode == 0, got.stderr[-2000:]
    planted = json.loads((tmp_path / "pool" / "_synth.json").read_text())
    assert json.loads((tmp_path / "cur" / "manifest.json").read_text())["ledger"]["kept"] == planted["expected"]["kept"]
    got = tic(base_env, "uids", "export", "cur", "--out", "uids", "-q", cwd=tmp_path)
    assert got.returncode == 0 and list((tmp_path / "uids").glob("*.npy")), got.stderr[-2000:]
    got = tic(base_env, "audit", "cur", "--out", "audit", "-q", cwd=tmp_path)
    assert got.returncode == 0, got.stderr[-2000:]
    md = (tmp_path / "audit" / "audit.md").read_text()
    assert "## Coverage and agreement" in md and "pip install 'tic[plots]'" in md and not list((tmp_path / "audit").glob("*.png"))
    assert json.loads((tmp_path / "audit" / "audit.json").read_text())["rows"] == planted["expected"]["kept"]
    assert tic(base_env, "benchmarks", cwd=tmp_path).returncode == 0


def test_a_verb_needing_an_extra_names_it_in_one_line(base_env, tmp_path):
    assert tic(base_env, "synth", "pool", "--rows", "2000", "--out", "pool", "-q", cwd=tmp_path).returncode == 0
    assert tic(base_env, "curate", "pool", "--out", "cur", "--benchmark", "tic-datacomp", "-q", cwd=tmp_path).returncode == 0
    for args, extra in ((["download", "cur", "--allow-private-hosts"], "images"),
                        (["synth", "world", "--out", "world"], "images"),
                        (["train", "cur", "--out", "run", "--method", "sequential"], "train")):
        r = tic(base_env, *args, cwd=tmp_path)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, (args, r.stderr[-3000:])
        assert lines[0].startswith(f"tic {args[0]}: error: ") and f"pip install 'tic[{extra}]'" in lines[0], lines
