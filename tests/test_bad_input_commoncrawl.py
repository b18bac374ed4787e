"""Bad and real-world CommonCrawl input (issue 12): a one-line error naming the file with exit 2, or a
counted drop with a balanced ledger; never a silent loss or a traceback. Inputs are built here."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from ticdata.cli import main
from ticdata.columns import ColumnMap
from ticdata.errors import UserError
from ticdata.ledger import Ledger
from ticdata.sources import commoncrawl, htmlcharset

DATA = Path("/work/shared/data/commoncrawl")
COLS = ColumnMap()
DATE = "2019-12-06T10:11:12Z"


def curate(inputs: list[Path], out: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main(["-q", "curate", *map(str, inputs), "--out", str(out), "--executor", "inline", *extra])
    return code, capsys.readouterr().err


def assert_one_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("tic: error: ") and "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def read(path: Path):
    f = commoncrawl.inspect(path, COLS)
    return commoncrawl.read(f, (), COLS)


def pairs(df) -> list[tuple[str, str]]:
    return sorted(zip(df["url"], df["text"]))


def response(w: WARCWriter, uri: str, body: bytes, content_type: str = "text/html"):
    http = StatusAndHeaders("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))], protocol="HTTP/1.1")
    return w.create_warc_record(uri, "response", payload=io.BytesIO(body), http_headers=http, warc_headers_dict={"WARC-Date": DATE})


def write_warc(path: Path, pages: list[tuple[str, bytes, str]], gzip_records: bool = True) -> Path:
    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=gzip_records)
        w.write_record(w.create_warcinfo_record(path.name, {"isPartOf": "CC-MAIN-2019-51"}))
        for uri, body, content_type in pages:
            w.write_record(response(w, uri, body, content_type))
    return path


def envelope(uri, links, date=DATE) -> dict:
    return {
        "Envelope": {
            "WARC-Header-Metadata": {"WARC-Type": "response", "WARC-Date": date, "WARC-Target-URI": uri},
            "Payload-Metadata": {"HTTP-Response-Metadata": {"HTML-Metadata": {"Head": {}, "Links": links}}},
        }
    }


def write_wat(path: Path, docs: list) -> Path:
    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        w.write_record(w.create_warcinfo_record(path.name, {"isPartOf": "CC-MAIN-2019-51"}))
        for doc in docs:
            body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
            rec = w.create_warc_record("https://x.example/", "metadata", payload=io.BytesIO(body), warc_content_type="application/json")
            w.write_record(rec)
    return path


def many_pages(n: int = 30) -> list[tuple[str, bytes, str]]:
    return [(f"https://site.example/p{i}", f'<img src="/i{i}.jpg" alt="picture {i}">'.encode(), "text/html") for i in range(n)]


# 1. Silent loss: a gzip file cut short is an error naming the file and saying to re-download it.


def _cut_sources(tmp_path: Path) -> list[Path]:
    wat = write_wat(tmp_path / "src.warc.wat.gz", [envelope(f"https://p{i}.example/", [{"path": "IMG@/src", "url": "a.jpg", "alt": f"a{i}"}]) for i in range(30)])
    return [DATA / "whirlwind.warc.gz", DATA / "whirlwind.warc.wat.gz", write_warc(tmp_path / "src.warc.gz", many_pages()), wat]


@pytest.mark.parametrize("fraction", [0.7, 0.9, 0.99])
def test_gzip_cut_short_is_an_error(tmp_path, capsys, fraction):
    for i, src in enumerate(_cut_sources(tmp_path)):
        data = src.read_bytes()
        cut = tmp_path / f"in{i}" / ("cut-" + src.name)
        cut.parent.mkdir()
        cut.write_bytes(data[: int(len(data) * fraction)])
        code, err = curate([cut], tmp_path / f"out{i}", capsys)
        assert code == 2, (src, fraction)
        assert_one_line(err, str(cut))
        if len(gzip.decompress(data)) > 8192:  # a format sniff needs the first 4 KiB (see the report on read_head)
            assert_one_line(err, "truncated", "re-download")
        code, err = curate([cut], tmp_path / f"out{i}", capsys, "--format", "warc")
        assert code == 2, (src, fraction)
        assert_one_line(err, str(cut), "truncated", "re-download")
        assert not (tmp_path / f"out{i}" / "manifest.json").exists()


def test_gzip_cut_in_the_last_trailer_is_an_error(tmp_path):
    for n in (1, 4, 8):  # inside the last member's CRC32/ISIZE trailer: every record is whole
        src = DATA / "whirlwind.warc.wat.gz"
        cut = tmp_path / f"trailer{n}.warc.wat.gz"
        cut.write_bytes(src.read_bytes()[:-n])
        with pytest.raises(UserError, match="truncated") as e:
            read(cut)
        assert str(cut) in str(e.value) and "\n" not in str(e.value)


def test_corrupt_gzip_is_an_error_not_a_stderr_note(tmp_path, capsys):
    src = write_warc(tmp_path / "src.warc.gz", many_pages())
    data = bytearray(src.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0x55
    bad = tmp_path / "in" / "corrupt.warc.gz"
    bad.parent.mkdir()
    bad.write_bytes(bytes(data))
    code, err = curate([bad], tmp_path / "out", capsys)
    assert code == 2
    assert_one_line(err, str(bad), "re-download")


def test_whole_files_still_read(tmp_path):
    df, stats = read(write_warc(tmp_path / "ok.warc.gz", many_pages()))
    assert df.height == 30 and stats["pages"] == 30


# 2. Wrong JSON types in a WAT record: a counted drop, not a traceback.


def test_wat_wrong_json_types_are_counted_drops(tmp_path, capsys):
    good = envelope("https://good.example/", [{"path": "IMG@/src", "url": "g.jpg", "alt": "good"}])
    bad = [
        envelope(["https://a.example/", "https://b.example/"], [{"path": "IMG@/src", "url": "x.jpg", "alt": "x"}]),  # URI is a list
        envelope({"u": 1}, []),  # URI is an object
        envelope("https://c.example/", [{"path": "IMG@/src", "url": "x.jpg", "alt": 5}]),  # alt is a number
        envelope("https://c.example/", [{"path": "IMG@/src", "url": ["x.jpg"], "alt": "x"}]),  # url is a list
        envelope("https://c.example/", ["IMG@/src"]),  # a link is a string
        envelope("https://c.example/", {"path": "IMG@/src"}),  # Links is an object
        envelope("https://c.example/", [], date=20191206),  # WARC-Date is a number
        {"Envelope": {"WARC-Header-Metadata": {}, "Payload-Metadata": {"HTTP-Response-Metadata": {"HTML-Metadata": []}}}},
        {"Envelope": {"WARC-Header-Metadata": [], "Payload-Metadata": {}}},
        {"Envelope": "text"},
        [1, 2, 3],  # not an object
        "just a string",
    ]
    (tmp_path / "in").mkdir()
    wat = write_wat(tmp_path / "in" / "types.warc.wat.gz", [good, *bad])
    df, stats = read(wat)
    assert pairs(df) == [("https://good.example/g.jpg", "good")]
    assert stats["dropped:bad_record"] == len(bad)
    code, err = curate([wat], tmp_path / "out", capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "out" / "manifest.json").read_text())
    ledger = doc["ledger"]
    assert ledger["dropped"]["bad_record"] == len(bad)
    assert ledger["rows_in"] == 1 + len(bad) and ledger["kept"] == 1
    assert Ledger.balanced(ledger)


def test_wat_json_nested_too_deep_is_counted(tmp_path):
    deep = b'{"Envelope": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    df, stats = read(write_wat(tmp_path / "deep.warc.wat.gz", [deep]))
    assert df.height == 0 and stats["bad_json"] == 1


# 3. HTML charset: BOM, HTTP header, meta prescan (first 1024 bytes), then UTF-8.


def _page(head: str, alt: str, encoding: str, pad: int = 0) -> bytes:
    return (f"<html><head>{head}</head><body>" + " " * pad + f'<img src="a.png" alt="{alt}"></body></html>').encode(encoding)


@pytest.mark.parametrize(
    "head",
    [
        '<meta charset="windows-1252">',
        "<meta charset=windows-1252>",
        '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">',
        "<META CONTENT='text/html; charset=\"cp1252\"' HTTP-EQUIV='content-type'>",
        '<!-- <meta charset="utf-8"> --><meta name="x" content="y"><meta charset="iso-8859-1">',  # iso-8859-1 means windows-1252
    ],
)
def test_windows_1252_declared_only_in_meta(tmp_path, head):
    alt = "Caf\xe9 \u201cna\xefve\u201d \u20ac5"  # the curly quotes and the euro sign are 0x93 0x94 0x80 in windows-1252
    path = write_warc(tmp_path / "cp1252.warc.gz", [("https://fr.example/", _page(head, alt, "cp1252"), "text/html")])
    df, _ = read(path)
    assert df["text"].to_list() == [alt]


def test_shift_jis_declared_only_in_meta(tmp_path):
    alt = "日本の猫の写真"
    head = '<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">'
    path = write_warc(tmp_path / "sjis.warc.gz", [("https://jp.example/", _page(head, alt, "shift_jis"), "text/html")])
    df, _ = read(path)
    assert df["text"].to_list() == [alt]
    assert df["url"].to_list() == ["https://jp.example/a.png"]


def test_charset_order_bom_then_header_then_meta_then_utf8(tmp_path):
    alt = "Caf\xe9"
    pages = [
        ("https://a.example/", _page('<meta charset="shift_jis">', alt, "cp1252"), "text/html; charset=windows-1252"),  # header beats meta
        ("https://b.example/", b"\xef\xbb\xbf" + _page('<meta charset="windows-1252">', alt, "utf-8"), "text/html; charset=shift_jis"),  # BOM beats both
        ("https://c.example/", _page("", alt, "utf-8"), "text/html"),  # nothing declared: UTF-8
        ("https://d.example/", _page("", alt, "cp1252"), "text/html"),  # undeclared, not UTF-8: replacement character
        ("https://e.example/", _page('<meta charset="rot13">', alt, "utf-8"), "text/html; charset=base64"),  # unknown labels are ignored
        ("https://f.example/", _page("", alt, "cp1252", pad=1100).replace(b"<img", b'<meta charset="windows-1252"><img'), "text/html"),  # past 1024 bytes
        ("https://g.example/", _page('<meta charset="utf-16">', alt, "utf-8"), "text/html"),  # utf-16 in meta means UTF-8
    ]
    df, _ = read(write_warc(tmp_path / "order.warc.gz", pages))
    got = dict(zip(df["page_url"], df["text"]))
    assert got == {
        "https://a.example/": alt,
        "https://b.example/": alt,
        "https://c.example/": alt,
        "https://d.example/": "Caf\ufffd",
        "https://e.example/": alt,
        "https://f.example/": "Caf\ufffd",
        "https://g.example/": alt,
    }


def test_prescan_unit_cases():
    assert htmlcharset.prescan(b'<meta charset="Shift_JIS">') == "cp932"
    assert htmlcharset.prescan(b'<meta content="text/html; charset=koi8-r">') is None  # content without http-equiv
    assert htmlcharset.prescan(b"<meta http-equiv=content-type content='text/html;charset = gb2312'>") == "gb18030"
    assert htmlcharset.prescan(b'<p title="<meta charset=euc-kr>"><meta charset=big5>') == "big5hkscs"  # inside an attribute: not a tag
    assert htmlcharset.prescan(b'<meta charset="nonsense"><meta charset="latin2">') == "iso8859_2"
    assert htmlcharset.prescan(b"<meta charset=\"utf-8") is None
    assert htmlcharset.sniff(b"\xff\xfe<\x00", "text/html; charset=utf-8") == ("utf-16-le", 2)
    assert htmlcharset.http_charset('text/html; charset="ISO-8859-1"') == "cp1252"


# 4. Entities: decoded once in a WARC page; WAT alt values are already decoded. Same page, same pairs.


def test_same_page_as_warc_and_wat_gives_the_same_pairs(tmp_path):
    html = b'<html><body><img src="/a.png" alt="1 &lt; 2 &amp;amp; x&nbsp;y"><img src="b.png" alt="Tom &amp; Jerry"></body></html>'
    warc = write_warc(tmp_path / "page.warc.gz", [("https://same.example/dir/", html, "text/html; charset=utf-8")])
    # What CommonCrawl's WAT writer stores for that page: alt text with its entities decoded once.
    links = [{"path": "IMG@/src", "url": "/a.png", "alt": "1 < 2 &amp; x\xa0y"}, {"path": "IMG@/src", "url": "b.png", "alt": "Tom & Jerry"}]
    wat = write_wat(tmp_path / "page.warc.wat.gz", [envelope("https://same.example/dir/", links)])
    from_warc, _ = read(warc)
    from_wat, _ = read(wat)
    assert pairs(from_warc) == pairs(from_wat) == [
        ("https://same.example/a.png", "1 < 2 &amp; x y"),
        ("https://same.example/dir/b.png", "Tom & Jerry"),
    ]


# 5. A WARC compressed as one gzip stream (not one member per record) reads like a per-record one.


def test_single_gzip_stream_warc_reads(tmp_path, capsys):
    plain = write_warc(tmp_path / "plain.warc", many_pages(), gzip_records=False)
    one = tmp_path / "in" / "one-stream.warc.gz"
    one.parent.mkdir()
    one.write_bytes(gzip.compress(plain.read_bytes()))
    per_record = write_warc(tmp_path / "per-record.warc.gz", many_pages())
    df_one, stats_one = read(one)
    df_rec, stats_rec = read(per_record)
    assert pairs(df_one) == pairs(df_rec) and len(pairs(df_one)) == 30
    assert stats_one == stats_rec
    code, err = curate([one], tmp_path / "out", capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["ledger"]["kept"] == 30
    cut = tmp_path / "cut" / "one-stream.warc.gz"
    cut.parent.mkdir()
    cut.write_bytes(one.read_bytes()[: one.stat().st_size * 9 // 10])
    code, err = curate([cut], tmp_path / "out-cut", capsys)
    assert code == 2
    assert_one_line(err, str(cut), "truncated")
