#!/usr/bin/env python
"""Rows per second per core of `url_dates`: the old form (the Python parser per row through
`map_elements`) against the vectorised one, on one thread (POLARS_MAX_THREADS=1), medians of runs.

Two URL mixes of the same size: the `url` column of a synthetic pool as `tic synth pool` writes it
(about 13% of its URLs carry a date), and its undated URLs with 30% of them rewritten to hold a
date in one of the shapes `ticdata.urldates` knows. Both forms are checked equal on each mix first.
Rates are rows per CPU-second of this process (one thread, so one core), which a machine shared
with other work disturbs less than wall time; wall-time rates are printed beside them.

    .venv/bin/tic synth pool --rows 1000000 --out /tmp/urlpool -q
    .venv/bin/python scripts/bench_urldates.py --pool /tmp/urlpool
"""

from __future__ import annotations

import os

os.environ["POLARS_MAX_THREADS"] = "1"  # before Polars is imported: the rate is per core

import argparse
import random
import re
import statistics
import time

import polars as pl

from ticdata.urldates import STRUCT, parse_url_date, url_dates

YEARLIKE = re.compile(r"(?:19[89]|20[0-2])[0-9]")
SHAPES = (
    "/wp-content/uploads/{y}/{m}/{name}.jpg",
    "/{y}/{m}/{d}/story-{name}/image.jpg",
    "/images/IMG_{y}{m}{d}_153000.jpg",
    "/uploads/{y}-{m}-{d}-{name}.jpg",
    "/img/photo_{y}_{m}_{d}.jpeg",
    "/sites/default/files/styles/large/public/{y}-{m}/{name}.jpg",
    "/thumbs/1920x1080/{name}-{y}.{m}.png",
)


def _as_struct(url: str | None) -> dict | None:
    d = parse_url_date(url)
    return None if d is None else {"year": d[0], "month": d[1], "day": d[2]}


def old_url_dates(urls: pl.Expr) -> pl.Expr:
    """The form this replaces: URLs with a year-like number go through the Python parser."""
    maybe = urls.str.contains(YEARLIKE.pattern).fill_null(False)
    return pl.when(maybe).then(urls).otherwise(None).map_elements(_as_struct, return_dtype=STRUCT, skip_nulls=True)


def with_dates(urls: list[str | None], share: float, seed: int = 0) -> list[str]:
    """The undated URLs, `share` of them rewritten to keep their host and hold a dated path."""
    rng = random.Random(seed)
    out = []
    for i, u in enumerate(u for u in urls if u and not YEARLIKE.search(u)):
        if rng.random() < share:
            y, m, d = rng.randint(1998, 2026), rng.randint(1, 12), rng.randint(1, 28)
            path = rng.choice(SHAPES).format(y=y, m=f"{m:02d}", d=f"{d:02d}", name=f"p{i:x}")
            u = "/".join(u.split("/", 3)[:3]) + path
        out.append(u)
    return out


def rates(df: pl.DataFrame, fn, repeats: int) -> tuple[float, float]:
    """Median rows per CPU-second and per wall-second of `fn` over the url column."""
    cpu, wall = [], []
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        df.select(d=fn(pl.col("url")))
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return df.height / statistics.median(cpu), df.height / statistics.median(wall)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", default="/tmp/urlpool", help="folder of a synthetic pool's Parquet files")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    urls = pl.read_parquet(f"{a.pool}/*.parquet", columns=["url"])["url"].head(a.rows).to_list()
    dated = with_dates(urls, 0.30)
    mixes = {"pool": urls, "30% dated": (dated * (len(urls) // len(dated) + 1))[: len(urls)]}
    print(f"threads={pl.thread_pool_size()} rows={len(urls):,} median of {a.repeats} runs, rows/s per core")
    for name, col in mixes.items():
        df = pl.DataFrame({"url": col}, schema={"url": pl.String})
        new = df.select(d=url_dates(pl.col("url")))["d"]
        assert df.select(d=old_url_dates(pl.col("url")))["d"].equals(new), f"{name}: the two forms differ"
        (old_cpu, old_wall), (new_cpu, new_wall) = rates(df, old_url_dates, a.repeats), rates(df, url_dates, a.repeats)
        print(f"{name:10s} dated={new.is_not_null().mean():.1%}  old {old_cpu:,.0f}  new {new_cpu:,.0f}  "
              f"ratio {new_cpu / old_cpu:.1f}x  (wall: old {old_wall:,.0f}  new {new_wall:,.0f}  "
              f"ratio {new_wall / old_wall:.1f}x)")


if __name__ == "__main__":
    main()
