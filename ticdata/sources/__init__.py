"""Input readers: every pool format becomes one table of canonical columns.

A reader module exposes:
    KIND                      short name ("parquet", "warc", "yfcc", "redcaps")
    sniff(path, head) -> bool  does this file (first 4 KiB in `head`) belong to the reader?
    inspect(path, columns)     -> InputFile, validating the file; UserError on bad input
    chunks(f, chunk_rows)      -> list of chunk specs (hashable tuples) that bound memory per task
    read(f, spec, columns)     -> (polars DataFrame with exactly the columns of f.schema, in order,
                                   {stat: count} of what the reader saw but is not a pair, e.g.
                                   images without alt text; empty for tabular formats).
                                   A key "dropped:<reason>" counts input rows the reader
                                   skipped (YFCC videos): they enter the ledger as dropped.

Canonical columns are those of `ticdata.columns.CANONICAL`; any other column is carried through.
Readers never compute timestamps or drop rows: that is `ticdata.recover`'s job.
"""

from __future__ import annotations

import zlib
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ticdata.columns import ColumnMap
from ticdata.errors import UserError
from ticdata.objstore import ObjectPath, is_remote, location

SKIP_NAMES = ("_SUCCESS", ".DS_Store")


@dataclass(frozen=True)
class InputFile:
    """One validated input file and the columns its reader will produce."""

    path: str
    kind: str
    size: int
    rows: int | None  # exact where the format records it (Parquet), else None
    schema: tuple[tuple[str, pl.DataType], ...]  # canonical + carried columns, in order
    rename: tuple[tuple[str, str], ...] = ()  # input column -> output column, where they differ

    @property
    def columns(self) -> list[str]:
        return [name for name, _ in self.schema]

    def estimated_rows(self) -> int:
        """Rows, or a guess from the size (about 200 bytes a row, gzip about 4x smaller)."""
        if self.rows is not None:
            return self.rows
        factor = 4 if self.path.endswith(".gz") else 1
        return max(1, self.size * factor // 200)


def _readers():
    from ticdata.sources import commoncrawl, parquet_pool, redcaps, yfcc

    return {m.KIND: m for m in (parquet_pool, commoncrawl, yfcc, redcaps)}


def reader(kind: str):
    return _readers()[kind]


def kinds() -> list[str]:
    return list(_readers())


def read_head(path: Path, n: int = 4096) -> bytes:
    """The first bytes of a file, decompressed when it is gzip (WARC/WAT/TSV/JSON often are)."""
    with location(path).open("rb") as fh:
        head = fh.read(n)
        if head[:2] != b"\x1f\x8b":
            return head
        raw = head + fh.read(1 << 16)
    try:  # what inflates before any cut: a file cut short still shows what it is (and is then named truncated)
        return zlib.decompressobj(31).decompress(raw, n)
    except zlib.error:
        return b""


def _regular(p: Path, raw: str) -> Path:
    """The resolved path of an input file; a FIFO, device or socket would block or mislead a reader,
    a symlink loop has no target: both are refused with the path named."""
    try:
        resolved = p.resolve(strict=True)
    except (RuntimeError, OSError) as e:  # RuntimeError: a symlink loop (Python 3.11)
        raise UserError(f"{raw}: cannot be resolved ({getattr(e, 'strerror', None) or e}); a symlink loop or a dangling link? Fix or remove it")
    if not resolved.is_file():
        raise UserError(f"{raw}: not a regular file (a FIFO, socket or device); inputs are regular files or folders of them")
    return resolved


def expand_inputs(inputs: list[str], exclude: Path | None = None) -> list[Path]:
    """Files named or found (recursively) under the given paths, sorted; files and folders whose
    names start with '.' or '_' (Hadoop/Spark markers, tic's own .tic state) are skipped at any depth,
    and so is the folder `exclude` (the output folder, when it lies inside an input folder)."""
    files: list[Path] = []
    remote: list[ObjectPath] = []
    for raw in inputs:
        p = location(raw)
        if is_remote(p):
            remote += _expand_remote(p, raw, exclude)
            continue
        if not p.exists() and not p.is_symlink():
            raise UserError(f"{raw}: no such file or directory; check the path (inputs are Parquet, WARC/WAT, YFCC or RedCaps files, or folders of them)")
        if p.is_dir():
            found = []
            for root, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_"))
                                 and (exclude is None or Path(os.path.realpath(Path(root) / d)) != exclude))
                found += [_regular(Path(root) / name, str(Path(root) / name)) for name in names
                          if not name.startswith((".", "_")) and name not in SKIP_NAMES]
            if not found:
                raise UserError(f"{raw}: the folder holds no input files")
            files.extend(found)
        else:
            files.append(_regular(p, raw))
    return sorted(set(files)) + sorted(set(remote))


def _expand_remote(p: ObjectPath, raw: str, exclude) -> list[ObjectPath]:
    """The objects named by an s3:// URL: the object itself, or every object under the prefix,
    with the same skipping rules as a local folder."""
    if p.is_file():
        return [p]
    found = []
    for f in p.files():
        rel = f.relative_to(p).parts
        if any(x.startswith((".", "_")) for x in rel) or rel[-1] in SKIP_NAMES:
            continue
        if exclude is not None and is_remote(exclude) and f.is_relative_to(exclude):
            continue
        found.append(f)
    if not found:
        raise UserError(f"{raw}: no such object, or the prefix holds no input files; check the URL")
    return found


def detect_kind(path: Path, forced: str | None = None) -> str:
    readers = _readers()
    if forced:
        if forced not in readers:
            raise UserError(f"--format {forced!r}: choose one of {', '.join(readers)}")
        return forced
    try:
        head = read_head(path)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})")
    for kind, mod in readers.items():
        if mod.sniff(path, head):
            if is_remote(path) and kind != "parquet":
                raise UserError(f"{path}: {kind} files are read from local disk only; copy them first (aws s3 cp), "
                                "or curate Parquet (DataComp's metadata) straight from the object store")
            return kind
    raise UserError(
        f"{path}: not a Parquet, WARC/WAT, YFCC or RedCaps file; remove it from the inputs or name its format with --format"
    )


def inspect_inputs(inputs: list[str], columns: ColumnMap, forced_kind: str | None = None,
                   exclude: Path | None = None) -> list[InputFile]:
    """Expand, detect and validate every input before anything is written (`exclude`: a folder
    left out, the output folder)."""
    out = []
    for path in expand_inputs(inputs, exclude):
        kind = detect_kind(path, forced_kind)
        out.append(reader(kind).inspect(path, columns))
    return out
