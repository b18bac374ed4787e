"""Parquet pools in DataComp's metadata layout (uid, url, text, ...) plus timestamp evidence columns.

Chunks are runs of whole row groups, so a map task reads a bounded slice of a large file.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ticdata.columns import CANONICAL, EVIDENCE_TIMES, REQUIRED, ColumnMap
from ticdata.errors import UserError
from ticdata.objstore import is_remote, location
from ticdata.sources import InputFile

KIND = "parquet"


def sniff(path: Path, head: bytes) -> bool:
    return head[:4] == b"PAR1"


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_null(t)


def _time_ok(t: pa.DataType) -> bool:
    return (
        _is_string(t)
        or pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_date(t)
    )


def _check_type(path: Path, canon: str, actual: str, t: pa.DataType, columns: ColumnMap) -> None:
    ok = _time_ok(t) if canon in EVIDENCE_TIMES else _is_string(t)
    if not ok:
        want = "a string, number or timestamp" if canon in EVIDENCE_TIMES else "a string"
        hint = f"--column {canon}=NAME to use another column" if canon not in REQUIRED else f"--column {canon}=NAME to pick the right column"
        raise UserError(f"{path}: column '{actual}' ({canon}) has type {t}, expected {want}; fix the file or pass {hint}")


def _parquet_file(path) -> pq.ParquetFile:
    """A local path as itself; an object as a seekable handle (footer and row groups by range)."""
    p = location(path)
    return pq.ParquetFile(p.open("rb") if is_remote(p) else p)


def inspect(path: Path, columns: ColumnMap) -> InputFile:
    try:
        pf = _parquet_file(path)
        meta, schema = pf.metadata, pf.schema_arrow
    except (pa.ArrowInvalid, OSError) as e:
        raise UserError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0]}); re-export it or remove it from the inputs")
    names = schema.names
    if len(set(names)) != len(names):
        raise UserError(f"{path}: duplicate column names {names}; rename them before curating")
    renames = columns.to_canonical(names)
    for canon in REQUIRED:
        if columns.actual(canon) not in names:
            raise UserError(
                f"{path}: missing required column '{columns.actual(canon)}' ({canon}); columns are {', '.join(names)}; pass --column {canon}=NAME"
            )
    for actual, canon in renames.items():
        _check_type(path, canon, actual, schema.field(actual).type, columns)
    pl_schema = pl.from_arrow(schema.empty_table()).schema
    out, rename = [], []
    for name in names:
        dtype = pl_schema[name]
        if name in renames:
            target = renames[name]
            if dtype == pl.Null:
                dtype = pl.String
        elif name in CANONICAL or name.startswith("_"):
            # a canonical name the user re-pointed elsewhere, or one in tic's internal namespace
            # (_order, _reason, _row, ...): carried, renamed
            target = "src_" + name
        else:
            target = name
        out.append((target, dtype))
        if target != name:
            rename.append((name, target))
    return InputFile(
        path=str(path), kind=KIND, size=path.stat().st_size, rows=meta.num_rows, schema=tuple(out), rename=tuple(rename)
    )


def chunks(f: InputFile, chunk_rows: int) -> list[tuple[int, int]]:
    """(first row, rows) spans made of whole row groups, about chunk_rows rows each."""
    meta = _parquet_file(f.path).metadata
    spans: list[tuple[int, int]] = []
    start = rows = 0
    for i in range(meta.num_row_groups):
        n = meta.row_group(i).num_rows
        if rows and rows + n > chunk_rows:
            spans.append((start, rows))
            start, rows = start + rows, 0
        rows += n
    if rows or not spans:
        spans.append((start, rows))
    return spans


_PER_SECOND = {"ms": 10**3, "us": 10**6, "ns": 10**9}
_YEAR_1, _YEAR_9999 = -62_135_596_800, 253_402_300_799  # seconds since 1970 of 0001-01-01 and 9999-12-31T23:59:59


def _in_range(name: str, dtype: pl.Datetime) -> pl.Expr:
    """A timestamp outside years 1-9999 (e.g. +-2**62 ms) is no evidence: null, so the row is dated
    by its other evidence or dropped with a counted reason (Polars cannot convert it to microseconds)."""
    per = _PER_SECOND[dtype.time_unit or "us"]
    raw = pl.col(name).cast(pl.Int64)
    return pl.when(raw.is_between(_YEAR_1 * per, _YEAR_9999 * per)).then(pl.col(name)).otherwise(None).alias(name)


def _read_remote(path: str, start: int, rows: int) -> pl.DataFrame:
    """The row groups that make up [start, start + rows) of an object (chunks are whole groups)."""
    pf = _parquet_file(path)
    groups, first = [], 0
    for i in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(i).num_rows
        if first >= start and first + n <= start + rows and n:
            groups.append(i)
        first += n
    table = pf.read_row_groups(groups) if groups else pf.schema_arrow.empty_table()
    return pl.from_arrow(table)


def read(f: InputFile, spec: tuple[int, int], columns: ColumnMap) -> tuple[pl.DataFrame, dict[str, int]]:
    start, rows = spec
    try:
        # Polars' reader with a row slice reads only the row groups the slice covers.
        df = _read_remote(f.path, start, rows) if is_remote(f.path) else pl.scan_parquet(f.path).slice(start, rows).collect()
        df = df.rename(dict(f.rename))
        df = df.select([pl.col(n).cast(t) for n, t in f.schema])
        return df.with_columns([_in_range(n, t) for n, t in f.schema if isinstance(t, pl.Datetime)]), {}
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError, ValueError) as e:
        # a damaged data page, strings that are not UTF-8, timestamps outside what Polars holds
        # (+-2**62 ms): the metadata looked fine, the data does not
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{f.path}: rows {start:,}-{start + rows - 1:,} cannot be read ({why[:200]}); "
                        "the file is damaged or holds values Parquet readers refuse: rewrite it, or leave it out") from None
