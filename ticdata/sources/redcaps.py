"""RedCaps annotation files ({"info": ..., "annotations": [...]}, optionally gzip): one Reddit post, one pair.

The text is the cleaned `caption`: an empty (or null) caption is RedCaps' deliberate removal of a
post's text, so the row has no text and is dropped with a counted reason, never filled from
`raw_caption` (used only by files that have no `caption` key at all); `created_utc` (post time, epoch seconds, a
float as Reddit gives it) is the timestamp evidence. A file is one JSON document (one subreddit-year,
tens of MB), so it is parsed whole: inspect validates it and records the exact row count, and
`chunks()` gives one chunk per file.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import polars as pl

from ticdata.columns import ColumnMap
from ticdata.errors import UserError
from ticdata.sources import InputFile

KIND = "redcaps"
SCHEMA = (
    ("url", pl.String),
    ("text", pl.String),
    ("created_utc", pl.Float64),
    ("image_id", pl.String),
    ("subreddit", pl.String),
    ("author", pl.String),
    ("permalink", pl.String),
)


def sniff(path: Path, head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") and b'"annotations"' in head


def _annotations(path: str | Path) -> list[dict]:
    """The file's annotation list; anything else is a UserError naming the file."""
    try:
        with open(path, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if gz else open(path, "rb") as fh:
            doc = json.load(fh)
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path}: cannot read ({e}); re-download it or remove it from the inputs") from None
    except ValueError as e:  # JSONDecodeError and bad UTF-8
        raise UserError(f"{path}: not valid JSON ({e}); re-download the RedCaps annotations or remove the file") from None
    except RecursionError:
        raise UserError(f"{path}: JSON nested too deep to be RedCaps annotations; re-download the file or remove it") from None
    anns = doc.get("annotations") if isinstance(doc, dict) else None
    if not isinstance(anns, list):
        raise UserError(f"{path}: no \"annotations\" list; expected a RedCaps annotation file {{\"info\": ..., \"annotations\": [...]}}")
    for i, a in enumerate(anns):
        if not isinstance(a, dict):
            raise UserError(f"{path}: annotation {i} is not a JSON object; fix or re-download the file")
    return anns


def inspect(path: Path, columns: ColumnMap) -> InputFile:
    rows = len(_annotations(path))
    return InputFile(path=str(path), kind=KIND, size=path.stat().st_size, rows=rows, schema=SCHEMA)


def chunks(f: InputFile, chunk_rows: int) -> list[tuple]:
    """One chunk per file: a JSON document cannot be split without parsing it."""
    return [()]


def _str(value) -> str | None:
    return None if value is None else str(value)


def _float(value) -> float | None:
    """Epoch seconds as a float; a value that is not a number is null (recover decides what to do)."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read(f: InputFile, spec: tuple, columns: ColumnMap) -> tuple[pl.DataFrame, dict[str, int]]:
    anns = _annotations(f.path)
    data = {
        "url": [_str(a.get("url")) for a in anns],
        "text": [_str(a["caption"] if "caption" in a else a.get("raw_caption")) for a in anns],
        "created_utc": [_float(a.get("created_utc")) for a in anns],
        **{k: [_str(a.get(k)) for a in anns] for k in ("image_id", "subreddit", "author", "permalink")},
    }
    return pl.DataFrame(data, schema=dict(SCHEMA)), {}
