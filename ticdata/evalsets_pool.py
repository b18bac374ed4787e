"""`tic evalsets` at any pool size, part 2: the tasks the selection asks, per unit (a manifest file
with its images, `evalsets_join`).

- tally: the unit's rows as `evalselect` sees them (seeded rank, flat image, repeated image or
  caption, why not a retrieval pair, class), counted per bucket, and its candidate pool written:
  the rows that may become a retrieval pair or a classification image. The counts go to a file,
  summed per group of units by `sum_counts` tasks, so the driver reads one sum per group.
- fetch: the pool rows of one bucket whose rank is at most a cap (per class for classification):
  the driver sets caps so that a round brings about twice what the selection can take, and raises
  them where a round brought too few, so it only ever holds a bucket's candidates.
- details: the hashes, tar, url and caption of the chosen rows the unit holds.

Rows travel back in the tasks' stats (JSON), never through files the driver would read.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from ticdata.classes import Vocabulary
from ticdata.evalselect import RETRIEVAL, SelectParams, label_rows, ranked, why_not_retrieval
from ticdata.evalsets_join import SAME_CAPTION, SAME_IMAGE, UnitSpec, candidate_rows, load_images, repeated_uids
from ticdata.storage import write_json_atomic, write_parquet_atomic

POOL_SCHEMA = {"uid": pl.String, "bucket": pl.String, "_rank": pl.UInt64, "ret_ok": pl.Boolean, "label": pl.Int32,
               "class_match": pl.String, "text": pl.String, "phash": pl.UInt64}
FETCHED = ("uid", "_rank", "phash", "label", "class_match")
DETAILS = ("uid", "sha256", "phash", "tar", "url", "text")
COUNTED = ("why", "class_match", "labelled")  # the counts kept per value


def _counts(df: pl.DataFrame, *by: str) -> dict:
    """{bucket: {value: n}} (or {bucket: n} with no `by`) from a group count."""
    out: dict = {}
    for row in df.group_by("bucket", *by).len().iter_rows():
        if by:
            out.setdefault(row[0], {})[str(row[1])] = row[-1]
        else:
            out[row[0]] = row[-1]
    return out


def tally_unit(spec: UnitSpec, imported: str, repeat_files: list[str], params: SelectParams, vocab: Vocabulary) -> dict:
    """The unit's candidate pool file and its counts file (`merge_counts`' shape: per bucket the
    images, why not eligible, eligible, class matches, labelled per class; the imported uids found)."""
    rows, found = candidate_rows(spec, imported, (vocab.column,) if vocab.column else ())
    rep = repeated_uids(spec, repeat_files)
    same = {k: rep.filter(pl.col("kind") == k)["uid"].implode() for k in (SAME_IMAGE, SAME_CAPTION)}
    df = ranked(rows, params).with_columns(_dup_image=pl.col("uid").is_in(same[SAME_IMAGE]),
                                           _dup_caption=pl.col("uid").is_in(same[SAME_CAPTION]))
    df = df.with_columns(_why=why_not_retrieval(params))
    pool = label_rows(df.filter(~pl.col("_flat") & ~pl.col("_dup_image")), vocab)
    keep = pool.filter(pl.col("_why").is_null() | pl.col("label").is_not_null())
    write_parquet_atomic(Path(spec.path("pool")), keep.with_columns(ret_ok=pl.col("_why").is_null()).select(*POOL_SCHEMA).cast(POOL_SCHEMA))
    per = {
        "images": _counts(df), "why": _counts(df.filter(pl.col("_why").is_not_null()), "_why"),
        "eligible": _counts(df.filter(pl.col("_why").is_null())), "class_match": _counts(pool, "class_match"),
        "labelled": _counts(pool.filter(pl.col("label").is_not_null()), "label"),
    }
    buckets = {b: {k: v.get(b, {} if k in COUNTED else 0) for k, v in per.items()} for b in sorted(per["images"])}
    for c in buckets.values():
        c["units"] = [spec.index] if c["eligible"] or c["labelled"] else []
    write_json_atomic(Path(spec.path("counts", "json")), {"buckets": buckets, "found": [[*r, spec.index] for r in found.iter_rows()]})
    return {"rows": df.height, "pool": keep.height}


def merge_counts(docs: list[dict]) -> dict:
    """Counts documents summed: numbers and counters added, unit lists and found uids joined."""
    out: dict = {"buckets": {}, "found": []}
    for d in docs:
        for b, c in d["buckets"].items():
            t = out["buckets"].setdefault(b, {"images": 0, "eligible": 0, "units": []} | {k: {} for k in COUNTED})
            t["images"] += c["images"]
            t["eligible"] += c["eligible"]
            t["units"] += c["units"]
            for k in COUNTED:
                for key, n in c[k].items():
                    t[k][key] = t[k].get(key, 0) + n
        out["found"] += d["found"]
    return out


def sum_counts(paths: list[str]) -> dict:
    """A group of units' counts files summed: the driver gets one document per group, not per file
    (a unit's labelled counts hold up to one entry per class)."""
    return merge_counts([json.loads(Path(p).read_text()) for p in paths])


def fetch_candidates(spec: UnitSpec, bucket: str, kind: str, caps: list, exclude: str | None, with_text: bool) -> dict:
    """The unit's pool rows of `bucket` of one kind with rank <= their group's cap: `caps` is
    [[None, cap]] for retrieval, [[class, cap], ...] for classification (less the uids of the
    `exclude` file: the bucket's retrieval set)."""
    pool = pl.read_parquet(spec.path("pool")).filter(pl.col("bucket") == bucket)
    if kind == RETRIEVAL:
        got = pool.filter(pl.col("ret_ok") & (pl.col("_rank") <= pl.lit(caps[0][1], pl.UInt64)))
    else:
        table = pl.DataFrame(caps, schema={"label": pl.Int32, "_cap": pl.UInt64}, orient="row")
        taken = pl.read_parquet(exclude)["uid"].implode() if exclude else pl.Series([], dtype=pl.String).implode()
        got = (pool.filter(pl.col("label").is_not_null() & ~pl.col("uid").is_in(taken))
               .join(table, on="label", how="inner").filter(pl.col("_rank") <= pl.col("_cap")))
    cols = list(FETCHED) + (["text"] if with_text else [])
    return {"rows": {c: got[c].to_list() for c in cols}}


def unit_details(spec: UnitSpec, uids: list[str]) -> dict:
    """The chosen rows this unit holds: sha256, pHash and tar of the image, url and caption of the row."""
    want = pl.Series(uids, dtype=pl.String).implode()
    images = load_images(spec).filter(pl.col("uid").is_in(want))
    man = pl.read_parquet(spec.manifest, columns=["uid", "url", "text"]).filter(pl.col("uid").is_in(want))
    df = images.join(man, on="uid", how="inner")
    return {"rows": {c: df[c].to_list() for c in DETAILS}}
