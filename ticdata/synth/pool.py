"""A CommonCrawl-style synthetic pool in DataComp's metadata layout, with bad rows planted at known rates.

`make_pool(out, rows)` writes `out/pool-00000.parquet`, `out/pool-00001.parquet`, ... and
`out/_synth.json`, a summary that says exactly what a correct curation of the pool must find:
how many rows of each defect were planted and how many distinct uids the valid rows hold.

How it stays fast and deterministic at tens of millions of rows:

- Every attribute of a pair (uid, url, caption, size, score, first snapshot) and of a row
  (re-sighted pair, snapshot, WAT file, crawl time) is a pure function of (seed, id) computed by
  a counter-based hash (splitmix64) over numpy arrays, so a pair re-sighted in another file is
  rebuilt identically there and nothing per pair is kept in memory.
- The only global state is the row order (a seeded permutation, 4 bytes a row), the planted
  defects (1 byte a row) and a bitmap of the pairs seen among valid rows (1 byte a pair).
- Strings are built column-wise: hex from a byte lookup table straight into Arrow buffers,
  captions and urls as Polars gathers from small vocabularies joined with `concat_str`.

Rows 0 .. unique_pairs-1 (before shuffling) are the first sightings, one per pair; the rest
re-sight an earlier pair in the same or a later snapshot. The permutation then scatters all rows
over the files, so a pair's earliest row is often not its first row in file order.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from ticdata.errors import UserError
from ticdata.snapshots import SnapshotTable

log = logging.getLogger(__name__)

# --- shape of the pool --------------------------------------------------------------------------
RESIGHT_SHARE = 0.25  # rows that re-sight an earlier pair
CRAWL_TIME_SHARE = 0.20  # rows that carry an exact WARC-Date
SAME_SNAPSHOT_SHARE = 0.20  # re-sightings in the pair's first snapshot; the rest are later
MEAN_LATER_GAP = 8.0  # mean distance, in crawls, of a later re-sighting
POPULAR_SHARE = 0.20  # re-sightings that hit the most popular 1% of pairs
CORE_YEARS = (2014, 2022)  # first sightings grow over these years ...
EDGE_SHARE = 0.02  # ... with this share before them and this share after them
GROWTH = 1.25  # yearly growth of new pairs over the core years
N_DOMAINS = 2000
WAT_FILES_PER_SNAPSHOT = 128
SCORE_MEAN, SCORE_SD = 0.30, 0.05  # clip_b32_similarity_score, roughly DataComp's
ZSTD_LEVEL = 1  # level 3 saves ~1% of the bytes for ~25% more write time

COLUMNS = (
    "uid",
    "url",
    "text",
    "source",
    "crawl_time",
    "original_width",
    "original_height",
    "clip_b32_similarity_score",
)
FILE_PATTERN = "pool-*.parquet"
SUMMARY_NAME = "_synth.json"

REASONS = ("missing_url", "missing_text", "bad_uid", "unknown_snapshot", "no_timestamp")


@dataclass(frozen=True)
class BadRowRates:
    """Share of rows planted with each defect; every bad row has exactly one."""

    missing_url: float = 0.004  # half null, half ""
    missing_text: float = 0.004  # half null, half "" or "   "
    bad_uid: float = 0.002  # uppercase hex or wrong length
    unknown_snapshot: float = 0.001  # a crawl id that is not in the crawl index, no crawl_time
    no_timestamp: float = 0.002  # no crawl id in source, no crawl_time

    def counts(self, rows: int) -> dict[str, int]:
        """Exact number of rows planted per reason for a pool of `rows` rows."""
        out = {}
        for f in fields(self):
            rate = getattr(self, f.name)
            if not (isinstance(rate, (int, float)) and 0.0 <= rate <= 1.0):
                raise UserError(f"bad-row rate {f.name}={rate!r}: expected a number between 0 and 1")
            out[f.name] = int(round(rate * rows))
        if sum(out.values()) > rows:
            raise UserError(f"bad-row rates {asdict(self)} add up to more than all {rows} rows; lower them")
        return out


assert tuple(f.name for f in fields(BadRowRates)) == REASONS

# Defect codes (one byte a row). Within a reason, the variants alternate in a fixed pattern so
# the mix ("half null, half empty") is exact.
GOOD = 0
URL_NULL, URL_EMPTY = 1, 2
TEXT_NULL, TEXT_EMPTY, TEXT_SPACES = 3, 4, 5
UID_UPPER, UID_SHORT, UID_LONG = 6, 7, 8
UNKNOWN_SNAPSHOT = 9
NO_TS_WARC_NAME, NO_TS_NULL, NO_TS_OTHER = 10, 11, 12
CODE_REASON = (None, "missing_url", "missing_url", "missing_text", "missing_text", "missing_text",
               "bad_uid", "bad_uid", "bad_uid", "unknown_snapshot", "no_timestamp", "no_timestamp",
               "no_timestamp")  # fmt: skip
_VARIANTS = {
    "missing_url": (URL_NULL, URL_EMPTY),
    "missing_text": (TEXT_NULL, TEXT_EMPTY, TEXT_NULL, TEXT_SPACES),
    "bad_uid": (UID_UPPER, UID_SHORT, UID_UPPER, UID_LONG),
    "unknown_snapshot": (UNKNOWN_SNAPSHOT,),
    "no_timestamp": (NO_TS_WARC_NAME, NO_TS_NULL, NO_TS_OTHER),
}

# --- counter-based hashing ----------------------------------------------------------------------
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array; a bijection of 64-bit values."""
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


# Independent streams of the hash (one key each, derived from the seed); the caption's word in
# slot i uses stream S_TEXT + i.
(S_UID_HI, S_UID_LO, S_FIRST, S_PARENT_POP, S_PARENT, S_SAME, S_GAP, S_SRC, S_HAS_CT, S_CT,
 S_DOMAIN, S_SECTION, S_URL_ID, S_EXT, S_TEMPLATE, S_WIDTH, S_ASPECT, S_SCORE1, S_SCORE2,
 S_TEXT) = range(20)  # fmt: skip
_N_STREAMS = S_TEXT + 32


class _Hasher:
    def __init__(self, seed: int):
        base = np.random.SeedSequence(seed).generate_state(1, np.uint64)[0]
        self.keys = _mix(np.arange(_N_STREAMS, dtype=np.uint64) * _GOLDEN + base)

    def bits(self, ids: np.ndarray, stream: int) -> np.ndarray:
        """64 random bits per id; for a fixed stream, distinct ids give distinct values."""
        x = ids.astype(np.uint64) * _GOLDEN
        x += self.keys[stream]
        return _mix(x)

    def below(self, ids: np.ndarray, stream: int, n) -> np.ndarray:
        """Uniform integers in [0, n) (n < 2**32, scalar or per id), as int64."""
        hi = self.bits(ids, stream) >> np.uint64(32)
        return ((hi * np.asarray(n, dtype=np.uint64)) >> np.uint64(32)).astype(np.int64)

    def uniform(self, ids: np.ndarray, stream: int) -> np.ndarray:
        """Uniform floats in (0, 1]."""
        return ((self.bits(ids, stream) >> np.uint64(11)) + np.uint64(1)) * (1.0 / 2**53)


_HEX_PAIRS = np.array([ord(a) | ord(b) << 8 for a in "0123456789abcdef" for b in "0123456789abcdef"], dtype="<u2")
_HEX_PAIRS_UPPER = np.array([ord(a) | ord(b) << 8 for a in "0123456789ABCDEF" for b in "0123456789ABCDEF"], dtype="<u2")


def _hex(words: list[np.ndarray], upper: np.ndarray | None = None) -> pl.Series:
    """Lowercase hex of big-endian uint64 words (16 chars each), built straight into Arrow buffers."""
    n = len(words[0])
    raw = np.empty((n, 8 * len(words)), dtype=np.uint8)
    for i, w in enumerate(words):
        raw[:, 8 * i : 8 * (i + 1)] = w.astype(">u8").view(np.uint8).reshape(n, 8)
    chars = _HEX_PAIRS[raw]  # (n, bytes) uint16 = two ASCII chars each
    if upper is not None and upper.any():
        chars[upper] = _HEX_PAIRS_UPPER[raw[upper]]
    width = 16 * len(words)
    offsets = np.arange(0, width * (n + 1), width, dtype=np.int64)
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars))
    return pl.Series(arr)


# --- vocabularies -------------------------------------------------------------------------------
_ADJ = ["red", "blue", "green", "vintage", "modern", "rustic", "tiny", "giant", "handmade", "wooden",
        "golden", "silver", "bright", "dark", "cozy", "elegant", "minimalist", "colorful", "old",
        "new", "beautiful", "cute", "funny", "abstract", "classic", "crème", "naïve", "hand-painted",
        "Scandinavian", "retro", "misty", "frozen", "sunny", "organic", "luxury", "cheap"]  # fmt: skip
_NOUN = ["sofa", "chair", "lamp", "dog", "cat", "mountain", "beach", "car", "bicycle", "house",
         "kitchen", "garden", "wedding dress", "pizza", "coffee mug", "sunset", "bridge", "guitar",
         "sneakers", "watch", "necklace", "book cover", "poster", "logo", "t-shirt", "backpack",
         "tent", "sailboat", "train", "skyline", "forest", "waterfall", "cake", "salad", "bouquet",
         "puppy", "kitten", "horse", "owl", "robot", "laptop", "phone case", "crème brûlée",
         "façade", "piñata", "smørrebrød", "croissant", "ramen", "lighthouse", "cathedral"]  # fmt: skip
_PLACE = ["Paris", "London", "New York", "Zürich", "São Paulo", "Kraków", "Reykjavík", "東京",
          "Москва", "Αθήνα", "Ciudad de México", "Düsseldorf", "Malmö", "Bogotá", "İstanbul",
          "Québec", "القاهرة", "Mumbai", "Cape Town", "Sydney", "Berlin", "Lisbon", "Seoul",
          "서울", "Kyoto", "Oslo", "Nairobi", "Lima", "Hà Nội", "Chicago"]  # fmt: skip
_PREP = [" in ", " at ", " near ", " on ", " over ", " above "]
_VERB = ["sitting", "standing", "resting", "glowing", "waiting", "floating", "running", "sleeping",
         "reflected", "covered in snow"]  # fmt: skip
_BRAND = ["Acme", "Nordic", "Zenith", "Blue Fern", "Kōda", "Lumière", "Ironwood", "Vega", "Pixelworks",
          "Maison Rouge", "Hōkū", "Fjällräv"]  # fmt: skip
_SIZE = ["Size S", "Size M", "Size L", "Size XL", "10 x 8 in", "A4", "1080p", "4K", "Pack of 3", "500 ml"]
_SHOP = ["Free Shipping", "Buy Online", "Sale", "New Arrival", "Best Price", "In Stock", "Shop Now",
         "£19.99", "€24,95", "$9.99", "¥1,280"]  # fmt: skip
_EMOJI = ["", "", "", "", " 🌅", " ❤️", " ✨", " 🐶", " 🔥", " 😍"]
_TAIL = ["", "", "", "", "", "", "", "", " - stock photo", " | Pinterest", " (2 of 5)",
         " #travel #photography", ", high resolution wallpaper for desktop and mobile devices",
         " — royalty-free image", " - Etsy", " on Flickr - Photo Sharing!", " ☆ Free download"]  # fmt: skip
_CLASSES = {
    "adj": _ADJ,
    "Adj": [w[:1].upper() + w[1:] for w in _ADJ],
    "noun": _NOUN,
    "Noun": [w[:1].upper() + w[1:] for w in _NOUN],
    "place": _PLACE,
    "prep": _PREP,
    "verb": _VERB,
    "brand": _BRAND,
    "size": _SIZE,
    "shop": _SHOP,
    "emoji": _EMOJI,
    "tail": _TAIL,
    "digit": list("0123456789"),
}
# (weight, template): {class} is a word of that class, everything else is literal.
_TEMPLATES = (
    (22, "{Adj} {noun}{prep}{place}{tail}"),
    (16, "photo of a {adj} {noun}{tail}"),
    (12, "{brand} {noun} - {size} | {shop}"),
    (12, "{Noun} {verb}{prep}the {noun}{emoji}"),
    (4, "IMG_{digit}{digit}{digit}{digit}.JPG"),
    (14, "{Adj} {noun} and {noun}{prep}{place}, {adj} {noun} {verb}{tail}{tail}"),
    (4, "{place}"),
    (16, "{adj} {noun} {noun} {noun} {adj} {noun} {noun} {noun} {noun}{emoji}{tail}"),
)
_DOMAIN_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "ve", "zo", "bri", "sha", "pix", "flo", "gra",
                     "don", "mar", "tel", "qui", "sun", "wex", "yor", "bel", "cor", "dan", "fen",
                     "hal", "jin", "kor", "lux", "nor", "pol"]  # fmt: skip
_TLDS = [".com", ".com", ".com", ".net", ".org", ".de", ".co.uk", ".fr", ".jp", ".io", ".info", ".shop", ".blog"]
_HOST_PREFIXES = ["www.", "www.", "", "images.", "cdn.", "static.", "media."]
_SECTIONS = ["images", "wp-content/uploads/2019/07", "photos", "media/catalog/product", "img", "files",
             "assets/i", "uploads"]  # fmt: skip
_EXTS = [".jpg", ".jpg", ".jpg", ".jpg", ".png", ".jpeg", ".webp", ".gif", ".JPG", ".jpg?w=800"]
_WIDTHS = [128, 200, 256, 320, 400, 480, 500, 600, 640, 700, 750, 800, 1000, 1024, 1200, 1280, 1600,
           1920, 2048, 3000, 4000]  # fmt: skip
_ASPECTS = [1.0, 1.0, 4 / 3, 4 / 3, 3 / 2, 16 / 9, 3 / 4, 2 / 3, 9 / 16, 2.0]
_UNKNOWN_IDS = [f"CC-MAIN-2099-{w:02d}" for w in range(1, 53)] + [f"CC-MAIN-1999-{w:02d}" for w in range(1, 13)]
_OTHER_SOURCES = ["s3://laion-mirror/part-{n:05d}.parquet", "https://example-dumps.net/alt-text/{n:05d}.jsonl.gz",
                  "local/scrape-{n:05d}.tsv"]  # fmt: skip


@dataclass(frozen=True)
class _Caption:
    vocab: pl.Series  # every (literal prefix + word + literal suffix) string of every template slot
    weights_cdf: np.ndarray  # template choice
    slots: tuple[tuple[tuple[int, int], ...], ...]  # per template: (base, size) into vocab per slot


def _captions() -> _Caption:
    vocab: list[str] = []
    slots = []
    for _, tpl in _TEMPLATES:
        parts = re.split(r"\{(\w+)\}", tpl)  # literal, class, literal, class, ..., literal
        literals, classes = parts[0::2], parts[1::2]
        assert classes, tpl
        t_slots = []
        for i, cls in enumerate(classes):
            prefix = literals[i]
            suffix = literals[-1] if i == len(classes) - 1 else ""
            words = [prefix + w + suffix for w in _CLASSES[cls]]
            t_slots.append((len(vocab), len(words)))
            vocab.extend(words)
        slots.append(tuple(t_slots))
    w = np.array([w for w, _ in _TEMPLATES], dtype=np.float64)
    return _Caption(pl.Series("v", vocab, dtype=pl.String), np.cumsum(w) / w.sum(), tuple(slots))


def _domains() -> list[str]:
    """N_DOMAINS distinct host names, the same for every seed."""
    rng = np.random.default_rng(20140101)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < N_DOMAINS:
        k = int(rng.integers(2, 4))
        name = "".join(_DOMAIN_SYLLABLES[int(i)] for i in rng.integers(0, len(_DOMAIN_SYLLABLES), k))
        if rng.random() < 0.3:
            name += "-" + _DOMAIN_SYLLABLES[int(rng.integers(0, len(_DOMAIN_SYLLABLES)))] + "shop"
        host = _HOST_PREFIXES[int(rng.integers(0, len(_HOST_PREFIXES)))] + name + _TLDS[int(rng.integers(0, len(_TLDS)))]
        if host not in seen:
            seen.add(host)
            out.append(host)
    return out


def _ts14(epoch_s: int) -> str:
    return np.datetime64(int(epoch_s), "s").astype(object).strftime("%Y%m%d%H%M%S")


def _wat_path(crawl_id: str | None, start_s: int, dur_s: int, rng: np.random.Generator) -> str:
    t1 = start_s + int(rng.integers(0, max(dur_s, 1)))
    t2 = t1 + int(rng.integers(1800, 4 * 3600))
    segment = f"{t1 * 1000 + int(rng.integers(0, 1000))}.{int(rng.integers(0, 100))}"
    name = f"CC-MAIN-{_ts14(t1)}-{_ts14(t2)}-{int(rng.integers(0, 100000)):05d}.warc.wat.gz"
    head = f"crawl-data/{crawl_id}/segments" if crawl_id else "crawl-data/segments"
    return f"{head}/{segment}/wat/{name}"


@dataclass(frozen=True)
class _Plan:
    rows: int
    n_pairs: int
    n_snap: int
    start_s: np.ndarray  # int64 per snapshot
    dur_s: np.ndarray  # int64 per snapshot (to - from)
    first_cdf: np.ndarray  # float64 per snapshot: cumulative weight of first sightings
    perm: np.ndarray  # position in the pool -> row id (first sightings are row ids < n_pairs)
    defect: np.ndarray  # int8 per row id
    hasher: _Hasher
    caption: _Caption
    url_prefixes: pl.Series  # "https://host/section/" for N_DOMAINS x len(_SECTIONS)
    sources: pl.Series  # WAT paths: n_snap*WAT_FILES_PER_SNAPSHOT, then unknown, warc-name-only, other
    src_unknown: int
    src_warc_name: int
    src_other: int


def _first_sighting_weights(table: SnapshotTable) -> np.ndarray:
    """Per snapshot: share of pairs first seen there (web growth over the core years, thin edges)."""
    years = np.array([s.start.year for s in table.snapshots])
    lo, hi = CORE_YEARS
    w = np.zeros(len(years), dtype=np.float64)
    groups = [
        (years < lo, EDGE_SHARE, None),
        ((years >= lo) & (years <= hi), 1.0 - 2 * EDGE_SHARE, GROWTH),
        (years > hi, EDGE_SHARE, None),
    ]
    for mask, share, growth in groups:
        ys = np.unique(years[mask])
        if not len(ys):
            continue
        yw = np.array([growth ** (y - lo) if growth else 1.0 for y in ys])
        yw = share * yw / yw.sum()
        for y, wy in zip(ys, yw):
            ids = np.flatnonzero(years == y)
            w[ids] = wy / len(ids)
    return w / w.sum()


def _plan(rows: int, seed: int, rates: BadRowRates, table: SnapshotTable) -> tuple[_Plan, dict[str, int]]:
    """Everything global: row order, planted defects, snapshot windows and the string tables."""
    planted = rates.counts(rows)
    n_resight = int(round(rows * RESIGHT_SHARE))
    n_pairs = rows - n_resight
    hasher = _Hasher(seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed))

    # Row order: a seeded shuffle of all row ids, so sightings of a pair scatter over the files.
    perm = np.arange(rows, dtype=np.int32 if rows < 2**31 else np.int64)
    rng.shuffle(perm)
    # Defects: disjoint random rows, split by reason in a fixed order, variants alternating.
    defect = np.zeros(rows, dtype=np.int8)
    chosen = rng.choice(rows, size=sum(planted.values()), replace=False)
    at = 0
    for reason in REASONS:
        n = planted[reason]
        variants = np.array(_VARIANTS[reason], dtype=np.int8)
        defect[chosen[at : at + n]] = variants[np.arange(n) % len(variants)]
        at += n

    snaps = table.snapshots
    start_s = np.array([int(s.start.timestamp()) for s in snaps], dtype=np.int64)
    dur_s = np.maximum(np.array([int((s.end - s.start).total_seconds()) for s in snaps], dtype=np.int64), 0)
    dur_s = np.minimum(dur_s, 2**32 - 2)  # the hash draws below 2**32

    # Source paths: a fixed set of WAT files per snapshot, then the planted-defect variants.
    src_rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    sources = [
        _wat_path(s.id, int(t0), int(d), src_rng)
        for s, t0, d in zip(snaps, start_s, dur_s)
        for _ in range(WAT_FILES_PER_SNAPSHOT)
    ]
    known = {s.id for s in snaps}
    unknown_ids = [i for i in _UNKNOWN_IDS if i not in known]
    src_unknown = len(sources)
    t2099 = int(np.datetime64("2099-01-05T00:00:00", "s").astype(np.int64))
    sources += [_wat_path(i, t2099, 300 * 86400, src_rng) for i in unknown_ids]
    src_warc_name = len(sources)
    sources += [_wat_path(None, int(t0), int(d), src_rng) for t0, d in zip(start_s[::4], dur_s[::4])]
    src_other = len(sources)
    sources += [tpl.format(n=n) for tpl in _OTHER_SOURCES for n in range(16)]

    hosts = _domains()
    prefixes = [f"https://{h}/{sec}/" for h in hosts for sec in _SECTIONS]
    plan = _Plan(
        rows=rows,
        n_pairs=n_pairs,
        n_snap=len(snaps),
        start_s=start_s,
        dur_s=dur_s,
        first_cdf=np.cumsum(_first_sighting_weights(table)),
        perm=perm,
        defect=defect,
        hasher=hasher,
        caption=_captions(),
        url_prefixes=pl.Series("p", prefixes, dtype=pl.String),
        sources=pl.Series("s", sources, dtype=pl.String),
        src_unknown=src_unknown,
        src_warc_name=src_warc_name,
        src_other=src_other,
    )
    return plan, planted


def _first_snapshot(plan: _Plan, pid: np.ndarray) -> np.ndarray:
    u = plan.hasher.uniform(pid, S_FIRST)
    return np.minimum(np.searchsorted(plan.first_cdf, u, side="left"), plan.n_snap - 1)


def _caption(plan: _Plan, pid: np.ndarray) -> pl.Series:
    cap, h = plan.caption, plan.hasher
    n = len(pid)
    if not n:
        return pl.Series("text", [], dtype=pl.String)
    tpl = np.minimum(np.searchsorted(cap.weights_cdf, h.uniform(pid, S_TEMPLATE), side="left"), len(cap.slots) - 1)
    order = np.argsort(tpl, kind="stable")
    bounds = np.searchsorted(tpl[order], np.arange(len(cap.slots) + 1))
    pieces = []
    for t, t_slots in enumerate(cap.slots):
        rows = order[bounds[t] : bounds[t + 1]]
        if not len(rows):
            continue
        p = pid[rows]
        cols = [
            cap.vocab.gather(pl.Series(base + h.below(p, S_TEXT + i, size), dtype=pl.UInt32)).alias(f"w{i}")
            for i, (base, size) in enumerate(t_slots)
        ]
        pieces.append(pl.DataFrame(cols).select(pl.concat_str(pl.all()).alias("text")).to_series())
    grouped = pl.concat(pieces, rechunk=True)
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    return grouped.gather(pl.Series(inverse, dtype=pl.UInt32 if n < 2**32 else pl.UInt64))


def _file_frame(plan: _Plan, lo: int, hi: int) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Rows lo..hi of the pool, their defect codes, and the pair ids of the valid ones."""
    h = plan.hasher
    r = plan.perm[lo:hi].astype(np.int64)
    code = plan.defect[r]

    # Which pair each row sights, and in which snapshot.
    resight = r >= plan.n_pairs
    pid = r.copy()
    k = r[resight] - plan.n_pairs
    popular = h.uniform(k, S_PARENT_POP) <= POPULAR_SHARE
    pool = np.where(popular, max(1, plan.n_pairs // 100), plan.n_pairs)
    pid[resight] = h.below(k, S_PARENT, pool)
    snap = _first_snapshot(plan, pid)
    same = h.uniform(k, S_SAME) <= SAME_SNAPSHOT_SHARE
    gap = 1 + np.floor(-np.log(h.uniform(k, S_GAP)) * MEAN_LATER_GAP).astype(np.int64)
    snap[resight] = np.minimum(snap[resight] + np.where(same, 0, gap), plan.n_snap - 1)

    # uid: 128 bits per pair (bijective in the pair id, so distinct pairs never collide).
    hi64, lo64 = h.bits(pid, S_UID_HI), h.bits(pid, S_UID_LO)
    upper = code == UID_UPPER
    if upper.any():
        # an all-digit uid has no case: plant a short one there instead
        shifts = np.arange(0, 64, 4, dtype=np.uint64)
        nibbles = np.concatenate([(w[upper, None] >> shifts) & np.uint64(15) for w in (hi64, lo64)], axis=1)
        caseless = ~(nibbles >= np.uint64(10)).any(axis=1)
        idx = np.flatnonzero(upper)[caseless]
        code[idx] = UID_SHORT
        upper[idx] = False
    uid = _hex([hi64, lo64], upper)

    # url: a host (skewed: a few big sites), a section, a 64-bit id and an extension.
    dom = (h.uniform(pid, S_DOMAIN) ** 3 * N_DOMAINS).astype(np.int64)
    prefix = plan.url_prefixes.gather(pl.Series(dom * len(_SECTIONS) + h.below(pid, S_SECTION, len(_SECTIONS)), dtype=pl.UInt32))
    url_id = _hex([h.bits(pid, S_URL_ID)])
    ext = pl.Series(_EXTS, dtype=pl.String).gather(pl.Series(h.below(pid, S_EXT, len(_EXTS)), dtype=pl.UInt32))
    text = _caption(plan, pid)

    # source: one of the snapshot's WAT files; the planted variants point elsewhere.
    src = snap * WAT_FILES_PER_SNAPSHOT + h.below(r, S_SRC, WAT_FILES_PER_SNAPSHOT)
    bad_src = {UNKNOWN_SNAPSHOT: (plan.src_unknown, plan.src_warc_name),
               NO_TS_WARC_NAME: (plan.src_warc_name, plan.src_other),
               NO_TS_OTHER: (plan.src_other, len(plan.sources))}  # fmt: skip
    for c, (a, b) in bad_src.items():
        m = code == c
        src[m] = a + h.below(r[m], S_SRC, b - a)

    # crawl_time: ~20% of rows, uniform inside the row's snapshot window; never on undatable rows.
    has_ct = (h.uniform(r, S_HAS_CT) <= CRAWL_TIME_SHARE) & (code != UNKNOWN_SNAPSHOT) & (code < NO_TS_WARC_NAME)
    ct_s = plan.start_s[snap] + h.below(r, S_CT, plan.dur_s[snap] + 1)

    width = np.array(_WIDTHS, dtype=np.int32)[h.below(pid, S_WIDTH, len(_WIDTHS))]
    aspect = np.array(_ASPECTS)[h.below(pid, S_ASPECT, len(_ASPECTS))]
    height = np.maximum(np.round(width / aspect), 1).astype(np.int32)
    z = np.sqrt(-2.0 * np.log(h.uniform(pid, S_SCORE1))) * np.cos(2 * np.pi * h.uniform(pid, S_SCORE2))
    score = np.clip(SCORE_MEAN + SCORE_SD * z, 0.0, 0.55).astype(np.float32)

    df = pl.DataFrame(
        {
            "uid": uid,
            "_prefix": prefix,
            "_url_id": url_id,
            "_ext": ext,
            "text": text,
            "source": plan.sources.gather(pl.Series(src, dtype=pl.UInt32)),
            "_ct_s": ct_s,
            "_has_ct": has_ct,
            "_code": code,
            "original_width": width,
            "original_height": height,
            "clip_b32_similarity_score": score,
        }
    )
    c = pl.col("_code")
    df = df.select(
        pl.when(c == UID_SHORT).then(pl.col("uid").str.slice(0, 31))
        .when(c == UID_LONG).then(pl.col("uid") + "0")
        .otherwise(pl.col("uid")).alias("uid"),
        pl.when(c == URL_NULL).then(pl.lit(None, pl.String))
        .when(c == URL_EMPTY).then(pl.lit(""))
        .otherwise(pl.concat_str("_prefix", pl.col("_url_id").str.slice(0, 12), "_ext")).alias("url"),
        pl.when(c == TEXT_NULL).then(pl.lit(None, pl.String))
        .when(c == TEXT_EMPTY).then(pl.lit(""))
        .when(c == TEXT_SPACES).then(pl.lit("   "))
        .otherwise(pl.col("text")).alias("text"),
        pl.when(c == NO_TS_NULL).then(pl.lit(None, pl.String)).otherwise(pl.col("source")).alias("source"),
        pl.when(pl.col("_has_ct"))
        .then(pl.from_epoch("_ct_s", time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        .otherwise(pl.lit(None, pl.String)).alias("crawl_time"),
        "original_width",
        "original_height",
        "clip_b32_similarity_score",
    )  # fmt: skip
    return df, code, pid[code == GOOD]


def _existing(out: Path) -> list[Path]:
    return sorted(out.glob(FILE_PATTERN)) if out.is_dir() else []


def make_pool(
    out: Path,
    rows: int,
    seed: int = 0,
    rows_per_file: int = 1_000_000,
    row_group_rows: int = 131_072,
    rates: BadRowRates | None = None,
    snapshots: SnapshotTable | None = None,
    *,
    overwrite: bool = False,
    workers: int = 2,
    progress: bool = False,
) -> dict:
    """Write a synthetic CommonCrawl-style pool to `out` and return its summary (also `out/_synth.json`).

    Same seed and arguments give byte-identical files. `workers` threads build files side by side
    (the output does not depend on it). Refuses a folder that already holds a pool unless
    `overwrite`, which then removes the old pool files first.
    """
    out = Path(out)
    for name, value, least in (("rows", rows, 1), ("rows_per_file", rows_per_file, 1), ("row_group_rows", row_group_rows, 1), ("seed", seed, 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
            raise UserError(f"synthetic pool: {name}={value!r}; expected a whole number >= {least}")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; choose another --out")
    old = _existing(out)
    if old and not overwrite:
        raise UserError(f"{out}: already holds a pool ({len(old)} {FILE_PATTERN} files); choose an empty folder or pass --overwrite")
    rates = rates or BadRowRates()
    table = snapshots or SnapshotTable.load()

    plan, planted = _plan(int(rows), int(seed), rates, table)
    out.mkdir(parents=True, exist_ok=True)
    for p in old:
        p.unlink()
    (out / SUMMARY_NAME).unlink(missing_ok=True)

    n_files = math.ceil(rows / rows_per_file)
    seen = np.zeros(plan.n_pairs, dtype=bool)
    found = np.zeros(len(CODE_REASON), dtype=np.int64)

    def build(i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = i * rows_per_file, min(rows, (i + 1) * rows_per_file)
        df, code, valid_pid = _file_frame(plan, lo, hi)
        path = out / f"pool-{i:05d}.parquet"
        tmp = out / f".{path.name}.tmp"
        df.write_parquet(tmp, compression="zstd", compression_level=ZSTD_LEVEL, statistics=True, row_group_size=row_group_rows)
        os.replace(tmp, path)
        return np.bincount(code, minlength=len(CODE_REASON)), valid_pid

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=rows, unit="row", unit_scale=True, desc=f"synth pool -> {out}")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
        for i, (codes, valid_pid) in enumerate(ex.map(build, range(n_files))):
            found += codes
            seen[valid_pid] = True
            if bar is not None:
                bar.update(min(rows, (i + 1) * rows_per_file) - i * rows_per_file)
            log.debug("wrote pool-%05d.parquet", i)
    if bar is not None:
        bar.close()

    # What was actually written (uid-case fallbacks move a row between bad_uid variants only).
    actual = {r: 0 for r in REASONS}
    for c, n in enumerate(found.tolist()):
        if CODE_REASON[c]:
            actual[CODE_REASON[c]] += n
    if actual != planted:  # a bug, not bad input
        raise AssertionError(f"planted {actual} != intended {planted}")
    valid_rows = rows - sum(actual.values())
    kept = int(seen.sum())
    summary = {
        "rows": int(rows),
        "files": n_files,
        "seed": int(seed),
        "unique_pairs": plan.n_pairs,
        "resightings": rows - plan.n_pairs,
        "planted": actual,
        "expected": {"valid_rows": valid_rows, "kept": kept, "duplicates": valid_rows - kept},
    }
    tmp = out / f".{SUMMARY_NAME}.tmp"
    tmp.write_text(json.dumps(summary, sort_keys=True, indent=2) + "\n")
    os.replace(tmp, out / SUMMARY_NAME)
    log.info(
        "synthetic pool: %d rows in %d files, %d pairs, %d re-sightings, %d bad rows planted, %d uids to keep -> %s",
        rows, n_files, plan.n_pairs, rows - plan.n_pairs, sum(actual.values()), kept, out,
    )  # fmt: skip
    return summary
