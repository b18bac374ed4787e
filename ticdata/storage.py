"""Atomic writes: a file or folder appears under its final name complete, or not at all.

Everything a task produces goes through these helpers, so a run killed at any point leaves only
whole outputs behind and a rerun can trust whatever exists. On an object store (`ticdata.objstore`)
one PUT is already whole or absent, so a file is uploaded under its final key; a folder is written
locally and uploaded file by file, and whoever relies on it as a whole (a job's task outputs) trusts
it only once its completion marker, uploaded after it, exists.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from ticdata.errors import UserError
from ticdata.objstore import ObjectPath, location


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:8]}")


WRITE_BUFFER = 1 << 20


@contextmanager
def atomic_file(path: Path, buffering: int = WRITE_BUFFER) -> Iterator[BinaryIO]:
    """A binary file opened under a temporary sibling name; on success it is flushed to disk and
    renamed to `path`, on failure removed. For outputs written in a stream (tars, .npy)."""
    path = location(path)
    if isinstance(path, ObjectPath):
        buf = io.BytesIO()
        yield buf
        path.write_bytes(buf.getvalue())
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    try:
        with open(tmp, "wb", buffering=buffering) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_file(location(path)) as fh:
        fh.write(data)


def publish(src: Path, dst: Path) -> None:
    """Move a finished file (written under a temporary or work name) to its final name: flushed
    to disk first, then renamed, so `dst` is whole or absent."""
    src, dst = location(src), location(dst)
    if isinstance(src, ObjectPath) or isinstance(dst, ObjectPath):
        dst.write_bytes(src.read_bytes())  # an object store has no rename: copy, then remove
        src.unlink(missing_ok=True)
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(src, dst)


def write_parquet_atomic(path: Path, df, **options) -> None:
    """A Polars frame as a Parquet file that is whole or absent (`options` go to write_parquet)."""
    buf = io.BytesIO()
    df.write_parquet(buf, **options)
    write_bytes_atomic(path, buf.getvalue())


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def save_figure_atomic(fig, path: Path, **options) -> None:
    """A matplotlib figure as a PNG file that is whole or absent (`options` go to savefig)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **options)
    write_bytes_atomic(path, buf.getvalue())


def dumps_json(obj) -> bytes:
    """Canonical JSON: sorted keys, fixed indent, trailing newline; equal objects give equal bytes."""
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def write_json_atomic(path: Path, obj) -> None:
    write_bytes_atomic(path, dumps_json(obj))


def read_json(path: Path):
    return json.loads(location(path).read_text())


def rmtree(path) -> None:
    """Remove a folder (or prefix) and everything in it; nothing to do when it is absent."""
    path = location(path)
    if isinstance(path, ObjectPath):
        path.rmtree()
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it is renamed to `final` (replacing a stale copy). For
    an object store, the folder is local and uploaded file by file on success."""
    final = location(final)
    if isinstance(final, ObjectPath):
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix="tic-upload-"))
        try:
            yield tmp
            final.rmtree()
            for f in sorted(p for p in tmp.rglob("*") if p.is_file()):
                final.joinpath(*f.relative_to(tmp).parts).write_bytes(f.read_bytes())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
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
    """Delete `.tmp-*` debris that a killed run left in `folder` (recursively). An object store
    holds none: its writes go to their final keys."""
    if isinstance(folder, ObjectPath) or not folder.exists():
        return
    for p in sorted(folder.rglob(".tmp-*"), key=lambda q: len(q.parts), reverse=True):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def check_output_folder(out: Path, flag: str = "--out") -> Path:
    """The output folder exists (made here) and takes a file; else one line naming the flag and why
    (a file in its place, a read-only disk, a parent that is a file), before any work starts."""
    out = location(out)
    if isinstance(out, ObjectPath):
        if out.is_file():
            raise UserError(f"{flag} {out}: an object is in the way, not a folder (prefix); choose another")
        probe = out / f".tmp-probe-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")  # names the bucket, endpoint and credentials in one line when refused
        probe.unlink(missing_ok=True)
        return out
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out}: a file is in the way, not a folder; choose another folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".tmp-probe-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"{flag} {out}: cannot write the output folder here ({e.strerror or e}); choose another folder") from None
    return out
