"""Shared fixtures: one local Ray instance per test session (on a loopback address), pool writers."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network at run time
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


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


def tree_digest(root: Path, names=("manifest", "manifest.json")) -> dict[str, str]:
    """sha256 of every file under the named parts of a curated folder, by relative path."""
    out = {}
    for name in names:
        p = root / name
        files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
        for f in files:
            out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out
