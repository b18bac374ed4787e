"""The rows of a synthetic pool: any slice of the planned row order built column-wise, as one
Polars frame, from the plan alone (no state is shared between slices, so files build side by
side and a pair re-sighted in another file is rebuilt identically there).

Every value is a counter-based hash of a row id or pair id (see pool_plan.Hasher); strings are
built column-wise: hex from a byte lookup table straight into Arrow buffers, captions and urls as
Polars gathers from small vocabularies joined with `concat_str`.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from ticdata.synth.pool_plan import (
    CRAWL_TIME_SHARE,
    GOOD,
    MEAN_LATER_GAP,
    NO_TS_NULL,
    NO_TS_OTHER,
    NO_TS_WARC_NAME,
    POPULAR_SHARE,
    S_ASPECT,
    S_CT,
    S_DOMAIN,
    S_EXT,
    S_FIRST,
    S_GAP,
    S_HAS_CT,
    S_PARENT,
    S_PARENT_POP,
    S_SAME,
    S_SCORE1,
    S_SCORE2,
    S_SECTION,
    S_SRC,
    S_TEMPLATE,
    S_TEXT,
    S_UID_HI,
    S_UID_LO,
    S_URL_ID,
    S_WIDTH,
    SAME_SNAPSHOT_SHARE,
    SCORE_MEAN,
    SCORE_SD,
    TEXT_EMPTY,
    TEXT_NULL,
    TEXT_SPACES,
    UID_LONG,
    UID_SHORT,
    UID_UPPER,
    UNKNOWN_SNAPSHOT,
    URL_EMPTY,
    URL_NULL,
    WAT_FILES_PER_SNAPSHOT,
    Plan,
)
from ticdata.synth.pool_vocab import ASPECTS, EXTS, N_DOMAINS, SECTIONS, WIDTHS

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


def _first_snapshot(plan: Plan, pid: np.ndarray) -> np.ndarray:
    u = plan.hasher.uniform(pid, S_FIRST)
    return np.minimum(np.searchsorted(plan.first_cdf, u, side="left"), plan.n_snap - 1)


def _caption(plan: Plan, pid: np.ndarray) -> pl.Series:
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


def file_frame(plan: Plan, lo: int, hi: int) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
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
    prefix = plan.url_prefixes.gather(pl.Series(dom * len(SECTIONS) + h.below(pid, S_SECTION, len(SECTIONS)), dtype=pl.UInt32))
    url_id = _hex([h.bits(pid, S_URL_ID)])
    ext = pl.Series(EXTS, dtype=pl.String).gather(pl.Series(h.below(pid, S_EXT, len(EXTS)), dtype=pl.UInt32))
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

    width = np.array(WIDTHS, dtype=np.int32)[h.below(pid, S_WIDTH, len(WIDTHS))]
    aspect = np.array(ASPECTS)[h.below(pid, S_ASPECT, len(ASPECTS))]
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
