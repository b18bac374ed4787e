#!/usr/bin/env python
"""Pairs per second per core of tic's WARC/WAT reader on real files, where its time goes, and how its
HTML parsing (selectolax's lexbor backend) compares with the pure-Python `html.parser` extraction tic
used before (kept below, verbatim, as the reference peer) and, with `--peers DIR`, with lxml.

For each file (default: the two CommonCrawl reference files under ../shared/data/commoncrawl):

1. the full reader as `tic curate` runs it: `inspect_inputs`, `reader(f.kind).chunks`, then `read`
   per chunk spec; records/s, pairs/s and MB/s of the file as stored, median of `--repeats` runs;
2. the split of that time: gunzip + WARC framing (warcio, reading every payload `read` reads), page
   parsing (`_html_images` on in-memory payloads: charset sniff, decoding, lexbor; for WAT records
   `json.loads` + `_wat_images`), the pair rows (filters, URL resolution) and the DataFrame;
3. the peers, `_html_images` look-alikes (same charset sniff and decoding, first non-blank
   `<base href>`, `src` stripped, `alt` cleaned by `_clean`): `html.parser (old)` always, `lxml` when
   `--peers DIR` names a folder it was installed into (put on sys.path by this script only). Each is
   timed on the same payloads, then put into tic's own `read` in place of `_html_images` for the
   whole read; its pairs are compared with tic's as multisets, with examples of any difference;
4. every parser on hand-written edge cases whose result the WHATWG HTML parsing algorithm fixes.

Times are CPU seconds of this single-threaded process (POLARS_MAX_THREADS=1), so rates are per core
even on a shared machine; wall seconds are printed beside them. Each run calls a measurement as many
times as it takes to last `--min-time` seconds; the runs of a file go round robin, and a speed ratio
is the median of the per-round ratios (min-max beside it), so a change in load touches both sides.

    .venv/bin/python scripts/bench_warc_parse.py
    .venv/bin/pip install --target /tmp/htmlpeers lxml   # measurement only, not into .venv
    .venv/bin/python scripts/bench_warc_parse.py --peers /tmp/htmlpeers
"""

from __future__ import annotations

import os

os.environ["POLARS_MAX_THREADS"] = "1"  # before Polars is imported: the rates are per core

import argparse
import codecs
import io
import json
import statistics
import sys
import time
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import selectolax

from ticdata.columns import ColumnMap
from ticdata.sources import commoncrawl as cc
from ticdata.sources import htmlcharset, inspect_inputs, reader

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "commoncrawl"  # ../shared beside the checkout
DEFAULT_FILES = (SHARED / "whirlwind.warc.gz", SHARED / "whirlwind.warc.wat.gz")
OLD = "html.parser (old)"


# ---------------------------------------------------------------- timing

def _clock(fn, n: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of n calls of fn."""
    c, w = time.process_time(), time.perf_counter()
    for _ in range(n):
        fn()
    return time.process_time() - c, time.perf_counter() - w


def measure(fns: dict[str, object], repeats: int, min_time: float) -> dict[str, tuple[list[float], list[float]]]:
    """{name: ([CPU seconds of one call, per run], [wall seconds, per run])}: each fn is called enough
    times a run to last `min_time` CPU seconds; the runs go round robin (a run of every fn per round)."""
    counts = {}
    for name, fn in fns.items():
        fn()  # warm: imports, caches
        n = 1
        while True:
            cpu, _ = _clock(fn, n)
            if cpu >= min_time or n >= 1 << 20:
                break
            n = max(n * 2, int(n * min_time / max(cpu, 1e-6) * 1.1) + 1)
        counts[name] = n
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            cpu, wall = _clock(fn, counts[name])
            out[name][0].append(cpu / counts[name])
            out[name][1].append(wall / counts[name])
    return out


med = statistics.median


def ratios(times: dict, a: str, b: str) -> tuple[float, str]:
    """(median over rounds of a's time / b's time, both timed in the same round; their min-max)."""
    rs = [x / y for x, y in zip(times[a][0], times[b][0])]
    return med(rs), f"{min(rs):.2f}-{max(rs):.2f}"


# ---------------------------------------------------------------- the reader and its parts

class _Payload:
    """A record stand-in whose content stream is a payload already in memory (for `cc._content`)."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def content_stream(self):
        return io.BytesIO(self.payload)


def full_read(f, specs, columns):
    """What `tic curate` does with one file: `read` for every chunk spec."""
    mod = reader(f.kind)
    frames, stats = [], Counter()
    for spec in specs:
        df, st = mod.read(f, spec, columns)
        frames.append(df)
        stats.update(st)
    return pl.concat(frames), dict(stats)


def frame_only(path: str) -> list[tuple]:
    """gunzip + warcio framing, reading each payload `read` reads (warcinfo, HTML responses, JSON
    metadata) to its end, without parsing it: [(kind, payload, content type, page, date)]."""
    out = []
    for rec in cc._records(path):
        kind = rec.rec_type
        if kind == "warcinfo":
            out.append(("warcinfo", b"".join(cc._content(path, rec)), "", None, None))
        elif kind == "response" and rec.http_headers is not None:
            ctype = rec.http_headers.get_header("Content-Type") or ""
            if ctype.split(";")[0].strip().lower() in cc.HTML_TYPES:
                out.append(("html", b"".join(cc._content(path, rec)), ctype,
                            cc._uri(rec.rec_headers.get_header("WARC-Target-URI")), rec.rec_headers.get_header("WARC-Date")))
        elif kind == "metadata" and "json" in (rec.rec_headers.get_header("Content-Type") or ""):
            out.append(("json", b"".join(cc._content(path, rec)), "", None, None))
    return out


def parse_pages(path: str, payloads: list[tuple], html_images=None) -> list[tuple]:
    """Page parsing alone, on payloads in memory: [(page, date, base, images)] of the pages."""
    html_images = html_images or cc._html_images
    pages = []
    for kind, payload, ctype, page, date in payloads:
        if kind == "html":
            base, images = html_images(path, _Payload(payload), ctype)
            pages.append((page, date, base, images))
        elif kind == "json":
            try:
                found = cc._wat_images(json.loads(payload))
            except (ValueError, RecursionError, cc._BadRecord):
                continue
            if found is not None:
                pages.append(found)
    return pages


def pair_rows(path: str, pages: list[tuple], snapshot: str | None) -> dict[str, list]:
    """The pair rows of parsed pages, as `read` builds them (filters, URL resolution)."""
    rows: dict[str, list] = {name: [] for name, _ in cc.SCHEMA}
    for page, date, base, images in pages:
        page_base = cc._join(page or "", base) if base else (page or "")
        for src, alt in images:
            if not src or src.lower().startswith("data:") or not alt:
                continue
            for name, value in zip(rows, (cc._join(page_base, src), alt, date, snapshot, path, page)):
                rows[name].append(value)
    return rows


# ---------------------------------------------------------------- the peers

class _OldHtmlParserImages(HTMLParser):
    """Reference peer: tic's extraction before lexbor, verbatim (commoncrawl._Images). Collects (src, alt)
    of every <img> and the first non-blank <base href>; attribute entities decoded by html.unescape."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.images: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            a = dict(attrs)
            self.images.append(((a.get("src") or "").strip(), cc._clean(a.get("alt"))))
        elif tag == "base" and self.base is None:
            self.base = (dict(attrs).get("href") or "").strip() or None

    handle_startendtag = handle_starttag


def old_html_parser_images(path, rec, content_type: str) -> tuple[str | None, list[tuple[str, str]]]:
    """Reference peer: tic's `_html_images` before lexbor, verbatim (blocks fed to html.parser)."""
    blocks = cc._content(path, rec)
    head = b""
    for block in blocks:
        head += block
        if len(head) >= htmlcharset.PRESCAN_BYTES:
            break
    codec, bom = htmlcharset.sniff(head, content_type)
    decoder = codecs.getincrementaldecoder(codec)(errors="replace")
    parser = _OldHtmlParserImages()
    parser.feed(decoder.decode(head[bom:]))
    for block in blocks:
        parser.feed(decoder.decode(block))
    parser.feed(decoder.decode(b"", final=True))
    parser.close()
    return parser.base, parser.images


old_html_parser_images.version = f"python {sys.version.split()[0]} html.parser"


def load_peers(folder: str | None) -> dict[str, object]:
    """{name: an `_html_images` look-alike}: the old html.parser extraction, and lxml if it imports from `folder`."""
    peers: dict[str, object] = {OLD: old_html_parser_images}
    if not folder:
        return peers
    sys.path.insert(0, folder)
    try:
        import lxml.html
        from lxml.etree import ParserError
    except ImportError as e:
        print(f"lxml: not used ({e})", file=sys.stderr)
        return peers
    # UTF-8 bytes with the encoding named: lxml refuses a str that carries an XML encoding declaration
    parser = lxml.html.HTMLParser(encoding="utf-8")

    def lxml_images(path, rec, content_type):
        payload = b"".join(cc._content(path, rec))
        codec, bom = htmlcharset.sniff(payload[: htmlcharset.PRESCAN_BYTES], content_type)
        text = payload[bom:].decode(codec, errors="replace")
        try:
            doc = lxml.html.document_fromstring(text.encode("utf-8", "surrogatepass"), parser=parser)
        except ParserError:  # an empty document
            return None, []
        base = next((h for b in doc.iter("base") if (h := (b.get("href") or "").strip())), None)
        return base, [((img.get("src") or "").strip(), cc._clean(img.get("alt"))) for img in doc.iter("img")]

    lxml_images.version = ".".join(map(str, lxml.etree.LXML_VERSION[:3])) + " / libxml2 " + ".".join(map(str, lxml.etree.LIBXML_VERSION))
    peers["lxml"] = lxml_images
    return peers


def read_with(f, specs, columns, html_images):
    """tic's own `read`, with `html_images` in place of `_html_images`."""
    saved = cc._html_images
    cc._html_images = html_images
    try:
        return full_read(f, specs, columns)
    finally:
        cc._html_images = saved


def compare(ours: pl.DataFrame, theirs: pl.DataFrame, examples: int = 3) -> dict:
    key = ["page_url", "url", "text"]
    a = Counter(ours.select(key).iter_rows())
    b = Counter(theirs.select(key).iter_rows())
    return {
        "only_tic": sorted(a.keys() - b.keys())[:examples],
        "only_peer": sorted(b.keys() - a.keys())[:examples],
        "n_only_tic": len(a.keys() - b.keys()),
        "n_only_peer": len(b.keys() - a.keys()),
        "same": a == b,
    }


def raw_differences(path: str, payloads: list[tuple], peer, examples: int = 3) -> list[str]:
    """Differences in the (src, alt) list of every <img> (before any filter) and in the base, per page."""
    out = []
    for (page, _, base, images), (_, _, pbase, pimages) in zip(parse_pages(path, payloads), parse_pages(path, payloads, peer)):
        if base != pbase:
            out.append(f"{page}: base {base!r} (tic) vs {pbase!r}")
        a, b = Counter(images), Counter(pimages)
        out += [f"{page}: <img> only tic {x!r}" for x in sorted((a - b).keys())[:examples]]
        out += [f"{page}: <img> only peer {x!r}" for x in sorted((b - a).keys())[:examples]]
    return out


# ---------------------------------------------------------------- the HTML spec on edge cases

# Hand-written snippets (not from the files) where an HTML parser can go wrong, each with what the
# WHATWG HTML parsing algorithm makes of it: (what, html, base, [(src, alt)] of the <img> elements
# in the document tree, scripting disabled as in a crawler). tests/test_sources_commoncrawl.py has more.
SPEC_CASES = (
    ("duplicate attribute: the first wins", '<img src="a.png" src="b.png" alt="x">', None, [("a.png", "x")]),
    ("&name= in an attribute is not a reference", '<img src="/i?a=1&copy=2" alt="x">', None, [("/i?a=1&copy=2", "x")]),
    ("&notit; in an attribute is not a reference", '<img src="a.png" alt="&notit; x">', None, [("a.png", "&notit; x")]),
    ("&amp without ; before a space is decoded", '<img src="a.png" alt="Tom &amp Jerry">', None, [("a.png", "Tom & Jerry")]),
    ("numeric references, &#x80; is the euro sign", '<img src="a.png" alt="&#128512; &#x80;">', None, [("a.png", "\U0001F600 \u20ac")]),
    ("<textarea> holds text (RCDATA)", "<textarea><img src=t.png alt=t></textarea>", None, []),
    ("<title> holds text (RCDATA)", "<title><img src=t.png alt=t></title>", None, []),
    ("<xmp> holds text (raw text)", "<xmp><img src=x.png alt=x></xmp>", None, []),
    ("<iframe> holds text (raw text)", "<iframe><img src=f.png alt=f></iframe>", None, []),
    ("<script> holds text", "<script>s='<img src=s.png alt=s>'</script>", None, []),
    ("a comment", "<!-- <img src=c.png alt=c> -->", None, []),
    ("<template> content is not in the document", "<template><img src=t.png alt=t></template>", None, []),
    ("<noscript> content is markup when scripting is off", "<noscript><img src=n.png alt=n></noscript>", None, [("n.png", "n")]),
    ("<img> inside <svg> breaks out to HTML", "<svg><img src=v.png alt=v></svg>", None, [("v.png", "v")]),
    ("an HTML <image> start tag becomes <img>", "<image src=i.png alt=i>", None, [("i.png", "i")]),
    ("a tag cut by the end of file is dropped", "<p>x<img src=e.png alt=e", None, []),
    ("the first <base> with an href is the base", '<base target=_top><base href="/y/"><base href="/z/"><img src=a alt=a>', "/y/", [("a", "a")]),
)


def spec_cases(parsers: dict[str, object]) -> dict[str, list]:
    """{parser: [(base, images) it gave, per case of SPEC_CASES]}."""
    return {name: [fn("<case>", _Payload(html.encode("utf-8")), "text/html; charset=utf-8") for _, html, _, _ in SPEC_CASES]
            for name, fn in parsers.items()}


# ---------------------------------------------------------------- main

def fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}" if x >= 1 else f"{x:.3g}"


def bench_file(path: str, columns: ColumnMap, peers: dict, args) -> dict:
    """Every measurement of one file, timed round robin: the full read, its parts, each peer."""
    [f] = inspect_inputs([path], columns)
    specs = reader(f.kind).chunks(f, args.chunk_rows)
    df, stats = full_read(f, specs, columns)
    payloads = frame_only(f.path)
    pages = parse_pages(f.path, payloads)
    snapshot = df["snapshot"][0] if df.height else None
    rows = pair_rows(f.path, pages, snapshot)
    frame = lambda: pl.DataFrame(rows, schema=dict(cc.SCHEMA))
    assert frame().equals(df), f"{path}: the split's parts do not rebuild read's pairs"
    html = any(p[0] == "html" for p in payloads)
    parse_part = "page parsing" + (" (HTML: lexbor)" if html else " (JSON: json.loads + _wat_images)")
    fns = {
        "read": lambda: full_read(f, specs, columns),
        "gunzip + WARC framing": lambda: frame_only(f.path),
        parse_part: lambda: parse_pages(f.path, payloads),
        "pair rows (filters, urljoin)": lambda: pair_rows(f.path, pages, snapshot),
        "DataFrame": frame,
    }
    res = {"path": path, "f": f, "df": df, "stats": stats, "parts": list(fns)[1:], "parse_part": parse_part, "peers": {}}
    for name, fn in peers.items() if html else ():
        pdf, pstats = read_with(f, specs, columns, fn)
        fns[f"{name} parse"] = lambda fn=fn: parse_pages(f.path, payloads, fn)
        fns[f"{name} read"] = lambda fn=fn: read_with(f, specs, columns, fn)
        res["peers"][name] = {"cmp": compare(df, pdf), "stats_equal": pstats == stats, "pairs": pdf.height,
                              "raw": raw_differences(f.path, payloads, fn)}
    times = measure(fns, args.repeats, args.min_time)
    res["times"] = times
    res["cpu"], res["wall"] = med(times["read"][0]), med(times["read"][1])
    res["split"] = {part: med(times[part][0]) for part in res["parts"]}
    for name, p in res["peers"].items():
        p["parse"], p["read"] = med(times[f"{name} parse"][0]), med(times[f"{name} read"][0])
        (p["x_parse"], p["r_parse"]), (p["x_read"], p["r_read"]) = ratios(times, f"{name} parse", parse_part), ratios(times, f"{name} read", "read")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*", default=[str(p) for p in DEFAULT_FILES], help="WARC / WAT files (gzip or plain)")
    ap.add_argument("--peers", metavar="DIR", help="folder holding lxml (pip install --target DIR lxml)")
    ap.add_argument("--repeats", type=int, default=3, help="runs (rounds) per measurement (the median is kept)")
    ap.add_argument("--min-time", type=float, default=0.3, help="CPU seconds each run lasts at least")
    ap.add_argument("--chunk-rows", type=int, default=1_000_000, help="chunk size handed to reader.chunks")
    args = ap.parse_args()

    columns = ColumnMap()
    peers = load_peers(args.peers)
    print(f"python {sys.version.split()[0]}, polars {pl.__version__}, selectolax {selectolax.__version__} (lexbor), "
          f"POLARS_MAX_THREADS={os.environ['POLARS_MAX_THREADS']}; median of {args.repeats} runs of >= {args.min_time}s CPU; "
          "rates per CPU second of one core")
    for name, fn in peers.items():
        print(f"peer {name}: {fn.version}")

    results = [bench_file(path, columns, peers, args) for path in args.files]

    # ---- 1. the full reader
    print("\n1. tic's reader (`read` per chunk spec, as curate runs it), one core")
    hdr = (f"{'file':<24} {'kind':<5} {'MB(gz)':>7} {'records':>7} {'pages':>5} {'images':>6} {'pairs':>5} {'ms/read':>8} "
           f"{'runs min-max':>15} {'wall ms':>8} {'records/s':>10} {'pairs/s':>9} {'MB/s':>6}")
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        f, st, cpu, rs = r["f"], r["stats"], r["cpu"], r["times"]["read"][0]
        span = f"{min(rs) * 1e3:.2f}-{max(rs) * 1e3:.2f}"
        print(f"{Path(r['path']).name:<24} {f.kind:<5} {f.size / 1e6:>7.4f} {st['records']:>7} {st['pages']:>5} {st['images']:>6} "
              f"{r['df'].height:>5} {cpu * 1e3:>8.3f} {span:>15} {r['wall'] * 1e3:>8.3f} {fmt(st['records'] / cpu):>10} "
              f"{fmt(r['df'].height / cpu):>9} {f.size / 1e6 / cpu:>6.2f}")
        if r["df"].height == 0:
            print(f"  {Path(r['path']).name}: no pairs: {st['pages']} of its {st['records']} records describe an HTML page")

    # ---- 2. the split
    print("\n2. where a read's time goes (each part timed alone; ms per read and share of the full read)")
    for r in results:
        total = r["cpu"]
        print(f"{Path(r['path']).name}: full read {total * 1e3:.3f} ms")
        for part, t in r["split"].items():
            print(f"  {part:<48} {t * 1e3:>8.3f} ms  {100 * t / total:>5.1f}%")
        parts = sum(r["split"].values())
        print(f"  {'sum of parts':<48} {parts * 1e3:>8.3f} ms  {100 * parts / total:>5.1f}%  (rest: read's own loop, _finish, warcinfo, concat)")

    # ---- 3. the peers
    print("\n3. tic (lexbor) against the peers on the same payloads, same decoding and cleaning; x = peer time / tic time "
          "(how many times faster tic is; median over rounds, min-max beside it); pairs compared as (page_url, url, text)")
    hdr = (f"{'file':<20} {'parser':<18} {'parse ms':>9} {'x parse':>8} {'min-max':>11} {'read ms':>9} {'x read':>7} {'min-max':>11} "
           f"{'pairs/s':>9} {'pairs':>5} {'only tic':>8} {'only peer':>9} {'same':>5}")
    verdicts = []
    for r in results:
        if not r["peers"]:
            continue
        name0, notes = Path(r["path"]).name, []
        print(hdr)
        print("-" * len(hdr))
        print(f"{name0:<20} {'tic (lexbor)':<18} {r['split'][r['parse_part']] * 1e3:>9.3f} {1:>8.2f} {'':>11} {r['cpu'] * 1e3:>9.3f} {1:>7.2f} "
              f"{'':>11} {fmt(r['df'].height / r['cpu']):>9} {r['df'].height:>5} {'':>8} {'':>9} {'':>5}")
        for name, p in r["peers"].items():
            c = p["cmp"]
            same = c["same"] and p["stats_equal"]
            print(f"{name0:<20} {name:<18} {p['parse'] * 1e3:>9.3f} {p['x_parse']:>8.2f} {p['r_parse']:>11} "
                  f"{p['read'] * 1e3:>9.3f} {p['x_read']:>7.2f} {p['r_read']:>11} {fmt(p['pairs'] / p['read']):>9} "
                  f"{p['pairs']:>5} {c['n_only_tic']:>8} {c['n_only_peer']:>9} {'yes' if same else 'NO':>5}")
            verdicts.append((name0, name, r["df"].height / r["cpu"], p["pairs"] / p["read"], p["x_read"], p["r_read"], same))
            notes += [f"  {name}: reader stats differ from tic's"] * (not p["stats_equal"])
            notes += [f"  {name}: pair only tic  {row}" for row in c["only_tic"]] + [f"  {name}: pair only peer {row}" for row in c["only_peer"]]
            notes += [f"  {name}: {line}" for line in p["raw"][:6]]
        for line in notes:
            print(line)
    if not verdicts:
        print("  no file holds an HTML response: nothing to compare")

    # ---- 4. the HTML spec on edge cases
    parsers = {"tic (lexbor)": cc._html_images, **peers}
    got = spec_cases(parsers)
    print("\n4. edge cases (hand-written, not from the files): does each parser give the <img> pairs the HTML spec's parser gives?")
    print(f"{'case':<50} " + " ".join(f"{n:>17}" for n in parsers))
    for i, (what, _, base, images) in enumerate(SPEC_CASES):
        print(f"{what:<50} " + " ".join(f"{'ok' if got[n][i] == (base, images) else 'WRONG':>17}" for n in parsers))
    print(f"{'agrees with the spec':<50} " + " ".join(
        f"{sum(got[n][i] == (c[2], c[3]) for i, c in enumerate(SPEC_CASES)):>14}/{len(SPEC_CASES)}" for n in parsers))
    for n in parsers:
        for i, (what, _, base, images) in enumerate(SPEC_CASES):
            if got[n][i] != (base, images):
                print(f"  {n}: {what}: gave {got[n][i]!r}, spec {(base, images)!r}")

    print()  # ---- conclusion
    for file, name, tic_rate, peer_rate, x, rng, same in verdicts:
        print(f"conclusion: {file}: tic (lexbor) {fmt(tic_rate)} pairs/s per core vs {name} {fmt(peer_rate)}: "
              f"{x:.2f}x (rounds {rng}); pairs {'equal' if same else 'DIFFER'}")


if __name__ == "__main__":
    main()
