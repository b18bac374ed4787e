"""CommonCrawl WARC and WAT files (gzip or plain): every image with alt text on a captured page is a pair.

WARC `response` records holding HTML give `<img src alt>` pairs; WAT `metadata` records give the
`IMG@/src` links CommonCrawl already extracted. Each row keeps its capture's WARC-Date (`crawl_time`),
the crawl id (`snapshot`) and the file path (`source`) as timestamp evidence; dating is recover's job.
One chunk per file: warcio streams record by record, so memory holds one record plus the pairs.
Stats: records, pages (HTML responses / WAT records with HTML-Metadata), images (img tags or IMG@/src
links with a non-data: src), images_without_alt (not pairs), and bad_json (WAT records that are not
JSON) when there are any; `dropped:bad_record` counts WAT records whose JSON has a wrong type where
the WAT layout has a fixed one (a list as WARC-Target-URI, a number as an alt), each one dropped input.
A file cut short (a record shorter than its Content-Length, or a gzip member without its end) is a
UserError for the whole file, as is a corrupt gzip stream. gzip files are decompressed by Python's
gzip module and handed to warcio as plain WARC, so a file compressed as one gzip stream (not one
member per record) reads like a per-record one.

Text: HTML attribute values are entity-decoded once, by the HTML parser (selectolax's lexbor backend,
which follows the HTML spec's tokenizer and tree builder); WAT alt values are used as written, since
CommonCrawl's WAT writer has already decoded them (the same page as WARC and as WAT gives the same
pairs). A page's encoding follows the WHATWG order (BOM, HTTP charset, meta prescan, UTF-8): see
`ticdata.sources.htmlcharset`.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import urljoin

import polars as pl
from selectolax.lexbor import LexborHTMLParser
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.limitreader import LimitReader
from warcio.statusandheaders import StatusAndHeadersParserException

from ticdata.columns import ColumnMap
from ticdata.errors import UserError
from ticdata.snapshots import find_snapshot_id
from ticdata.sources import InputFile, htmlcharset

KIND = "warc"
SCHEMA = (
    ("url", pl.String),
    ("text", pl.String),
    ("crawl_time", pl.String),
    ("snapshot", pl.String),
    ("source", pl.String),
    ("page_url", pl.String),
)
HTML_TYPES = ("text/html", "application/xhtml+xml")
BLOCK = 1 << 16
GZIP_MAGIC = b"\x1f\x8b"


class _BadGzip(Exception):
    """The gzip layer of a file is cut short or corrupt. Not an EOFError: warcio takes an EOFError
    while it reads a record header for the clean end of the file, which would hide the cut."""


class _Gunzip:
    """A gzip file's decompressed bytes (every member, however the file was compressed), for warcio."""

    def __init__(self, fh) -> None:
        self._gz = gzip.GzipFile(fileobj=fh, mode="rb")

    def read(self, size: int = -1) -> bytes:
        try:
            return self._gz.read(size)
        except EOFError:
            raise _BadGzip(
                "truncated: the gzip data ends before its end marker, so the file was cut short (an interrupted download?)"
            ) from None
        except (OSError, zlib.error) as e:
            raise _BadGzip(f"corrupt gzip data ({e})") from None


class _BadRecord(Exception):
    """A WAT record whose JSON has a wrong type where the WAT layout has a fixed one."""


# What warcio raises on a file that is not WARC or is cut short (AttributeError: a header block
# cut before WARC-Target-URI makes warcio call None.startswith).
_WARCIO_ERRORS = (
    _BadGzip, ArchiveLoadFailed, StatusAndHeadersParserException, OSError, EOFError, zlib.error, ValueError, AttributeError
)


def sniff(path: Path, head: bytes) -> bool:
    return head.startswith(b"WARC/")


def _bad(path: Path | str, e: BaseException | str) -> UserError:
    if isinstance(e, AttributeError):
        e = "truncated or malformed record header"
    if isinstance(e, _BadGzip):
        return UserError(f"{path}: {e}; re-download it or remove it from the inputs")
    why = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
    return UserError(f"{path}: not a readable WARC/WAT file ({why}); re-download it or remove it from the inputs")


def _records(path: Path | str) -> Iterator:
    """warcio records, streamed; a record shorter than its Content-Length (a truncated file) is an error."""
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == GZIP_MAGIC
        fh.seek(0)
        it = iter(ArchiveIterator(_Gunzip(fh) if gzipped else fh))
        while True:
            try:
                rec = next(it)
            except StopIteration:
                return
            except _WARCIO_ERRORS as e:
                raise _bad(path, e) from None
            yield rec
            _finish(path, rec)


def _finish(path: Path | str, rec) -> None:
    """Read a record to its end; fewer bytes than its Content-Length means the file was cut short."""
    if rec.rec_headers.get_header("Content-Length") is None:  # mandatory in WARC: the header was cut
        raise _bad(path, "truncated or malformed record header (no Content-Length)")
    try:
        while rec.raw_stream.read(BLOCK):
            pass
    except _WARCIO_ERRORS as e:
        raise _bad(path, e) from None
    if isinstance(rec.raw_stream, LimitReader) and rec.raw_stream.limit > 0:
        raise _bad(path, f"record {rec.rec_headers.get_header('WARC-Record-ID')} is truncated")


def _content(path: Path | str, rec) -> Iterator[bytes]:
    """A record's payload in blocks (HTTP chunking and content encoding undone by warcio)."""
    try:
        stream = rec.content_stream()
        while block := stream.read(BLOCK):
            yield block
    except _WARCIO_ERRORS as e:
        raise _bad(path, e) from None


def inspect(path: Path, columns: ColumnMap) -> InputFile:
    """Read the first record through, so a non-WARC gzip or a cut-off header fails here, before any work."""
    try:
        size = path.stat().st_size
        with closing(_records(path)) as records:
            first = next(records, None)
            if first is None:
                raise _bad(path, "no WARC records: empty or truncated")
            _finish(path, first)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror}); check the path and its permissions")
    return InputFile(path=str(path), kind=KIND, size=size, rows=None, schema=SCHEMA)


def chunks(f: InputFile, chunk_rows: int) -> list[tuple]:
    """One chunk per file: WARC records can only be found by reading from the start."""
    return [()]


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def _uri(value: str | None) -> str | None:
    return value.strip().strip("<>") if value else None


def _join(base: str, url: str) -> str:
    """url made absolute against base; a malformed URL (e.g. a broken IPv6 host) is kept as written."""
    try:
        return urljoin(base, url)
    except ValueError:
        return url


def _html_images(path: Path | str, rec, content_type: str) -> tuple[str | None, list[tuple[str, str]]]:
    """(base URL, images) of one HTML page: (src, alt) of every <img> element and the href of the first
    <base> with a non-blank one, src and href stripped, alt cleaned. The page is decoded in the WHATWG
    order (BOM, HTTP charset, meta prescan of the first 1024 bytes, UTF-8) and parsed by lexbor, which
    builds the tree the HTML spec's parser builds, scripting off as in a crawler: the first of duplicate
    attributes wins, `&copy=2` in an attribute stays as written, and an <img> in a comment, <script>,
    <textarea>, <title> or <template> is text or outside the document, not an image."""
    payload = b"".join(_content(path, rec))
    codec, bom = htmlcharset.sniff(payload[: htmlcharset.PRESCAN_BYTES], content_type)
    tree = LexborHTMLParser(payload[bom:].decode(codec, errors="replace"))
    base = next((href for node in tree.tags("base") if (href := (node.attrs.get("href") or "").strip())), None)
    images = []
    for node in tree.tags("img"):
        attrs = node.attrs
        images.append(((attrs.get("src") or "").strip(), _clean(attrs.get("alt"))))
    return base, images


def _field(obj: dict, key: str, kind: type):
    """obj[key] when it has the WAT layout's type, None when absent or null; another type is a bad record."""
    value = obj.get(key)
    if value is None or isinstance(value, kind):
        return value
    raise _BadRecord(f"{key} is a JSON {type(value).__name__}, not a {kind.__name__}")


def _wat_images(meta) -> tuple[str | None, str | None, str | None, list[tuple[str, str]]] | None:
    """(page URL, capture date, base, images) of one WAT record, or None when it holds no HTML metadata.
    Alt values are used as written: CommonCrawl's WAT writer has already decoded their entities."""
    if not isinstance(meta, dict):
        raise _BadRecord("the record is not a JSON object")
    envelope = _field(meta, "Envelope", dict)
    if envelope is None:
        raise _BadRecord("no Envelope")
    header = _field(envelope, "WARC-Header-Metadata", dict) or {}
    page, date = _field(header, "WARC-Target-URI", str), _field(header, "WARC-Date", str)
    payload = _field(envelope, "Payload-Metadata", dict) or {}
    response = _field(payload, "HTTP-Response-Metadata", dict) or {}
    html = _field(response, "HTML-Metadata", dict)
    if html is None:
        return None
    base = _field(_field(html, "Head", dict) or {}, "Base", str)
    images = []
    for link in _field(html, "Links", list) or []:
        if not isinstance(link, dict):
            raise _BadRecord("a link is not a JSON object")
        if link.get("path") == "IMG@/src":
            images.append(((_field(link, "url", str) or "").strip(), _clean(_field(link, "alt", str))))
    return _uri(page), date, base, images


def read(f: InputFile, spec: tuple, columns: ColumnMap) -> tuple[pl.DataFrame, dict[str, int]]:
    snapshot = find_snapshot_id(f.path)
    stats = {"records": 0, "pages": 0, "images": 0, "images_without_alt": 0}
    rows: dict[str, list] = {name: [] for name, _ in SCHEMA}
    for rec in _records(f.path):
        stats["records"] += 1
        kind = rec.rec_type
        if kind == "warcinfo":
            fields = b"".join(_content(f.path, rec)).decode("utf-8", errors="replace")
            for line in fields.splitlines():
                key, _, value = line.partition(":")
                if key.strip().lower() == "ispartof":
                    snapshot = find_snapshot_id(value) or snapshot
            continue
        if kind == "response" and rec.http_headers is not None:
            content_type = rec.http_headers.get_header("Content-Type") or ""
            if content_type.split(";")[0].strip().lower() not in HTML_TYPES:
                continue
            page = _uri(rec.rec_headers.get_header("WARC-Target-URI"))
            date = rec.rec_headers.get_header("WARC-Date")
            base, images = _html_images(f.path, rec, content_type)
        elif kind == "metadata" and "json" in (rec.rec_headers.get_header("Content-Type") or ""):
            try:
                meta = json.loads(b"".join(_content(f.path, rec)))
            except (ValueError, RecursionError):  # RecursionError: JSON nested too deep to parse
                stats["bad_json"] = stats.get("bad_json", 0) + 1
                continue
            try:
                found = _wat_images(meta)
            except _BadRecord:
                stats["dropped:bad_record"] = stats.get("dropped:bad_record", 0) + 1
                continue
            if found is None:
                continue
            page, date, base, images = found
        else:
            continue
        stats["pages"] += 1
        page_base = _join(page or "", base) if base else (page or "")
        for src, alt in images:
            if not src or src.lower().startswith("data:"):
                continue
            stats["images"] += 1
            if not alt:
                stats["images_without_alt"] += 1
                continue
            for name, value in zip(rows, (_join(page_base, src), alt, date, snapshot, f.path, page)):
                rows[name].append(value)
    return pl.DataFrame(rows, schema=dict(SCHEMA)), stats
