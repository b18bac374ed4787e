"""Which rows of a bucket become its held-out retrieval and classification sets (pure functions).

Retrieval (TiC-CLIP's dynamic retrieval): pairs whose caption is informative (enough words, not
too many, no URL or file name), unique in its bucket (a caption shared by several images cannot
retrieve one of them), whose image is unique in the bucket (sha256) and not blank (pHash).
Classification (DataCompNet-style): images whose caption names exactly one class (or whose label
column holds one), at most `per_class` per class. Within one bucket no two held-out images are
near-duplicates (pHash within the decontamination distance), so a retrieval query has one answer.

Order: each candidate's rank is a 64-bit mix of its uid and the seed (splitmix64), so a selection
depends only on (seed, uids, parameters), never on row order, file layout or worker count; the
first N candidates in rank order are taken, one class's quota at a time for classification.
`select_bucket` applies the rule to a bucket held in memory; `evalsets_pick` applies the same
pieces (`ranked`, `why_not_retrieval`, `label_rows`, `pick_retrieval`, `pick_classification`) to a
bucket no process holds, from per-file counts and the candidates fetched by rank.

Caption filter (TiC-CLIP's DataCompNet, after LAIONet): optionally a labelled caption must also be
close to its class's text in a sentence embedding (`CaptionCheck`, e.g. a CLIP text tower); the
check is asked only about candidates in rank order, a window per class widened until the class's
quota is met or its captions run out, so its cost follows the set sizes, not the bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import polars as pl

from ticdata.classes import Vocabulary, class_text, match_captions
from ticdata.mix import splitmix64 as _splitmix
from ticdata.phash import informative, near_pairs

RETRIEVAL, CLASSIFICATION, TRAIN, EXCLUDED = "retrieval", "classification", "train", "excluded"
NOT_DOWNLOADED = "not_downloaded"  # `tic evalsets`: a row without an image in the shards, never trainable
_URL_OR_FILE = r"(?i)(https?://|www\.|\.(jpe?g|png|gif|webp|bmp|tiff?)\b|\bimg_\d|\bdsc_?\d)"
_WORD = r"\p{L}{2,}"
CANDIDATE_FACTOR = 4  # near-duplicate checks look at this many times the quota of candidates
# (captions, label per caption) -> keep mask: the caption is close enough to its class's text
CaptionCheck = Callable[[list[str], np.ndarray], np.ndarray]
# (labelled rows so far, {class: n}) -> those rows plus whatever makes each class's first n present
Widen = Callable[[pl.DataFrame, dict], pl.DataFrame]


@dataclass(frozen=True)
class SelectParams:
    retrieval: int
    per_class: int
    seed: int = 0
    distance: int = 4
    min_words: int = 3
    max_words: int = 60


def rank_of(uids: pl.Series, seed: int) -> np.ndarray:
    """The seeded 64-bit rank of each uid (hex string): lower ranks are picked first."""
    hi = uids.str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64, strict=False).fill_null(0).to_numpy()
    lo = uids.str.slice(16, 16).str.to_integer(base=16, dtype=pl.UInt64, strict=False).fill_null(0).to_numpy()
    s = _splitmix(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    return _splitmix(_splitmix(hi ^ s) ^ lo)


def caption_reason(text: pl.Expr, min_words: int, max_words: int) -> pl.Expr:
    """Why a caption is not informative enough for retrieval, or null when it is."""
    words = text.str.count_matches(_WORD)
    return (
        pl.when(text.is_null() | (text.str.strip_chars() == "")).then(pl.lit("no_caption"))
        .when(text.str.contains(_URL_OR_FILE)).then(pl.lit("caption_is_url_or_file"))
        .when(words < min_words).then(pl.lit("short_caption"))
        .when(words > max_words).then(pl.lit("long_caption"))
        .otherwise(None)
    )


def normal_caption(text: pl.Expr) -> pl.Expr:
    """A caption as compared for repeats: lower case, runs of non-alphanumerics as one space."""
    return text.str.to_lowercase().str.replace_all(r"[^\p{L}\p{N}]+", " ").str.strip_chars()


def _greedy(cands: pl.DataFrame, quota: dict, taken_phash: np.ndarray, distance: int) -> tuple[list[int], int]:
    """Indices (rows of `cands`, already in rank order) picked group by group up to each group's
    quota, skipping any image within `distance` of one picked before or of `taken_phash`."""
    ph = cands["phash"].to_numpy()
    blocked = np.zeros(len(cands), dtype=bool)
    if len(taken_phash):
        hit = near_pairs(ph, taken_phash, distance)
        blocked[hit["q"].to_numpy()] = True
    pairs = near_pairs(ph, ph, distance).filter(pl.col("q") != pl.col("r"))
    neighbours: dict[int, list[int]] = {}
    for q, r in zip(pairs["q"].to_list(), pairs["r"].to_list()):
        neighbours.setdefault(q, []).append(r)
    left = dict(quota)
    picked, skipped = [], 0
    for i, g in enumerate(cands["group"].to_list()):
        if left.get(g, 0) <= 0:
            continue
        if blocked[i]:
            skipped += 1
            continue
        picked.append(i)
        left[g] -= 1
        for j in neighbours.get(i, ()):
            blocked[j] = True
    return picked, skipped


def caption_check(scorer: Callable[[list[str], list[str]], np.ndarray], vocab: Vocabulary, threshold: float) -> CaptionCheck:
    """The filter as select_bucket asks it: is each caption at least `threshold` similar (cosine of
    `scorer`'s embeddings) to its class's text (`classes.class_text`)?"""

    def check(texts: list[str], labels: np.ndarray) -> np.ndarray:
        return np.asarray(scorer(texts, [class_text(vocab, int(i)) for i in labels])) >= threshold

    return check


def _caption_checked(labelled: pl.DataFrame, need: int, check: CaptionCheck, totals: dict | None = None,
                     widen: Widen | None = None) -> tuple[pl.DataFrame, int]:
    """The labelled rows (rank order) that pass `check`, asking it only about the first `need` of a
    class, then twice as many for classes still short, until each class has `need` or runs out.
    `totals` (rows per class) and `widen` let `labelled` be a rank-order prefix per class that
    `widen(labelled, {class: n})` extends to each class's first n rows (the distributed selection)."""
    if totals is None:
        totals = dict(labelled.group_by("label").len().iter_rows())
    kept: list[pl.DataFrame] = []
    dropped, lo, hi = 0, 0, max(need, 1)
    open_classes = pl.Series("label", sorted(c for c, n in totals.items() if n > 0), dtype=pl.Int32)
    while open_classes.len():
        if widen is not None:
            labelled = widen(labelled, {c: hi for c in open_classes.to_list()})
        df = labelled.with_columns(_n=pl.int_range(pl.len()).over("label"))
        batch = df.filter((pl.col("_n") >= lo) & (pl.col("_n") < hi) & pl.col("label").is_in(open_classes.implode()))
        if batch.height == 0:
            break
        keep = np.asarray(check(batch["text"].fill_null("").to_list(), batch["label"].to_numpy()), dtype=bool)
        kept.append(batch.filter(pl.Series(keep)))
        dropped += int((~keep).sum())
        have = pl.concat(kept).group_by("label").len()
        full = set(have.filter(pl.col("len") >= need)["label"].to_list())
        open_classes = pl.Series("label", sorted(c for c, n in totals.items() if n > hi and c not in full), dtype=pl.Int32)
        lo, hi = hi, hi * 2
    out = pl.concat(kept).drop("_n").sort("_rank") if kept else labelled.clear()
    return out, dropped


def ranked(rows: pl.DataFrame, params: SelectParams) -> pl.DataFrame:
    """`rows` with the columns the rule reads row by row: seeded rank, flat image, caption key."""
    return rows.with_columns(
        _rank=pl.Series(rank_of(rows["uid"], params.seed), dtype=pl.UInt64),
        _flat=pl.Series(~informative(rows["phash"].to_numpy()), dtype=pl.Boolean),
        _norm=normal_caption(pl.col("text")),
    )


def why_not_retrieval(params: SelectParams) -> pl.Expr:
    """Why a ranked row cannot be a retrieval pair, or null; `_dup_image` / `_dup_caption` say
    whether its image (sha256) / normalised caption occur more than once in its bucket."""
    reason = (
        pl.when(pl.col("_flat")).then(pl.lit("flat_image"))
        .when(pl.col("_dup_image")).then(pl.lit("repeated_image"))
        .otherwise(caption_reason(pl.col("text"), params.min_words, params.max_words))
    )
    return pl.when(reason.is_null() & pl.col("_dup_caption")).then(pl.lit("repeated_caption")).otherwise(reason)


def label_rows(rows: pl.DataFrame, vocab: Vocabulary) -> pl.DataFrame:
    """`rows` with `label` (the class index, or null) and `class_match` (row by row)."""
    if vocab.column is not None:
        index = {n: i for i, n in enumerate(vocab.names)}
        return rows.with_columns(label=pl.col(vocab.column).replace_strict(index, default=None, return_dtype=pl.Int32),
                                 class_match=pl.lit("one"))
    return match_captions(rows, vocab)


def pick_retrieval(eligible: pl.DataFrame, size: int, distance: int) -> tuple[pl.DataFrame, int]:
    """The retrieval set from the eligible rows in rank order (at least their first
    size x CANDIDATE_FACTOR), and how many near-duplicates were skipped."""
    window = eligible.head(size * CANDIDATE_FACTOR).with_columns(group=pl.lit(0))
    idx, skipped = _greedy(window, {0: size}, np.zeros(0, np.uint64), distance)
    return window[idx], skipped


def pick_classification(labelled: pl.DataFrame, ret_phash: np.ndarray, params: SelectParams, check: CaptionCheck | None,
                        counts: dict, totals: dict | None = None, widen: Widen | None = None) -> pl.DataFrame:
    """The classification set from the labelled rows outside the retrieval set (rank order; a
    prefix per class when `widen` can extend it), filling `counts`."""
    need = params.per_class * CANDIDATE_FACTOR
    if check is not None and params.per_class:
        labelled, dropped = _caption_checked(labelled, need, check, totals, widen)
        counts["caption_not_similar"] = dropped
    elif widen is not None and need:
        labelled = widen(labelled, {c: need for c, n in (totals or {}).items() if n > 0})
    cands = (labelled.with_columns(_n=pl.int_range(pl.len()).over("label"))
             .filter(pl.col("_n") < need).sort("_rank")
             .with_columns(group=pl.col("label")))
    quota = {g: params.per_class for g in cands["label"].unique().to_list()}
    idx, skipped = _greedy(cands, quota, ret_phash, params.distance)
    cls = cands[idx]
    counts["classification_near_duplicates_skipped"] = skipped
    counts[CLASSIFICATION] = cls.height
    counts["classes"] = cls["label"].n_unique()
    return cls


def picks_table(ret: pl.DataFrame, cls: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([
        ret.select("uid", split=pl.lit(RETRIEVAL), label=pl.lit(None, pl.Int32)),
        cls.select("uid", split=pl.lit(CLASSIFICATION), label=pl.col("label").cast(pl.Int32)),
    ])


def select_bucket(rows: pl.DataFrame, params: SelectParams, vocab: Vocabulary,
                  caption_check: CaptionCheck | None = None) -> tuple[pl.DataFrame, dict]:
    """The held-out rows of one bucket: (uid, split, label) and counts of why rows were passed over.

    `rows`: uid, text, sha256, phash (UInt64) for every downloaded image of the bucket, plus the
    vocabulary's label column when it has one. `caption_check`: the DataCompNet caption filter."""
    counts: dict = {"images": rows.height}
    df = ranked(rows, params).with_columns(_dup_image=pl.col("sha256").is_duplicated(),
                                           _dup_caption=pl.col("_norm").is_duplicated()).sort("_rank")
    df = df.with_columns(_why=why_not_retrieval(params))
    counts["retrieval_not_eligible"] = dict(sorted(
        (r, n) for r, n in df.filter(pl.col("_why").is_not_null()).group_by("_why").len().iter_rows()))
    ret, skipped = pick_retrieval(df.filter(pl.col("_why").is_null()), params.retrieval, params.distance)
    counts["retrieval_near_duplicates_skipped"] = skipped
    counts[RETRIEVAL] = ret.height
    # -- classification, from the rest
    rest = label_rows(df.filter(~pl.col("_flat") & ~pl.col("_dup_image") & ~pl.col("uid").is_in(ret["uid"].implode())), vocab)
    counts["class_match"] = dict(sorted(rest.group_by("class_match").len().iter_rows()))
    labelled = rest.filter(pl.col("label").is_not_null()).sort("_rank")  # joins need not keep order
    cls = pick_classification(labelled, ret["phash"].to_numpy(), params, caption_check, counts)
    return picks_table(ret, cls), counts
