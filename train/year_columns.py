"""Eval-matrix columns per calendar year (`tic eval --columns year`), as ml-tic-clip's eval sets are
cut: each step's held-out sets are split by the year tic dated each row to (the curated folder's
manifest), and every year is scored as its own set, so TiC-DataComp's matrix has 9 columns
(2014 ... 2022) under its 7 steps. Rows of an eval set whose uid the manifest does not date are
left out and counted."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from pathlib import Path

import polars as pl

from ticdata.manifest import scan_manifest

log = logging.getLogger(__name__)
EVAL_SPLITS = ("retrieval", "classification")


def eval_years(data: Path) -> dict[str, int]:
    """uid -> year of every held-out row of a curated folder."""
    lf = scan_manifest(data)
    if "split" not in lf.collect_schema():
        return {}
    rows = lf.filter(pl.col("split").is_in(list(EVAL_SPLITS))).select("uid", "year").collect()
    return dict(zip(rows["uid"].to_list(), rows["year"].to_list()))


def split_by_year(es, years: dict[str, int]) -> tuple[list, int]:
    """The eval set cut into one set per year (key `<key>@<year>`), and how many samples had no year."""
    groups: dict[int, list[int]] = {}
    undated = 0
    for i, key in enumerate(es.keys):
        y = years.get(key)
        if y is None:
            undated += 1
        else:
            groups.setdefault(int(y), []).append(i)
    out = []
    for y, idx in sorted(groups.items()):
        fp = hashlib.sha256(f"{es.fingerprint}@{y}".encode()).hexdigest()[:16]
        out.append(replace(es, key=f"{es.key}@{y}", images=[es.images[i] for i in idx],
                           captions=[es.captions[i] for i in idx] if es.captions else [],
                           labels=[es.labels[i] for i in idx] if es.labels else [],
                           sources=[es.sources[i] for i in idx], keys=[es.keys[i] for i in idx], fingerprint=fp))
    return out, undated


def by_year(sets: list, data: Path, buckets: list[str]) -> tuple[list, list[tuple[str, int]], int]:
    """(the static sets and every dynamic set cut by year, the (step, year) columns in order, undated samples)."""
    years = eval_years(data)
    out, cols, undated = [], set(), 0
    for es in sets:
        if es.bucket is None:
            out.append(es)
            continue
        parts, n = split_by_year(es, years)
        undated += n
        out += parts
        cols |= {(es.bucket, int(p.key.rsplit("@", 1)[1])) for p in parts}
    if undated:
        log.warning("%d held-out samples have no year in %s's manifest; left out of the year columns", undated, data)
    return out, sorted(cols, key=lambda c: (buckets.index(c[0]), c[1])), undated
