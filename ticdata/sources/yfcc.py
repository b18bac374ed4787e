"""YFCC100M metadata: the headerless yfcc100m_dataset file (Webscope's 23 columns, or the AWS copy's
25 with a line number and hash added) or a TSV with a header (YFCC15M).

A photo is one pair: its download URL and its URL-encoded title + description, decoded. Videos
(marker 1) are not image pairs: skipped and counted. Upload time stays raw epoch seconds.

Chunks: `chunks()` makes one streaming pass that counts lines and notes the byte offset of every
chunk_rows-th line, so a spec is (byte_offset, n_lines) in the decompressed text. A plain file seeks
straight there; a gzip file re-inflates up to the offset (in C, no Python per line) — cheap next to
holding 100M rows at once, and each task holds only its own lines. Blank lines are not records.
A header TSV needs downloadurl, title and dateuploaded; the other output columns are null when absent.
"""

from __future__ import annotations

import gzip
import html
import io
import re
import zlib
from itertools import islice
from pathlib import Path
from urllib.parse import unquote_plus

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
_TAG = re.compile(r"<[^>]*>")


def _fields(line: bytes) -> list[str]:
    return line.rstrip(b"\r\n").decode("utf-8", errors="replace").split("\t")


def sniff(path: Path, head: bytes) -> bool:
    first = head.split(b"\n", 1)[0]
    if b"\t" not in first:
        return False
    fields = _fields(first)
    return "dateuploaded" in fields or len(fields) in (len(FULL_COLUMNS), len(WEBSCOPE_COLUMNS))


def _open(path: str | Path):
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


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
    """(byte offset, n lines) runs of chunk_rows lines, found in one pass over the decompressed text."""
    _, offset = _layout(f.path)
    chunk_rows = max(1, chunk_rows)
    specs, start, lines, pos, last = [], offset, 0, offset, b"\n"
    try:
        with _open(f.path) as fh:
            fh.seek(offset)
            while block := fh.read(BLOCK):
                n, last = block.count(b"\n"), block[-1:]
                while lines + n >= chunk_rows:  # a chunk ends inside this block
                    cut = -1
                    for _ in range(chunk_rows - lines):
                        cut = block.index(b"\n", cut + 1)
                    specs.append((start, chunk_rows))
                    start = pos + cut + 1
                    n -= chunk_rows - lines
                    lines = 0
                    pos, block = start, block[cut + 1 :]
                lines += n
                pos += len(block)
    except (OSError, EOFError, zlib.error) as e:
        raise _bad(f.path, e) from None
    lines += last != b"\n"  # a final line without newline
    if lines or not specs:
        specs.append((start, lines))
    return specs


def _decode(value: str | None) -> str:
    return " ".join(unquote_plus(value or "").split())


def _text(title: str | None, description: str | None) -> str:
    desc = _decode(description)
    desc = " ".join(html.unescape(_TAG.sub(" ", desc)).split())
    return ". ".join(p for p in (_decode(title), desc) if p)


def read(f: InputFile, spec: tuple[int, int], columns: ColumnMap) -> tuple[pl.DataFrame, dict[str, int]]:
    names, _ = _layout(f.path)
    offset, n_lines = spec
    try:
        with _open(f.path) as fh:
            fh.seek(offset)
            # blank lines are not records; CRLF files would leave \r in the last column
            data = b"".join(line.rstrip(b"\r\n") + b"\n" for line in islice(fh, n_lines) if line.strip(b"\r\n"))
    except (OSError, EOFError, zlib.error) as e:
        raise _bad(f.path, e) from None
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
