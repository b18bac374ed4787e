"""CommonCrawl WARC and WAT files (gzip or plain): every image with alt text on a captured page is a pair.

WARC `response` records holding HTML give `<img src alt>` pairs; WAT `metadata` records give the
`IMG@/src` links CommonCrawl already extracted. Each row keeps its capture's WARC-Date (`crawl_time`),
the crawl id (`snapshot`) and the file path (`source`) as timestamp evidence; dating is recover's job.
One chunk per file: warcio streams record by record, so memory holds one record plus the pairs.
Stats: records, pages (HTML responses / WAT records with HTML-Metadata), images (img tags or IMG@/src
links with a non-data: src), images_without_alt (not pairs), and bad_json (WAT records that are not
JSON) when there are any. A record cut short is a UserError for the whole file.
"""

from __future__ import annotations

import codecs
import json
import zlib
from collections.abc import Iterator
from contextlib import closing
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import polars as pl
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.limitreader import LimitReader
from warcio.statusandheaders import StatusAndHeadersParserException

from ticdata.columns import ColumnMap
from ticdata.errors import UserError
from ticdata.snapshots import find_snapshot_id
from ticdata.sources import InputFile

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
# What warcio raises on a file that is not WARC or is cut short (AttributeError: a header block
# cut before WARC-Target-URI makes warcio call None.startswith).
_WARCIO_ERRORS = (ArchiveLoadFailed, StatusAndHeadersParserException, OSError, EOFError, zlib.error, ValueError, AttributeError)


def sniff(path: Path, head: bytes) -> bool:
    return head.startswith(b"WARC/")


def _bad(path: Path | str, e: BaseException | str) -> UserError:
    if isinstance(e, AttributeError):
        e = "truncated or malformed record header"
    why = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
    return UserError(f"{path}: not a readable WARC/WAT file ({why}); re-download it or remove it from the inputs")


def _records(path: Path | str) -> Iterator:
    """warcio records, streamed; a record shorter than its Content-Length (a truncated file) is an error."""
    with open(path, "rb") as fh:
        it = iter(ArchiveIterator(fh))
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


class _Images(HTMLParser):
    """Collects (src, alt) of every <img> and the first <base href>; attribute entities are decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.images: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            a = dict(attrs)
            self.images.append(((a.get("src") or "").strip(), _clean(a.get("alt"))))
        elif tag == "base" and self.base is None:
            self.base = (dict(attrs).get("href") or "").strip() or None

    handle_startendtag = handle_starttag


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            try:
                return codecs.lookup(value.strip().strip("'\"")).name
            except LookupError:
                break
    return "utf-8"


def _html_images(path: Path | str, rec, content_type: str) -> tuple[str | None, list[tuple[str, str]]]:
    """(base URL, images) of one HTML page, fed to the parser block by block."""
    decoder = codecs.getincrementaldecoder(_charset(content_type))(errors="replace")
    parser = _Images()
    for block in _content(path, rec):
        parser.feed(decoder.decode(block))
    parser.feed(decoder.decode(b"", final=True))
    parser.close()
    return parser.base, parser.images


def _dig(obj, *keys):
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj


def _wat_images(meta: dict) -> tuple[str | None, str | None, str | None, list[tuple[str, str]]] | None:
    """(page URL, capture date, base, images) of one WAT record, or None when it holds no HTML metadata."""
    envelope = meta.get("Envelope")
    html = _dig(envelope, "Payload-Metadata", "HTTP-Response-Metadata", "HTML-Metadata")
    if not isinstance(html, dict):
        return None
    header = _dig(envelope, "WARC-Header-Metadata") or {}
    base = _dig(html, "Head", "Base")
    images = [
        (str(link.get("url") or "").strip(), _clean(unescape(str(link.get("alt") or ""))))
        for link in html.get("Links") or []
        if isinstance(link, dict) and link.get("path") == "IMG@/src"
    ]
    return _uri(header.get("WARC-Target-URI")), header.get("WARC-Date"), base if isinstance(base, str) else None, images


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
            except ValueError:
                stats["bad_json"] = stats.get("bad_json", 0) + 1
                continue
            found = _wat_images(meta) if isinstance(meta, dict) else None
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
