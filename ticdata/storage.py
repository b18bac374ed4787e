"""Atomic writes: a file or folder appears under its final name complete, or not at all.

Everything a task produces goes through these helpers, so a run killed at any point leaves only
whole outputs behind and a rerun can trust whatever exists.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:8]}")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_parquet_atomic(path: Path, df, **options) -> None:
    """A Polars frame as a Parquet file that is whole or absent (`options` go to write_parquet)."""
    import io

    buf = io.BytesIO()
    df.write_parquet(buf, **options)
    write_bytes_atomic(Path(path), buf.getvalue())


def dumps_json(obj) -> bytes:
    """Canonical JSON: sorted keys, fixed indent, trailing newline; equal objects give equal bytes."""
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def write_json_atomic(path: Path, obj) -> None:
    write_bytes_atomic(path, dumps_json(obj))


def read_json(path: Path):
    return json.loads(Path(path).read_text())


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it is renamed to `final` (replacing a stale copy)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(final)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def remove_tmp_leftovers(folder: Path) -> None:
    """Delete `.tmp-*` debris that a killed run left in `folder` (recursively)."""
    if not folder.exists():
        return
    for p in sorted(folder.rglob(".tmp-*"), key=lambda q: len(q.parts), reverse=True):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
