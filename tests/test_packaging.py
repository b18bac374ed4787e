"""The package metadata declares ranges, the lock fixes versions: tic installs beside a researcher's
own torch, numpy and open_clip (no `==` in pyproject.toml), while the README's commands install
exactly constraints.txt (every declared dependency pinned there, inside its declared range)."""

from __future__ import annotations

import os
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from conftest import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements() -> list[tuple[str, Requirement]]:
    out = [("dependencies", Requirement(r)) for r in PROJECT["dependencies"]]
    for extra, reqs in PROJECT["optional-dependencies"].items():
        out += [(f"extra {extra}", Requirement(r)) for r in reqs if not r.startswith("tic[")]
    return out


def _lock(name: str = "constraints.txt") -> dict[str, Version]:
    pins = {}
    for line in (REPO / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{name}: {line!r} is not NAME==VERSION"
            pins[_norm(name)] = Version(version)
    return pins


def test_no_exact_pin_in_the_package_metadata():
    exact = [f"{where}: {req}" for where, req in _requirements()
             if any(s.operator in ("==", "===") for s in req.specifier)]
    assert not exact, "exact pins belong in constraints.txt, ranges in pyproject.toml:\n" + "\n".join(exact)


def test_every_range_has_a_floor_and_a_ceiling():
    """A floor (the oldest version tested) and a ceiling (the next major, or a known-bad release)."""
    loose = [f"{where}: {req}" for where, req in _requirements()
             if not any(s.operator in (">=", ">", "~=") for s in req.specifier) and req.name != "numpy"
             or not any(s.operator in ("<", "<=", "~=") for s in req.specifier)]
    assert not loose, "\n".join(loose)


def test_python_311_to_313():
    allowed = SpecifierSet(PROJECT["requires-python"])
    assert all(v in allowed for v in ("3.11.7", "3.12.1", "3.13.0")) and "3.14.0" not in allowed


def test_the_lock_pins_every_dependency_inside_its_range():
    pins = _lock()
    for where, req in _requirements():
        name = _norm(req.name)
        assert name in pins, f"constraints.txt does not pin {req.name} ({where}); regenerate it (see its header)"
        assert req.specifier.contains(pins[name], prereleases=True), f"constraints.txt: {req.name}=={pins[name]} is outside {where}'s {req}"


def test_this_environment_is_the_lock():
    """What the README's commands installed is what constraints.txt says (or the lock
    scripts/test_data_side.sh installed, TIC_LOCK); a run in another environment says which differ."""
    pins = _lock(os.environ.get("TIC_LOCK", "constraints.txt"))
    differ = []
    for where, req in _requirements():
        # site-packages only: Ray puts its own vendored copies (psutil) on sys.path too
        found = list(metadata.distributions(name=req.name, path=[p for p in sys.path if p.endswith("site-packages")]))
        if not found:
            continue  # an extra this environment does not hold (the data side's job: no torch)
        have = Version(found[0].version)
        if _norm(req.name) in pins and have != pins[_norm(req.name)]:
            differ.append(f"{req.name}: installed {have}, locked {pins[_norm(req.name)]}")
    if differ and not (Path(sys.prefix) / ".tic-installed").exists():  # the stamp of scripts/_venv.sh
        pytest.skip("not an environment installed from the lock: " + "; ".join(differ))
    assert not differ, "\n".join(differ)


TRAIN_SIDE = re.compile(r"tic_train|import torch|open_clip|clip_benchmark|from train|worldfolder|matplotlib|small_run|two_methods|demo_root")


def test_the_data_side_list_is_complete():
    """tests/data_side.txt (run on Python 3.12 and 3.13 without torch) names every test file that
    needs nothing of the trainer: a new data test is listed or says what of the trainer it needs."""
    listed = {line for line in (REPO / "tests" / "data_side.txt").read_text().splitlines() if line and not line.startswith("#")}
    files = {p.name: p.read_text() for p in (REPO / "tests").glob("test_*.py")}
    assert listed <= set(files), f"tests/data_side.txt names missing files: {sorted(listed - set(files))}"
    unlisted = sorted(name for name, text in files.items() if name not in listed and not TRAIN_SIDE.search(text))
    assert not unlisted, f"add to tests/data_side.txt (they need nothing of the trainer): {unlisted}"


def test_the_floors_are_the_ranges_lower_ends():
    """constraints-lowest.txt (the data side's floors, tested by scripts/test_data_side.sh) holds
    each range's lower end, so a floor in pyproject.toml is a version the tests passed on."""
    floors = _lock("constraints-lowest.txt")
    for where, req in _requirements():
        low = [Version(s.version) for s in req.specifier if s.operator == ">="]
        if low and _norm(req.name) in floors:  # (a cap alone, such as train's numpy<2.4, has no floor)
            assert floors[_norm(req.name)].release[:len(low[0].release)] == low[0].release, (
                f"{where}: {req} starts below or above the tested floor {req.name}=={floors[_norm(req.name)]}")
