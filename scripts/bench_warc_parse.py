#!/usr/bin/env python
"""Pairs per second per core of tic's WARC/WAT reader on real files, where its time goes, and whether
a C-backed HTML parser (selectolax's lexbor backend, lxml) finds the same pairs at least 3x faster.

For each file (default: the two CommonCrawl reference files under ../shared/data/commoncrawl):

1. the full reader, as `tic curate` runs it per chunk: `inspect_inputs` makes the InputFile,
   `reader(f.kind).chunks` the specs, then `reader(f.kind).read(f, spec, columns)` for each;
   records/s, pairs/s and MB/s of the file as stored (compressed), median of `--repeats` runs;
2. the split of that time: gunzip + WARC record framing (warcio, reading every payload that `read`
   reads), page parsing (`_html_images` on the in-memory HTML payloads: charset sniff, decoding and
   the `html.parser` subclass; for WAT records, `json.loads` + `_wat_images`), the pair rows
   (filters, URL resolution) and building the DataFrame;
3. with `--peers DIR` (a folder of packages installed with `pip install --target DIR selectolax lxml`,
   put on sys.path by this script only): the same `_html_images(path, rec, content_type)` contract
   done with each peer parser (same charset sniff and decoding, first `<base href>`, `src` stripped,
   `alt` cleaned by tic's `_clean`), timed on the same payloads, then dropped into tic's own `read`
   in place of `_html_images` for the whole read. Pairs are compared with tic's as sets (and as
   multisets), with examples of any difference.

Times are CPU seconds of this single-threaded process (POLARS_MAX_THREADS=1), so the rates are per
core even when the machine is shared; wall seconds are printed beside them. The reference files
are small (the WARC holds one page), so each run reads a file as many times as it takes to last
`--min-time` seconds and the per-read time is the run's time divided by that count. The runs of all
measurements of a file go round robin, and a speed ratio is the median of the per-round ratios, so
a change in the machine's load touches both sides of a ratio alike; the min-max over rounds is
printed beside each ratio. Step 4 runs every parser on hand-written edge cases (not from the files)
whose result the WHATWG HTML parsing algorithm fixes, to say which parser is right where they differ.

    .venv/bin/pip install --target /tmp/htmlpeers selectolax lxml   # measurement only, not into .venv
    .venv/bin/python scripts/bench_warc_parse.py --peers /tmp/htmlpeers
"""

from __future__ import annotations

import os

os.environ["POLARS_MAX_THREADS"] = "1"  # before Polars is imported: the rates are per core

import argparse
import io
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import polars as pl

from ticdata.columns import ColumnMap
from ticdata.sources import commoncrawl as cc
from ticdata.sources import htmlcharset, inspect_inputs, reader

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "commoncrawl"  # ../shared beside the checkout
DEFAULT_FILES = (SHARED / "whirlwind.warc.gz", SHARED / "whirlwind.warc.wat.gz")
TARGET = 3.0  # the speed-up on the whole read the issue asks of a peer


# ---------------------------------------------------------------- timing

def _clock(fn, n: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of n calls of fn."""
    c, w = time.process_time(), time.perf_counter()
    for _ in range(n):
        fn()
    return time.process_time() - c, time.perf_counter() - w


def measure(fns: dict[str, object], repeats: int, min_time: float) -> dict[str, tuple[list[float], list[float]]]:
    """{name: ([CPU seconds of one call, per run], [wall seconds, per run])}: each fn is called enough
    times a run to last `min_time` CPU seconds, and the runs go round robin (a run of every fn, then
    the next round), so a change in the machine's load falls on all of them alike."""
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


def med(xs) -> float:
    return statistics.median(xs)


def spread(xs: list[float]) -> str:
    return f"{min(xs) * 1e3:.2f}-{max(xs) * 1e3:.2f}"


def ratio_range(times: dict, a: str, b: str) -> str:
    rs = [x / y for x, y in zip(times[a][0], times[b][0])]
    return f"{min(rs):.2f}-{max(rs):.2f}"


def ratio(times: dict, a: str, b: str) -> float:
    """Median over rounds of a's time / b's time (both timed in the same round)."""
    return med(x / y for x, y in zip(times[a][0], times[b][0]))


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


def build_frame(rows: dict[str, list]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=dict(cc.SCHEMA))


# ---------------------------------------------------------------- the peers

def _decoded(path, rec, content_type: str) -> str:
    """A page's text decoded as tic decodes it (WHATWG order: BOM, HTTP charset, meta prescan, UTF-8)."""
    payload = b"".join(cc._content(path, rec))
    codec, bom = htmlcharset.sniff(payload[: cc.BLOCK], content_type)
    return payload[bom:].decode(codec, errors="replace")


def load_peers(folder: str | None) -> dict[str, object]:
    """{name: an `_html_images` look-alike} for each peer parser that imports from `folder`."""
    if not folder:
        return {}
    sys.path.insert(0, folder)
    peers: dict[str, object] = {}
    try:
        from selectolax.lexbor import LexborHTMLParser
    except ImportError as e:
        print(f"selectolax: not used ({e})", file=sys.stderr)
    else:
        def lexbor_images(path, rec, content_type):
            tree = LexborHTMLParser(_decoded(path, rec, content_type))
            node = tree.css_first("base[href]")
            base = (node.attributes.get("href") or "").strip() or None if node is not None else None
            images = []
            for img in tree.css("img"):
                a = img.attributes
                images.append(((a.get("src") or "").strip(), cc._clean(a.get("alt"))))
            return base, images

        peers["selectolax-lexbor"] = lexbor_images
    try:
        import lxml.html
        from lxml.etree import ParserError
    except ImportError as e:
        print(f"lxml: not used ({e})", file=sys.stderr)
    else:
        # UTF-8 bytes with the encoding named: lxml refuses a str that carries an XML encoding declaration
        parser = lxml.html.HTMLParser(encoding="utf-8")

        def lxml_images(path, rec, content_type):
            text = _decoded(path, rec, content_type)
            try:
                doc = lxml.html.document_fromstring(text.encode("utf-8", "surrogatepass"), parser=parser)
            except ParserError:  # an empty document
                return None, []
            base = next((((b.get("href") or "").strip() or None) for b in doc.iter("base") if b.get("href") is not None), None)
            images = [((img.get("src") or "").strip(), cc._clean(img.get("alt"))) for img in doc.iter("img")]
            return base, images

        lxml_images.version = ".".join(map(str, lxml.etree.LXML_VERSION[:3])) + " / libxml2 " + ".".join(map(str, lxml.etree.LIBXML_VERSION))
        peers["lxml"] = lxml_images
    return peers


def read_with(f, specs, columns, html_images):
    """tic's own `read`, with `html_images` in place of `_html_images` (what adopting a peer would be)."""
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
        "equal": len(a.keys() & b.keys()),
        "only_tic": sorted(a.keys() - b.keys())[:examples],
        "only_peer": sorted(b.keys() - a.keys())[:examples],
        "n_only_tic": len(a.keys() - b.keys()),
        "n_only_peer": len(b.keys() - a.keys()),
        "same_set": a.keys() == b.keys(),
        "same_multiset": a == b,
    }


def raw_differences(path: str, payloads: list[tuple], peer, examples: int = 3) -> list[str]:
    """Differences in the (src, alt) list of every <img> (before any filter) and in the base, per page."""
    out = []
    for (page, _, base, images), (_, _, pbase, pimages) in zip(parse_pages(path, payloads), parse_pages(path, payloads, peer)):
        if base != pbase:
            out.append(f"{page}: base {base!r} (tic) vs {pbase!r}")
        a, b = Counter(images), Counter(pimages)
        for x in sorted((a - b).keys())[:examples]:
            out.append(f"{page}: <img> only tic {x!r}")
        for x in sorted((b - a).keys())[:examples]:
            out.append(f"{page}: <img> only peer {x!r}")
    return out


# ---------------------------------------------------------------- the HTML spec on edge cases

# Hand-written snippets (not from the files) where an HTML parser can go wrong, each with what the
# WHATWG HTML parsing algorithm makes of it: (what, html, base, [(src, alt)] of the <img> elements
# in the document tree, scripting disabled as in a crawler).
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
    ("a tag cut by the end of file is dropped", "<p>x<img src=e.png alt=e", None, []),
    ("the first <base> with an href is the base", '<base target=_top><base href="/y/"><base href="/z/"><img src=a alt=a>', "/y/", [("a", "a")]),
)


def spec_cases(parsers: dict[str, object]) -> dict[str, list[tuple[str, object]]]:
    """{parser: [(case, (base, images) it gave)]} over SPEC_CASES."""
    out = {}
    for name, fn in parsers.items():
        out[name] = [(what, fn("<case>", _Payload(html.encode("utf-8")), "text/html; charset=utf-8")) for what, html, _, _ in SPEC_CASES]
    return out


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
    assert build_frame(rows).equals(df), f"{path}: the split's parts do not rebuild read's pairs"
    parse_part = "page parsing" + (" (HTML)" if any(p[0] == "html" for p in payloads) else " (JSON: json.loads + _wat_images)")
    fns = {
        "read": lambda: full_read(f, specs, columns),
        "gunzip + WARC framing": lambda: frame_only(f.path),
        parse_part: lambda: parse_pages(f.path, payloads),
        "pair rows (filters, urljoin)": lambda: pair_rows(f.path, pages, snapshot),
        "DataFrame": lambda: build_frame(rows),
    }
    res = {"path": path, "f": f, "df": df, "stats": stats, "parts": list(fns)[1:], "parse_part": parse_part, "peers": {}}
    if any(p[0] == "html" for p in payloads):
        for name, fn in peers.items():
            pdf, pstats = read_with(f, specs, columns, fn)
            fns[f"{name} parse"] = lambda fn=fn: parse_pages(f.path, payloads, fn)
            fns[f"{name} read"] = lambda fn=fn: read_with(f, specs, columns, fn)
            res["peers"][name] = {"cmp": compare(df, pdf), "stats_equal": pstats == stats,
                                  "raw": raw_differences(f.path, payloads, fn)}
    times = measure(fns, args.repeats, args.min_time)
    res["times"] = times
    res["cpu"], res["wall"] = med(times["read"][0]), med(times["read"][1])
    res["split"] = {part: med(times[part][0]) for part in res["parts"]}
    for name, p in res["peers"].items():
        p["parse"], p["read"] = med(times[f"{name} parse"][0]), med(times[f"{name} read"][0])
        p["x_parse"], p["x_read"] = ratio(times, parse_part, f"{name} parse"), ratio(times, "read", f"{name} read")
        p["r_parse"], p["r_read"] = ratio_range(times, parse_part, f"{name} parse"), ratio_range(times, "read", f"{name} read")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*", default=[str(p) for p in DEFAULT_FILES], help="WARC / WAT files (gzip or plain)")
    ap.add_argument("--peers", metavar="DIR", help="folder holding selectolax and/or lxml (pip install --target DIR ...)")
    ap.add_argument("--repeats", type=int, default=3, help="runs (rounds) per measurement (the median is kept)")
    ap.add_argument("--min-time", type=float, default=0.3, help="CPU seconds each run lasts at least")
    ap.add_argument("--chunk-rows", type=int, default=1_000_000, help="chunk size handed to reader.chunks")
    args = ap.parse_args()

    columns = ColumnMap()
    peers = load_peers(args.peers)
    print(f"python {sys.version.split()[0]}, polars {pl.__version__}, POLARS_MAX_THREADS={os.environ['POLARS_MAX_THREADS']}; "
          f"median of {args.repeats} runs of >= {args.min_time}s CPU; rates per CPU second of one core")
    if args.peers:
        for name, fn in peers.items():
            print(f"peer {name}: " + getattr(fn, "version", __import__("selectolax").__version__ if "selectolax" in name else ""))

    results = [bench_file(path, columns, peers, args) for path in args.files]

    # ---- 1. the full reader
    print("\n1. tic's reader (`read` per chunk spec, as curate runs it), one core")
    hdr = (f"{'file':<24} {'kind':<5} {'MB(gz)':>7} {'records':>7} {'pages':>5} {'images':>6} {'pairs':>5} {'ms/read':>8} "
           f"{'runs min-max':>15} {'wall ms':>8} {'records/s':>10} {'pairs/s':>9} {'MB/s':>6}")
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        f, st, cpu = r["f"], r["stats"], r["cpu"]
        print(f"{Path(r['path']).name:<24} {f.kind:<5} {f.size / 1e6:>7.4f} {st['records']:>7} {st['pages']:>5} {st['images']:>6} "
              f"{r['df'].height:>5} {cpu * 1e3:>8.3f} {spread(r['times']['read'][0]):>15} {r['wall'] * 1e3:>8.3f} {fmt(st['records'] / cpu):>10} "
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
    verdicts = []
    if args.peers:
        print("\n3. peer HTML parsers: same payloads, same charset decoding and cleaning; x = tic time / peer time "
              "(median over rounds, both timed in each round; min-max beside it); pairs compared as (page_url, url, text)")
        if not peers:
            print("  no peer parser imports from " + args.peers)
        hdr = (f"{'file':<20} {'parser':<18} {'parse ms':>9} {'x parse':>8} {'min-max':>11} {'read ms':>9} {'x read':>7} {'min-max':>11} "
               f"{'pairs/s':>9} {'equal':>5} {'only tic':>8} {'only peer':>9} {'same set':>8}")
        for r in results:
            if not r["peers"]:
                continue
            tic_parse = r["split"][r["parse_part"]]
            print(hdr)
            print("-" * len(hdr))
            print(f"{Path(r['path']).name:<20} {'tic html.parser':<18} {tic_parse * 1e3:>9.3f} {1:>8.2f} {'':>11} {r['cpu'] * 1e3:>9.3f} {1:>7.2f} {'':>11} "
                  f"{fmt(r['df'].height / r['cpu']):>9} {r['df'].height:>5} {'':>8} {'':>9} {'':>8}")
            for name, p in r["peers"].items():
                c = p["cmp"]
                print(f"{Path(r['path']).name:<20} {name:<18} {p['parse'] * 1e3:>9.3f} {p['x_parse']:>8.2f} {p['r_parse']:>11} "
                      f"{p['read'] * 1e3:>9.3f} {p['x_read']:>7.2f} {p['r_read']:>11} {fmt(r['df'].height / p['read']):>9} "
                      f"{c['equal']:>5} {c['n_only_tic']:>8} {c['n_only_peer']:>9} {'yes' if c['same_set'] else 'NO':>8}")
                verdicts.append((name, p["x_read"], c["same_set"] and c["same_multiset"] and p["stats_equal"], p["r_read"]))
            share = tic_parse / r["cpu"]
            bound = f"at most {1 / (1 - share):.1f}x faster" if share < 1 else "much faster (parsing timed alone exceeds the read: a noisy run)"
            print(f"  parsing is {100 * share:.0f}% of tic's read (medians): a parser taking no time would make the read {bound}")
            for name, p in r["peers"].items():
                c = p["cmp"]
                if not p["stats_equal"]:
                    print(f"  {name}: reader stats differ from tic's")
                for row in c["only_tic"]:
                    print(f"  {name}: pair only tic  {row}")
                for row in c["only_peer"]:
                    print(f"  {name}: pair only peer {row}")
                if c["same_set"] and not c["same_multiset"]:
                    print(f"  {name}: same set of pairs, but some pair occurs a different number of times")
                for line in p["raw"][:6]:
                    print(f"  {name}: {line}")

    # ---- 4. the HTML spec on edge cases
    if peers:
        parsers = {"tic": cc._html_images, **peers}
        got = spec_cases(parsers)
        print("\n4. edge cases (hand-written, not from the files): does each parser give the <img> pairs the HTML spec's parser gives?")
        print(f"{'case':<50} " + " ".join(f"{n:>17}" for n in parsers))
        for i, (what, _, base, images) in enumerate(SPEC_CASES):
            marks = []
            for n in parsers:
                b, imgs = got[n][i][1]
                marks.append("ok" if (b, imgs) == (base, images) else "WRONG")
            print(f"{what:<50} " + " ".join(f"{m:>17}" for m in marks))
        print(f"{'agrees with the spec':<50} " + " ".join(
            f"{sum(got[n][i][1] == (c[2], c[3]) for i, c in enumerate(SPEC_CASES)):>14}/{len(SPEC_CASES)}" for n in parsers))
        for n in parsers:
            for i, (what, _, base, images) in enumerate(SPEC_CASES):
                if got[n][i][1] != (base, images):
                    print(f"  {n}: {what}: gave {got[n][i][1]!r}, spec {(base, images)!r}")

    # ---- conclusion
    if not args.peers:
        print("\nconclusion: no peers measured (give --peers DIR)")
    elif not verdicts:
        print("\nconclusion: no peer measured on an HTML page (no peer imports, or no file holds HTML responses)")
    else:
        best = max(verdicts, key=lambda v: (v[2], v[1]))
        good = sorted((v for v in verdicts if v[2] and v[1] >= TARGET), key=lambda v: -v[1])
        desc = "; ".join(f"{n} {x:.2f}x (rounds {rng}){'' if same else ' (pairs differ)'}" for n, x, same, rng in verdicts)
        if good:
            print(f"\nconclusion: YES: {good[0][0]} gives the same pairs {good[0][1]:.2f}x faster on the whole read "
                  f"(median >= {TARGET:g}x): {desc}")
        else:
            print(f"\nconclusion: NO: no C-backed parser gives the same pairs >= {TARGET:g}x faster on the whole read "
                  f"(best {best[0]} {best[1]:.2f}x; {desc})")


if __name__ == "__main__":
    main()
