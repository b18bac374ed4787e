"""Shared fixtures: one local Ray instance per test session (on a loopback address), pool writers."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network at run time
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _restore_tic_loggers():
    """`ticdata.cli.main` points the tic loggers at stderr without propagating (a CLI's output);
    undo that after each test that called it in process, so a later test's caplog sees its lines."""
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in map(logging.getLogger, ("ticdata", "tic_train"))]
    yield
    for lg, handlers, level, propagate in saved:
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance for in-process curation (RayExecutor reuses it)."""
    import ray

    from ticdata.executor import default_node_ip

    if not ray.is_initialized():
        ray.init(
            address="local",
            _node_ip_address=default_node_ip(),
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=256 * 1024**2,
            logging_level="WARNING",
            runtime_env={"env_vars": {"POLARS_MAX_THREADS": "2"}},
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def world_folder(tmp_path_factory):
    """The synthetic world through the whole data pipeline (tests/worldfolder.py), built once per
    session and shared: read it, never write to it."""
    from worldfolder import WORLD_PAIRS, WORLD_RETRIEVAL, build_world_folder

    folder = build_world_folder(tmp_path_factory.mktemp("world"), pairs_per_step=WORLD_PAIRS, retrieval=WORLD_RETRIEVAL)

    def listing():
        return {str(f.relative_to(folder)): (f.stat().st_size, f.stat().st_mtime_ns) for f in folder.rglob("*") if f.is_file()}

    before = listing()
    yield folder
    assert listing() == before, f"a test wrote into the shared world folder {folder}; write to your own tmp_path"


def tree_digest(root: Path, names=("manifest", "manifest.json")) -> dict[str, str]:
    """sha256 of every file under the named parts of a curated folder, by relative path."""
    out = {}
    for name in names:
        p = root / name
        files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
        for f in files:
            out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """A small folder through every verb (tests/worldfolder.py: curated, downloaded, eval sets,
    training shards) plus a two-step `tic train` run scored by `tic eval`: the input of the tests
    that damage folders. Read it, or copy it (`copy_small_run`) before changing anything."""
    from worldfolder import build_small_run

    return build_small_run(tmp_path_factory.mktemp("small"))
