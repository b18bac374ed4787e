"""`tic evalsets` at any pool size, part 4: the selection in the driver, from counts and candidates.

`evalselect.select_bucket`'s rule, unchanged, over a bucket nobody holds: the per-unit tallies
give every count the rule reports, and only the rows it may pick are fetched, by rank. A bucket's
first N eligible rows in rank order are the rows with rank <= some cap; ranks are a seeded 64-bit
mix of the uid, so about N x 2^64 / eligible is enough. A round fetches up to a cap chosen for
about twice N (plus 32) and a group that came back short is fetched again with a cap four times
higher (or with no cap): any cap gives the same rows, only the number of rounds changes.

Retrieval needs its first retrieval x CANDIDATE_FACTOR eligible rows; classification each class's
first per_class x CANDIDATE_FACTOR labelled rows outside the retrieval set, and under the caption
filter as many as its widening windows reach (`evalselect._caption_checked`, asked to `widen`).
The driver holds one bucket's candidates at a time and the picks of all buckets.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import polars as pl

from ticdata.evalselect import (CANDIDATE_FACTOR, CLASSIFICATION, RETRIEVAL, CaptionCheck, SelectParams, pick_classification,
                                pick_retrieval, picks_table)
from ticdata.evalsets_join import UnitSpec
from ticdata.evalsets_pool import DETAILS, fetch_candidates, unit_details
from ticdata.executor import Task
from ticdata.storage import write_parquet_atomic

ALL = (1 << 64) - 1  # the cap that fetches every row
CAND_SCHEMA = {"uid": pl.String, "_rank": pl.UInt64, "phash": pl.UInt64, "label": pl.Int32, "class_match": pl.String,
               "text": pl.String, "unit": pl.Int32}
DETAIL_SCHEMA = {"uid": pl.String, "sha256": pl.String, "phash": pl.UInt64, "tar": pl.String, "url": pl.String, "text": pl.String}


@dataclass
class Tally:
    """One bucket's counts summed over the units, and the units that hold its candidates."""

    images: int = 0
    why: Counter = field(default_factory=Counter)
    eligible: int = 0
    class_match: Counter = field(default_factory=Counter)
    labelled: Counter = field(default_factory=Counter)
    units: list = field(default_factory=list)


def tallies(counts: dict, buckets: list[str]) -> dict[str, Tally]:
    """Each bucket's Tally from the summed counts (`evalsets_pool.merge_counts`)."""
    out = {b: Tally() for b in buckets}
    for b, c in counts["buckets"].items():
        out[b] = Tally(c["images"], Counter(c["why"]), c["eligible"], Counter(c["class_match"]),
                       Counter({int(k): v for k, v in c["labelled"].items()}), sorted(c["units"]))
    return out


def cap_for(need: int, total: int) -> int:
    """A rank cap under which about twice `need` of `total` uniformly ranked rows lie."""
    if need >= total:
        return ALL
    share = (2 * need + 32) / total
    return ALL if share >= 1 else int(share * ALL)


def _frame(rows: dict, unit: int) -> pl.DataFrame:
    n = len(rows["uid"])
    data = {c: rows.get(c, [None] * n) for c in CAND_SCHEMA if c != "unit"}
    return pl.DataFrame(data, schema={c: t for c, t in CAND_SCHEMA.items() if c != "unit"}).with_columns(unit=pl.lit(unit, pl.Int32))


class Fetcher:
    """Fetch rounds for one bucket: per group (retrieval: one; classification: a class) the rows
    with rank <= the group's cap, the cap raised until the group's first n rows are all in."""

    def __init__(self, job, executor, units: list[UnitSpec], bucket: str, tag: str, with_text: bool):
        self.job, self.executor, self.bucket, self.tag, self.with_text = job, executor, bucket, tag, with_text
        self.units = units
        self.rounds = 0
        self.caps: dict = {}
        self.rows: dict = {}

    def _round(self, kind: str, caps: dict, exclude: str | None) -> dict:
        """One stage over the bucket's units; the rows per group."""
        self.rounds += 1
        pairs = [[g if kind == CLASSIFICATION else None, c] for g, c in sorted(caps.items(), key=lambda x: str(x[0]))]
        tasks = [Task(f"fetch-{self.tag}-{self.rounds:03d}-{u.index:06d}", fetch_candidates,
                      (u, self.bucket, kind, pairs, exclude, self.with_text), f"{self.bucket} candidates") for u in self.units]
        got = self.job.stage(self.executor, f"candidates {self.bucket} ({kind})", tasks)
        frames = [_frame(got[t.key]["rows"], t.args[0].index) for t in tasks]
        df = pl.concat(frames) if frames else pl.DataFrame(schema=CAND_SCHEMA)
        if kind == RETRIEVAL:
            return {(kind, g): df for g in caps}
        return {(kind, g): df.filter(pl.col("label") == g) for g in caps}

    def ensure(self, kind: str, needs: dict, totals: dict, exclude: str | None = None) -> pl.DataFrame:
        """Every fetched row of `kind`, with each group's first min(n, total) rows among them."""
        def have(g) -> int:
            return self.rows[(kind, g)].height if (kind, g) in self.rows else 0

        want = {g: min(n, totals.get(g, 0)) for g, n in needs.items()}
        short = {g: n for g, n in want.items() if have(g) < n}
        caps = {g: max(cap_for(n, totals[g]), self.caps.get((kind, g), 0)) for g, n in short.items()}
        while short:
            for key, df in self._round(kind, caps, exclude).items():
                self.rows[key], self.caps[key] = df, caps[key[1]]
            short = {g: n for g, n in short.items() if have(g) < n and self.caps[(kind, g)] < ALL}
            caps = {g: min(ALL, self.caps[(kind, g)] * 4 + 1) for g in short}
        frames = [f for (k, _), f in self.rows.items() if k == kind and f.height]
        return (pl.concat(frames) if frames else pl.DataFrame(schema=CAND_SCHEMA)).sort("_rank", "uid")


def select_in_bucket(t: Tally, params: SelectParams, check: CaptionCheck | None, fetch: Fetcher) -> tuple[pl.DataFrame, dict]:
    """`evalselect.select_bucket` for one bucket from its tally and fetched candidates: the picks
    (uid, split, label, unit) and the same counts."""
    counts: dict = {"images": t.images, "retrieval_not_eligible": dict(sorted(t.why.items()))}
    need = params.retrieval * CANDIDATE_FACTOR
    eligible = fetch.ensure(RETRIEVAL, {0: need}, {0: t.eligible}) if need else pl.DataFrame(schema=CAND_SCHEMA)
    ret, skipped = pick_retrieval(eligible, params.retrieval, params.distance)
    counts["retrieval_near_duplicates_skipped"] = skipped
    counts[RETRIEVAL] = ret.height
    matched = t.class_match - Counter(ret["class_match"].to_list())
    counts["class_match"] = dict(sorted((k, v) for k, v in matched.items() if v > 0))
    totals = dict(t.labelled - Counter(ret["label"].drop_nulls().to_list()))
    exclude = fetch.job.path("exclude", f"{fetch.tag}.parquet")  # the retrieval set: a file, not an argument per task
    write_parquet_atomic(exclude, ret.select("uid"))

    def widen(_df: pl.DataFrame, needs: dict) -> pl.DataFrame:
        return fetch.ensure(CLASSIFICATION, needs, totals, str(exclude))

    labelled = pl.DataFrame(schema=CAND_SCHEMA)
    cls = pick_classification(labelled, ret["phash"].to_numpy(), params, check, counts, totals, widen)
    units = pl.concat([ret.select("uid", "unit"), cls.select("uid", "unit")])
    return picks_table(ret, cls).join(units, on="uid", how="left"), counts


def fetch_details(job, executor, units: dict[int, UnitSpec], picks: pl.DataFrame) -> pl.DataFrame:
    """sha256, pHash, tar, url and text of every pick (uid, unit), asked of the units holding them."""
    tasks = []
    for (u,), part in sorted(picks.partition_by("unit", as_dict=True).items()):
        tasks.append(Task(f"details-{u:06d}", unit_details, (units[u], sorted(part["uid"].to_list())), f"unit {u}"))
    got = job.stage(executor, "eval rows", tasks)
    frames = [pl.DataFrame({c: got[t.key]["rows"][c] for c in DETAILS}, schema=DETAIL_SCHEMA) for t in tasks]
    return pl.concat(frames) if frames else pl.DataFrame(schema=DETAIL_SCHEMA)

