"""YFCC100M metadata: the headerless yfcc100m_dataset file (Webscope's 23 columns, or the AWS copy's
25 with a line number and hash added) or a TSV with a header (YFCC15M).

A photo is one pair: its download URL and its URL-encoded title + description, decoded. Videos
(marker 1) are not image pairs: skipped and counted. Upload time stays raw epoch seconds.

Chunks: the driver must not read a 50 GB file, so a plain file is cut by its size alone into byte
ranges (start, end) of about chunk_rows lines each, the bytes per line estimated from the first MiB.
A task owns the lines that start in its range: it skips to just after the first newline at or
after start-1 and reads on until a line starts at or past end, the last line running past end.
Rows keep file order within a task and tasks are in file order, so the input order that dedupe's
ties follow does not depend on where the cuts fall. A gzip stream cannot be entered mid-way, so a
gzip file keeps one counting pass (newlines counted in C, numpy finding the cut lines): a spec is
(byte offset, n lines) in the decompressed text, and the task re-inflates up to the offset.
Blank lines are not records.
A header TSV needs downloadurl, title and dateuploaded; the other output columns are null when absent.
"""

from __future__ import annotations

import gzip
import html
import io
import math
import re
import zlib
from itertools import islice, pairwise
from pathlib import Path
from urllib.parse import unquote_plus

import numpy as np
import polars as pl

from ticdata.columns import ColumnMap
from ticdata.errors import UserError
from ticdata.sources import InputFile

KIND = "yfcc"
# The original yfcc100m_dataset layout, mapped to the YFCC15M header names.
FULL_COLUMNS = (
    "line", "photoid", "hash", "uid", "unickname", "datetaken", "dateuploaded", "capturedevice", "title",
    "description", "usertags", "machinetags", "longitude", "latitude", "accuracy", "pageurl",
    "downloadurl", "licensename", "licenseurl", "serverid", "farmid", "secret", "secretoriginal", "ext",
    "marker",
)  # fmt: skip
# Yahoo Webscope's original file has 23 columns: the same without AWS's line number and hash.
WEBSCOPE_COLUMNS = tuple(c for c in FULL_COLUMNS if c not in ("line", "hash"))
REQUIRED = ("downloadurl", "title", "dateuploaded")
OPTIONAL = ("description", "marker", "photoid", "pageurl", "datetaken", "licensename")  # null when absent
SCHEMA = (
    ("url", pl.String),
    ("text", pl.String),
    ("dateuploaded", pl.Int64),
    ("photoid", pl.String),
    ("pageurl", pl.String),
    ("datetaken", pl.String),
    ("licensename", pl.String),
)
BLOCK = 1 << 20
SAMPLE = 1 << 20  # bytes read at the start of a plain file to estimate its line length
_TAG = re.compile(r"<[^>]*>")


def _fields(line: bytes) -> list[str]:
    return line.rstrip(b"\r\n").decode("utf-8", errors="replace").split("\t")


def sniff(path: Path, head: bytes) -> bool:
    first = head.split(b"\n", 1)[0]
    if b"\t" not in first:
        return False
    fields = _fields(first)
    return "dateuploaded" in fields or len(fields) in (len(FULL_COLUMNS), len(WEBSCOPE_COLUMNS))


def _is_gzip(path: str | Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _open(path: str | Path):
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


def _bad(path, e: BaseException) -> UserError:
    return UserError(f"{path}: cannot read the YFCC metadata ({e}); re-download it or remove it from the inputs")


def _layout(path: str | Path) -> tuple[tuple[str, ...], int]:
    """(column names, bytes of header line) from the file's first line."""
    try:
        with _open(path) as fh:
            first = fh.readline()
    except (OSError, EOFError, zlib.error) as e:
        raise _bad(path, e) from None
    fields = _fields(first)
    if "dateuploaded" in fields:
        return tuple(f.strip() for f in fields), len(first)
    if len(fields) == len(FULL_COLUMNS):
        return FULL_COLUMNS, 0
    if len(fields) == len(WEBSCOPE_COLUMNS):
        return WEBSCOPE_COLUMNS, 0
    raise UserError(
        f"{path}: not YFCC metadata (first line has {len(fields)} tab-separated fields; expected a header with "
        f"dateuploaded, the 23 columns of Webscope's yfcc100m_dataset or the 25 of its AWS copy); fix the file or remove it from the inputs"
    )


def inspect(path: Path, columns: ColumnMap) -> InputFile:
    names, _ = _layout(path)
    for col in REQUIRED:
        if col not in names:
            raise UserError(f"{path}: missing column '{col}' in the YFCC header ({', '.join(names)}); add it or re-export the file")
    return InputFile(path=str(path), kind=KIND, size=path.stat().st_size, rows=None, schema=SCHEMA)


def chunks(f: InputFile, chunk_rows: int) -> list[tuple[int, int]]:
    """Byte ranges (start, end) of a plain file, from its size; (offset, n lines) runs of a gzip one."""
    _, offset = _layout(f.path)
    chunk_rows = max(1, chunk_rows)
    try:
        if _is_gzip(f.path):
            return _line_runs(f.path, offset, chunk_rows)
        return _byte_ranges(f.path, offset, f.size, chunk_rows)
    except (OSError, EOFError, zlib.error) as e:
        raise _bad(f.path, e) from None


def _byte_ranges(path: str, offset: int, size: int, chunk_rows: int) -> list[tuple[int, int]]:
    """Equal ranges of about chunk_rows lines over [offset, size): only the first MiB is read."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        sample = fh.read(SAMPLE)
    per_line = len(sample) / max(1, sample.count(b"\n"))
    body = max(0, size - offset)
    n = max(1, math.ceil(body / max(1.0, chunk_rows * per_line)))
    cuts = [offset + body * k // n for k in range(n + 1)]
    return list(pairwise(cuts))


def _line_runs(path: str, offset: int, chunk_rows: int) -> list[tuple[int, int]]:
    """(offset, n lines) runs of chunk_rows lines: one pass over the decompressed text, no Python per line."""
    specs, start, lines, base, last = [], offset, 0, offset, b"\n"
    with gzip.open(path, "rb") as fh:
        fh.seek(offset)
        while block := fh.read(BLOCK):
            n, last = block.count(b"\n"), block[-1:]
            if lines + n >= chunk_rows:  # chunks end inside this block: after these newlines
                ends = np.flatnonzero(np.frombuffer(block, np.uint8) == ord("\n"))
                for cut in ends[chunk_rows - lines - 1 :: chunk_rows]:
                    specs.append((start, chunk_rows))
                    start = base + int(cut) + 1
            lines = (lines + n) % chunk_rows
            base += len(block)
    lines += last != b"\n"  # a final line without newline
    if lines or not specs:
        specs.append((start, lines))
    return specs


def _owned(fh, offset: int, start: int, end: int) -> bytes:
    """The raw lines that start in [start, end) of a plain file whose records begin at offset."""
    start = max(start, offset)
    fh.seek(max(start - 1, offset))
    if start > offset:
        fh.readline()  # the line holding byte start-1 (or ending there) is the previous range's
        start = fh.tell()
    if start >= end:
        return b""
    data = fh.read(end - start)
    if data and not data.endswith(b"\n"):
        data += fh.readline()  # the last line started before end: finish it
    return data


def _clean(raw: bytes) -> bytes:
    """Drop blank lines and CRs (CRLF would leave \\r in the last column); end with one newline."""
    if b"\r" in raw or b"\n\n" in raw or raw[:1] == b"\n":
        return b"".join(line.rstrip(b"\r") + b"\n" for line in raw.split(b"\n") if line.strip(b"\r"))
    return raw if not raw or raw.endswith(b"\n") else raw + b"\n"


def _decode(value: str | None) -> str:
    return " ".join(unquote_plus(value or "").split())


def _text(title: str | None, description: str | None) -> str:
    desc = _decode(description)
    desc = " ".join(html.unescape(_TAG.sub(" ", desc)).split())
    return ". ".join(p for p in (_decode(title), desc) if p)


def read(f: InputFile, spec: tuple[int, int], columns: ColumnMap) -> tuple[pl.DataFrame, dict[str, int]]:
    names, offset = _layout(f.path)
    try:
        if _is_gzip(f.path):
            with gzip.open(f.path, "rb") as fh:
                fh.seek(spec[0])
                raw = b"".join(islice(fh, spec[1]))
        else:
            with open(f.path, "rb") as fh:
                raw = _owned(fh, offset, *spec)
    except (OSError, EOFError, zlib.error) as e:
        raise _bad(f.path, e) from None
    data = _clean(raw)  # blank lines are not records
    if data:
        df = pl.read_csv(
            io.BytesIO(data), has_header=False, new_columns=list(names), separator="\t", quote_char=None,
            infer_schema=False, truncate_ragged_lines=True, empty_string_is_null=False,
            encoding="utf8-lossy",  # a byte that is not UTF-8 becomes U+FFFD, as in the sniffing above
        )  # fmt: skip
    else:
        df = pl.DataFrame(schema={n: pl.String for n in names})
    df = df.with_columns(pl.lit(None, pl.String).alias(c) for c in OPTIONAL if c not in df.columns)
    video = df["marker"].str.strip_chars() == "1"
    videos = int(video.sum() or 0)
    df = df.filter(~video.fill_null(False))
    text = [_text(t, d) for t, d in zip(df["title"].to_list(), df["description"].to_list())]
    out = df.select(
        pl.col("downloadurl").alias("url"),
        pl.Series("text", text, dtype=pl.String),
        pl.col("dateuploaded").str.strip_chars().cast(pl.Int64, strict=False),
        "photoid",
        "pageurl",
        "datetaken",
        "licensename",
    )
    return out.select([pl.col(n).cast(t) for n, t in SCHEMA]), {"dropped:video": videos}
