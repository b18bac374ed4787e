"""The WARC/WAT reader on CommonCrawl's real whirlwind sample and on small files written with warcio."""

from __future__ import annotations

import gzip
import io
import json
import shutil
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from ticdata.columns import ColumnMap
from ticdata.errors import UserError
from ticdata.sources import commoncrawl, detect_kind, inspect_inputs

DATA = Path("/work/shared/data/commoncrawl")
WARC = DATA / "whirlwind.warc.gz"
WAT = DATA / "whirlwind.warc.wat.gz"
COLS = ColumnMap()


def read_file(path: Path):
    f = commoncrawl.inspect(path, COLS)
    assert commoncrawl.chunks(f, 10) == [()]
    df, stats = commoncrawl.read(f, (), COLS)
    assert df.columns == f.columns == ["url", "text", "crawl_time", "snapshot", "source", "page_url"]
    return df, stats


def pairs(df) -> dict[str, str]:
    return dict(zip(df["text"], df["url"]))


def test_real_warc_pairs():
    df, stats = read_file(WARC)
    got = pairs(df)
    assert got["Escudo d'armas"].startswith("https://upload.wikimedia.org/wikipedia/commons/thumb/0/0a/")
    assert got["Wikimedia Foundation"] == "https://an.wikipedia.org/static/images/footer/wikimedia-button.png"
    assert got["Escopete"].startswith("https://upload.wikimedia.org/")
    assert set(df["crawl_time"]) == {"2024-05-18T01:58:10Z"}
    assert set(df["snapshot"]) == {"CC-MAIN-2024-22"}
    assert set(df["source"]) == {str(WARC)}
    assert set(df["page_url"]) == {"https://an.wikipedia.org/wiki/Escopete"}
    assert all(t.strip() for t in df["text"])
    assert all(u.startswith("https://") for u in df["url"])


def test_real_warc_images_without_alt_are_counted_not_pairs():
    df, stats = read_file(WARC)
    assert stats["records"] == 4 and stats["pages"] == 1
    assert stats["images_without_alt"] >= 5  # the flags, the church photo, the translate icon, the logo, the pixel
    assert stats["images"] == df.height + stats["images_without_alt"]
    assert not any("Translate_icon" in u or "Flag_of_Spain" in u for u in df["url"])


def test_real_wat_parses_with_no_pairs():
    df, stats = read_file(WAT)
    assert df.height == 0
    assert stats == {"records": 2, "pages": 0, "images": 0, "images_without_alt": 0}


def _wat_links() -> list[dict]:
    return [
        # WAT alt values are already entity-decoded by CommonCrawl's WAT writer: "&amp;" here is what
        # the page's text said (it was "&amp;amp;" in the HTML), so it is kept as written.
        {"path": "IMG@/src", "url": "/img/cat.jpg", "alt": "A &amp; B\n  cat "},
        {"path": "IMG@/src", "url": "//cdn.example.org/dog.png", "alt": "dog"},
        {"path": "IMG@/src", "url": "https://other.example.com/bird.gif", "alt": "bird"},
        {"path": "IMG@/src", "url": "https://other.example.com/noalt.gif"},
        {"path": "IMG@/src", "url": "https://other.example.com/blank.gif", "alt": "   "},
        {"path": "A@/href", "url": "https://example.com/link", "text": "a link, not an image"},
    ]


def _envelope(uri: str, date: str, html: dict | None) -> dict:
    payload = {"Actual-Content-Type": "application/http; msgtype=response"}
    if html is not None:
        payload["HTTP-Response-Metadata"] = {"HTML-Metadata": html}
    return {
        "Envelope": {
            "WARC-Header-Metadata": {"WARC-Type": "response", "WARC-Date": date, "WARC-Target-URI": uri},
            "Payload-Metadata": payload,
        }
    }


def write_wat(path: Path, records: list[dict | bytes], outer_date: str = "2020-01-10T00:00:00Z") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        w.write_record(w.create_warcinfo_record(path.name, {"software": "test", "format": "WARC File Format 1.0"}))
        for doc in records:
            uri = doc["Envelope"]["WARC-Header-Metadata"]["WARC-Target-URI"] if isinstance(doc, dict) else "https://x.example/"
            rec = w.create_warc_record(
                uri,
                "metadata",
                payload=io.BytesIO(json.dumps(doc).encode() if isinstance(doc, dict) else doc),
                warc_content_type="application/json",
                warc_headers_dict={"WARC-Date": outer_date},
            )
            w.write_record(rec)
    return path


def test_wat_links_dates_and_snapshot_from_path(tmp_path):
    path = tmp_path / "crawl-data/CC-MAIN-2019-51/segments/1/wat/CC-MAIN-20191206-00001.warc.wat.gz"
    write_wat(
        path,
        [
            _envelope("https://www.example.com/pets/index.html", "2019-12-06T10:11:12Z", {"Head": {"Title": "Pets"}, "Links": _wat_links()}),
            _envelope("https://site.example/page", "2019-12-07T00:00:01Z", {"Head": {"Base": "https://static.example.net/sub/"}, "Links": [{"path": "IMG@/src", "url": "x.jpg", "alt": "based"}]}),
            _envelope("https://site.example/request", "2019-12-07T00:00:02Z", None),  # no HTML-Metadata: no pairs
            b'{"Envelope": {"Payload-Metadata": ',  # a record with broken JSON is counted, not fatal
        ],
    )
    assert detect_kind(path) == "warc"
    df, stats = read_file(path)
    assert pairs(df) == {
        "A &amp; B cat": "https://www.example.com/img/cat.jpg",
        "dog": "https://cdn.example.org/dog.png",
        "bird": "https://other.example.com/bird.gif",
        "based": "https://static.example.net/sub/x.jpg",
    }
    times = dict(zip(df["text"], df["crawl_time"]))
    assert times["dog"] == "2019-12-06T10:11:12Z"  # the inner capture date, not the WAT record's own date
    assert times["based"] == "2019-12-07T00:00:01Z"
    assert set(df["snapshot"]) == {"CC-MAIN-2019-51"}
    assert set(df["source"]) == {str(path)}
    assert stats == {"records": 5, "pages": 2, "images": 6, "images_without_alt": 2, "bad_json": 1}


def _response(w: WARCWriter, uri: str, body: bytes, content_type: str, date: str):
    http = StatusAndHeaders("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))], protocol="HTTP/1.1")
    return w.create_warc_record(uri, "response", payload=io.BytesIO(body), http_headers=http, warc_headers_dict={"WARC-Date": date})


def test_plain_warc_base_href_charset_and_skips(tmp_path):
    html = (
        '<html><head><base href="https://cdn.example.com/assets/"></head><body>'
        '<img src="pic.png" alt="Caf\xe9  au&nbsp;lait">'
        '<img src="data:image/png;base64,AAAA" alt="inline">'
        '<img src="/abs.png" alt="rooted" />'
        '<img src="http://[broken/x.png" alt="broken host">'
        "<script>var s = '<img src=\"fake.png\" alt=\"not markup\">';</script>"
        "</body></html>"
    ).encode("latin-1")
    path = tmp_path / "CC-MAIN-2021-04" / "sample.warc"  # the warcinfo's isPartOf wins over the path
    path.parent.mkdir()
    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=False)
        w.write_record(w.create_warcinfo_record("sample.warc", {"isPartOf": "CC-MAIN-2023-50"}))
        w.write_record(_response(w, "https://www.example.com/cafe", html, "text/html; charset=ISO-8859-1", "2023-12-01T00:00:00Z"))
        w.write_record(_response(w, "https://www.example.com/pic.png", b"\x89PNG<img src=x alt=y>", "image/png", "2023-12-01T00:00:01Z"))
    assert path.read_bytes().startswith(b"WARC/")
    assert detect_kind(path) == "warc"
    df, stats = read_file(path)
    assert pairs(df) == {
        "Caf\xe9 au lait": "https://cdn.example.com/assets/pic.png",
        "rooted": "https://cdn.example.com/abs.png",
        "broken host": "http://[broken/x.png",  # kept as written: dropping bad values is recover's job
    }
    assert set(df["snapshot"]) == {"CC-MAIN-2023-50"}
    assert set(df["crawl_time"]) == {"2023-12-01T00:00:00Z"}
    assert stats == {"records": 3, "pages": 1, "images": 3, "images_without_alt": 0}


def test_snapshot_is_null_without_warcinfo_or_path_id(tmp_path):
    path = write_wat(tmp_path / "plain-name.wat.gz", [_envelope("https://a.example/", "2019-01-01T00:00:00Z", {"Links": [{"path": "IMG@/src", "url": "i.png", "alt": "i"}]})])
    df, _ = read_file(path)
    assert df["snapshot"].to_list() == [None]
    assert df["url"].to_list() == ["https://a.example/i.png"]


def _one_line_user_error(exc: pytest.ExceptionInfo, path: Path) -> None:
    msg = str(exc.value)
    assert str(path) in msg and "\n" not in msg


def test_gzip_of_random_text_is_a_user_error(tmp_path):
    path = tmp_path / "random.warc.gz"
    path.write_bytes(gzip.compress(b"just some text\nthat is not a WARC file\n" * 50))
    with pytest.raises(UserError) as e:
        detect_kind(path)
    _one_line_user_error(e, path)
    with pytest.raises(UserError) as e:
        commoncrawl.inspect(path, COLS)
    _one_line_user_error(e, path)


@pytest.mark.parametrize("n_bytes", [0, 40, 100, 300])
def test_truncated_first_record_fails_inspect(tmp_path, n_bytes):
    path = tmp_path / "cut.warc.gz"
    path.write_bytes(WARC.read_bytes()[:n_bytes])
    with pytest.raises(UserError) as e:
        commoncrawl.inspect(path, COLS)
    _one_line_user_error(e, path)


@pytest.mark.parametrize("n_bytes", [600, 1000, 10000, 18000])
def test_truncated_later_record_fails_read(tmp_path, n_bytes):
    path = tmp_path / "cut.warc.gz"
    path.write_bytes(WARC.read_bytes()[:n_bytes])  # warcinfo intact, a later record cut short
    # gzip is undone ahead of warcio's reads, so a cut near the start may already fail inspect
    with pytest.raises(UserError) as e:
        f = commoncrawl.inspect(path, COLS)
        commoncrawl.read(f, (), COLS)
    _one_line_user_error(e, path)
    assert "truncated" in str(e.value)


def test_plain_truncated_warc_fails(tmp_path):
    path = tmp_path / "cut.warc"
    path.write_bytes(gzip.decompress(WARC.read_bytes())[:20000])
    f = commoncrawl.inspect(path, COLS)
    with pytest.raises(UserError, match="truncated"):
        commoncrawl.read(f, (), COLS)


def test_inspect_inputs_on_a_folder(tmp_path):
    shutil.copy(WARC, tmp_path / "a.warc.gz")
    shutil.copy(WAT, tmp_path / "b.warc.wat.gz")
    files = inspect_inputs([str(tmp_path)], COLS)
    assert [(Path(f.path).name, f.kind, f.rows) for f in files] == [("a.warc.gz", "warc", None), ("b.warc.wat.gz", "warc", None)]
    assert files[0].size == WARC.stat().st_size


class _Page:
    """A record stand-in whose payload is in memory (what `_html_images` reads through `_content`)."""

    def __init__(self, html: str) -> None:
        self.payload = html.encode("utf-8")

    def content_stream(self):
        return io.BytesIO(self.payload)


# Hand-written pages where the WHATWG HTML parsing algorithm (scripting disabled, as in a crawler)
# fixes the result: (what, html, base, [(src, alt)] of the <img> elements in the document).
# Expectations come from the spec's tokenizer and tree-construction rules, cited by state or mode.
SPEC_CASES = [
    ("duplicate attribute: the first wins (duplicate-attribute parse error drops the later one)",
     '<img src="a.png" src="b.png" alt="x" alt="y">', None, [("a.png", "x")]),
    ("named reference without ';' followed by '=' or alphanumeric in an attribute is not decoded",
     '<img src="/i?a=1&copy=2&reg2" alt="x">', None, [("/i?a=1&copy=2&reg2", "x")]),
    ("'&copy ' decodes (missing semicolon before a space), '&notit;' is '&not' + 'it;' only outside attributes",
     '<img src="a.png" alt="&copy 2024, &copy; &notit; x">', None, [("a.png", "\xa9 2024, \xa9 &notit; x")]),
    ("numeric references: &#x80; is the euro sign (C1 table), &#0; is U+FFFD",
     '<img src="a.png" alt="Tom &amp Jerry &#128512; &#x80; &#0;">', None, [("a.png", "Tom & Jerry \U0001F600 \u20ac \ufffd")]),
    ("<textarea> and <title> hold text (RCDATA)",
     "<textarea><img src=t.png alt=t></textarea><title><img src=u.png alt=u></title>", None, []),
    ("<xmp>, <iframe>, <noembed>, <noframes> hold text (raw text)",
     ("<xmp><img src=x alt=x></xmp><iframe><img src=f alt=f></iframe><noembed><img src=e alt=e></noembed>"
      "<noframes><img src=g alt=g></noframes>"), None, []),
    ("<script> and <style> hold text", "<script>s='<img src=s.png alt=s>'</script><style><img src=y alt=y></style>", None, []),
    ("<plaintext> makes the rest of the page text", "<plaintext><img src=p alt=p>", None, []),
    ("a comment holds text", "<!-- <img src=c.png alt=c> -->", None, []),
    ("'<!-->' and '--!>' end a comment", "<!--><img src=d.png alt=d> <!-- x --!><img src=h.png alt=h>", None,
     [("d.png", "d"), ("h.png", "h")]),
    ("<template> content is not in the document, nor its <base>",
     "<template><base href=/t/><img src=t.png alt=t></template>", None, []),
    ("<noscript> content is markup with scripting disabled", "<noscript><img src=n.png alt=n></noscript>", None, [("n.png", "n")]),
    ("<img> inside <svg> breaks out to HTML; an SVG <image> is not an <img>",
     "<svg><image href=i.png /><img src=v.png alt=v></svg>", None, [("v.png", "v")]),
    ("an HTML <image> start tag becomes <img>", "<image src=im.png alt=im>", None, [("im.png", "im")]),
    ("a tag cut by the end of the file is dropped", "<p>x<img src=e.png alt=e", None, []),
    ("U+0000 in an attribute value is U+FFFD", '<img src=a.png alt="a\x00b">', None, [("a.png", "a\ufffdb")]),
    ("in an unquoted value '/' is a character (only whitespace or '>' ends it): src=a.png/ keeps it",
     "<img alt=b src=a.png/>", None, [("a.png/", "b")]),
    ("markup inside an attribute value is text", '<a title="<img src=q alt=q>">x</a>', None, []),
    ("names are case-insensitive; src stripped, alt whitespace collapsed, CR LF normalized",
     '<IMG SRC = " A.png\r\n" ALT=" x \r\n y ">', None, [("A.png", "x y")]),
    ("valueless attributes are empty", "<img src alt>", None, [("", "")]),
    # tic's rule, kept from the html.parser reader: the first <base> whose href is not blank
    ("base: the first non-blank href, wherever the <base> is",
     '<base target=_top><base href="  "><p><base href="/y/"><base href="/z/"><img src=a alt=a>', "/y/", [("a", "a")]),
]


@pytest.mark.parametrize("what, html, base, images", SPEC_CASES, ids=[c[0][:40] for c in SPEC_CASES])
def test_html_images_follow_the_html_spec(what, html, base, images):
    assert commoncrawl._html_images("<case>", _Page(html), "text/html; charset=utf-8") == (base, images)


def test_spec_edge_cases_through_read(tmp_path):
    """The spec's results reach the pairs: the first duplicate src, '&copy=2' kept in the resolved URL,
    no pair from a <textarea> or a <template>."""
    html = (
        b'<html><body><img src="/i?a=1&copy=2" alt="query"><img src="first.png" src="second.png" alt="dup">'
        b"<textarea><img src=t.png alt=textarea></textarea><template><img src=u.png alt=template></template>"
        b"</body></html>"
    )
    path = tmp_path / "edge.warc.gz"
    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        w.write_record(_response(w, "https://x.example/dir/page", html, "text/html", "2024-01-01T00:00:00Z"))
    df, stats = read_file(path)
    assert pairs(df) == {"query": "https://x.example/i?a=1&copy=2", "dup": "https://x.example/dir/first.png"}
    assert stats == {"records": 1, "pages": 1, "images": 2, "images_without_alt": 0}
