"""`tic curate` of a seeded synthetic pool writes the same bytes on Python 3.11, 3.12 and 3.13: the
digest below was taken on 3.11 with the lock's versions (constraints.txt), and
scripts/test_data_side.sh runs this test on 3.12 and 3.13. Other versions of polars or pyarrow
(the floors' run) may write other bytes: there the test says so and skips."""

from __future__ import annotations

import hashlib
import sys
from importlib import metadata

import pytest

from conftest import REPO
from ticdata.curate import CurateConfig, curate
from ticdata.executor import InlineExecutor
from ticdata.synth import make_pool

# sha256 over the manifest's files (relative path, then bytes, in path order) and manifest.json's ledger
GOLDEN = "fa09703887eb78df1acd60f8cf04867bb48bcedd434d85a592012eb60f5a2b8d"


def _locked(name: str) -> str | None:
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.lower().startswith(name + "=="):
            return line.split("==", 1)[1].strip()
    return None


def curated_digest(root) -> str:
    import json

    h = hashlib.sha256()
    for f in sorted((root / "manifest").rglob("*.parquet")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    h.update(json.dumps(json.loads((root / "manifest.json").read_text())["ledger"], sort_keys=True).encode())
    return h.hexdigest()


def test_curate_writes_the_same_bytes_on_every_python(tmp_path):
    differ = [f"{n} {metadata.version(n)} (locked {_locked(n)})" for n in ("polars", "pyarrow")
              if metadata.version(n) != _locked(n)]
    if differ:
        pytest.skip("the digest is of the lock's writers; here " + ", ".join(differ))
    make_pool(tmp_path / "pool", 20_000, seed=7, rows_per_file=5_000, row_group_rows=2_048)
    curate(CurateConfig(inputs=(str(tmp_path / "pool"),), out=tmp_path / "cur", benchmark="tic-datacomp", progress=False),
           InlineExecutor())
    assert curated_digest(tmp_path / "cur") == GOLDEN, f"Python {sys.version.split()[0]} wrote other bytes"
