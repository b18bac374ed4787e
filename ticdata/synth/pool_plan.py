"""What a synthetic pool will hold, decided before any row is built: the planted defects and
their rates, the row order, the snapshot windows, the WAT files a row can come from, and the
keyed counter-based hash (splitmix64) every per-row and per-pair draw comes from.

This is the pool's only global state; pool_rows turns any slice of the plan into rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import polars as pl

from ticdata.errors import UserError
from ticdata.mix import GOLDEN, MASK64, splitmix64
from ticdata.snapshots import SnapshotTable
from ticdata.synth.crawlpaths import wat_path
from ticdata.synth.pool_vocab import SECTIONS, CaptionTable, caption_table, domains

# --- shape of the pool --------------------------------------------------------------------------
RESIGHT_SHARE = 0.25  # rows that re-sight an earlier pair
CRAWL_TIME_SHARE = 0.20  # rows that carry an exact WARC-Date
SAME_SNAPSHOT_SHARE = 0.20  # re-sightings in the pair's first snapshot; the rest are later
MEAN_LATER_GAP = 8.0  # mean distance, in crawls, of a later re-sighting
POPULAR_SHARE = 0.20  # re-sightings that hit the most popular 1% of pairs
CORE_YEARS = (2014, 2022)  # first sightings grow over these years ...
EDGE_SHARE = 0.02  # ... with this share before them and this share after them
GROWTH = 1.25  # yearly growth of new pairs over the core years
WAT_FILES_PER_SNAPSHOT = 128
SCORE_MEAN, SCORE_SD = 0.30, 0.05  # clip_b32_similarity_score, roughly DataComp's

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
_GOLDEN = np.uint64(GOLDEN)

# Independent streams of the hash (one key each, derived from the seed); the caption's word in
# slot i uses stream S_TEXT + i.
(S_UID_HI, S_UID_LO, S_FIRST, S_PARENT_POP, S_PARENT, S_SAME, S_GAP, S_SRC, S_HAS_CT, S_CT,
 S_DOMAIN, S_SECTION, S_URL_ID, S_EXT, S_TEMPLATE, S_WIDTH, S_ASPECT, S_SCORE1, S_SCORE2,
 S_TEXT) = range(20)  # fmt: skip
_N_STREAMS = S_TEXT + 32


class Hasher:
    """Draws that are pure functions of (seed, stream, id): splitmix64 of id x GOLDEN + the stream's key."""

    def __init__(self, seed: int):
        base = int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0])
        # splitmix64 adds GOLDEN to its input, so keys are derived from, and stored as, GOLDEN less:
        # key[s] = splitmix64(s x GOLDEN + base - GOLDEN), a draw = splitmix64(id x GOLDEN + key - GOLDEN).
        keys = splitmix64(np.arange(_N_STREAMS, dtype=np.uint64) * _GOLDEN + np.uint64((base - GOLDEN) & MASK64))
        self.offsets = keys - _GOLDEN

    def bits(self, ids: np.ndarray, stream: int) -> np.ndarray:
        """64 random bits per id; for a fixed stream, distinct ids give distinct values."""
        x = ids.astype(np.uint64) * _GOLDEN
        x += self.offsets[stream]
        return splitmix64(x)

    def below(self, ids: np.ndarray, stream: int, n) -> np.ndarray:
        """Uniform integers in [0, n) (n < 2**32, scalar or per id), as int64."""
        hi = self.bits(ids, stream) >> np.uint64(32)
        return ((hi * np.asarray(n, dtype=np.uint64)) >> np.uint64(32)).astype(np.int64)

    def uniform(self, ids: np.ndarray, stream: int) -> np.ndarray:
        """Uniform floats in (0, 1]."""
        return ((self.bits(ids, stream) >> np.uint64(11)) + np.uint64(1)) * (1.0 / 2**53)


# --- the plan -----------------------------------------------------------------------------------
_UNKNOWN_IDS = [f"CC-MAIN-2099-{w:02d}" for w in range(1, 53)] + [f"CC-MAIN-1999-{w:02d}" for w in range(1, 13)]
_OTHER_SOURCES = ["s3://laion-mirror/part-{n:05d}.parquet", "https://example-dumps.net/alt-text/{n:05d}.jsonl.gz",
                  "local/scrape-{n:05d}.tsv"]  # fmt: skip


def _wat_path(crawl_id: str | None, start_s: int, dur_s: int, rng: np.random.Generator) -> str:
    """A WAT file written inside [start_s, start_s + dur_s), its name drawn from `rng`."""
    t1 = start_s + int(rng.integers(0, max(dur_s, 1)))
    t2 = t1 + int(rng.integers(1800, 4 * 3600))
    segment_ms, segment_part, file_no = (int(rng.integers(0, n)) for n in (1000, 100, 100000))
    return wat_path(crawl_id, t1, t2, segment_ms, segment_part, file_no)


@dataclass(frozen=True)
class Plan:
    rows: int
    n_pairs: int
    n_snap: int
    start_s: np.ndarray  # int64 per snapshot
    dur_s: np.ndarray  # int64 per snapshot (to - from)
    first_cdf: np.ndarray  # float64 per snapshot: cumulative weight of first sightings
    perm: np.ndarray  # position in the pool -> row id (first sightings are row ids < n_pairs)
    defect: np.ndarray  # int8 per row id
    hasher: Hasher
    caption: CaptionTable
    url_prefixes: pl.Series  # "https://host/section/" for N_DOMAINS x len(SECTIONS)
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


def plan_pool(rows: int, seed: int, rates: BadRowRates, table: SnapshotTable,
              resight_share: float = RESIGHT_SHARE) -> tuple[Plan, dict[str, int]]:
    """Everything global: row order, planted defects, snapshot windows and the string tables.
    `resight_share` of the rows re-sight an earlier pair: 1 / (1 - share) sightings per pair on average."""
    planted = rates.counts(rows)
    n_resight = int(round(rows * resight_share))
    n_pairs = rows - n_resight
    hasher = Hasher(seed)
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

    hosts = domains()
    prefixes = [f"https://{h}/{sec}/" for h in hosts for sec in SECTIONS]
    plan = Plan(
        rows=rows,
        n_pairs=n_pairs,
        n_snap=len(snaps),
        start_s=start_s,
        dur_s=dur_s,
        first_cdf=np.cumsum(_first_sighting_weights(table)),
        perm=perm,
        defect=defect,
        hasher=hasher,
        caption=caption_table(),
        url_prefixes=pl.Series("p", prefixes, dtype=pl.String),
        sources=pl.Series("s", sources, dtype=pl.String),
        src_unknown=src_unknown,
        src_warc_name=src_warc_name,
        src_other=src_other,
    )
    return plan, planted
