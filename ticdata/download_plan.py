"""A download round's plan and merge at any pool size: tasks per manifest file, counts in the driver.

plan   one task per manifest file that may hold rows of the fetched buckets: its pending rows (no
       status yet, or not a success) of those buckets, sorted by bucket then uid, written to the
       round's state (plan/NNNNNN.parquet) with each bucket's offset in it. A row's bucket follows
       from its year (and month), or its `bucket` column in a folder of uid lists (`row_bucket`).
       The driver numbers the shards from the tasks' counts (`number_shards`): per bucket its files
       in manifest order, each file's rows in uid order, a new shard every --samples-per-shard rows
       (so a shard may hold the end of one file and the start of the next: img2dataset's packing,
       without its short shard per input file), numbered after the bucket's highest shard in use.
       The numbering is saved (shards.parquet) before any shard runs, so a resumed round finds the
       same shards. A shard task reads its slices of one or more plan files.
merge  one task per manifest file: the statuses of the shards that hold its rows set on them
       (`manifest.update_file`; a file no shard holds still gets the status columns), then
       `skipped` on rows without a status outside the fetched buckets. It returns, per bucket, the
       file's status counts, failure reasons, successes per shard and survival counts; the driver
       adds them up into the summary and sizes.json.

The driver holds file names, counts and one entry per shard; a task holds one manifest file (or
one shard's rows). Before, the driver sorted every pending row of a bucket by uid: with one
manifest file per bucket the shards are the same as then."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ticdata.benchmarks import benchmark_from_manifest
from ticdata.download_stats import error_histogram
from ticdata.manifest import mark_table, update_file
from ticdata.storage import write_parquet_atomic
from ticdata.survival import file_counts
from ticdata.survival_domains import domain_counts

SHARDS_SCHEMA = {"bucket": pl.String, "shard": pl.Int64, "part": pl.Int64, "start": pl.Int64, "rows": pl.Int64}


def plan_path(state: str | Path, part: int) -> Path:
    return Path(state) / "plan" / f"{part:06d}.parquet"


@dataclass(frozen=True)
class PlanSpec:
    part: str  # the manifest file
    index: int  # its place in the manifest's file order
    year: int  # its hive year
    bench: dict  # manifest.json's benchmark: a row's bucket follows from its year (and month), or its `bucket` column
    wanted: tuple[str, ...]  # the buckets this download fetches
    state: str


def row_bucket(path: str | Path, year: int, bench: dict, columns) -> pl.Expr:
    """The bucket of each row of one manifest file (null outside every step)."""
    b = benchmark_from_manifest({"benchmark": bench}, Path(path))
    month = pl.col("month") if "month" in columns else pl.lit(None, pl.Int8)
    return b.bucket_expr(year=pl.lit(year, pl.Int32), month=month)


def plan_file(spec: PlanSpec) -> dict:
    """One manifest file's pending rows in the fetched buckets, by bucket then uid, as the shard
    tasks read them; [bucket, first row, rows] of each bucket in the written file."""
    schema = pl.read_parquet_schema(spec.part)
    want = ["uid", "url", "text", "ts", *(c for c in ("month", "bucket", "status") if c in schema)]
    df = pl.read_parquet(spec.part, columns=want)
    status = pl.col("status") if "status" in df.columns else pl.lit(None, pl.String)
    rows = (df.with_columns(_b=row_bucket(spec.part, spec.year, spec.bench, df.columns))
            .filter(pl.col("_b").is_in(list(spec.wanted)) & (status.is_null() | (status != "success")))
            .select(pl.col("_b").alias("bucket"), "uid", "url", "text", "ts", pl.lit(spec.year, pl.Int32).alias("year"))
            .sort("bucket", "uid"))
    write_parquet_atomic(plan_path(spec.state, spec.index), rows)
    counts, start = [], 0
    for b, n in rows.group_by("bucket", maintain_order=True).len().iter_rows():
        counts.append([b, start, int(n)])
        start += int(n)
    return {"part": spec.index, "counts": counts}


def number_shards(counts: list[tuple[str, int, int, int]], first: dict[str, int], size: int) -> pl.DataFrame:
    """The shard table (bucket, shard, part, start, rows: one row per slice of a plan file) from
    the plan files' (bucket, part, first row, rows) in manifest order and each bucket's first free
    shard number."""
    out: dict[str, list] = {k: [] for k in SHARDS_SCHEMA}
    pos: dict[str, int] = {}
    for bucket, part, offset, n in counts:
        start = 0
        while start < n:
            p = pos.get(bucket, 0)
            take = min(n - start, size - p % size)
            for k, v in zip(SHARDS_SCHEMA, (bucket, first[bucket] + p // size, part, offset + start, take)):
                out[k].append(v)
            start += take
            pos[bucket] = p + take
    return pl.DataFrame(out, schema=SHARDS_SCHEMA)


def shard_rows(state: str | Path, slices: tuple[tuple[int, int, int], ...]) -> pl.DataFrame:
    """A shard's rows (url, caption, uid, ts, year) from its (part, start, rows) slices."""
    parts = [pl.scan_parquet(plan_path(state, part)).slice(start, rows) for part, start, rows in slices]
    return pl.concat(parts).select("url", pl.col("text").alias("caption"), "uid", "ts", "year").collect()


@dataclass(frozen=True)
class MergeSpec:
    part: str
    year: int
    bench: dict
    wanted: tuple[str, ...]  # the fetched buckets: other rows without a status become `skipped`
    statuses: tuple[str, ...]  # the status tables of the shards holding this file's rows
    skip_reason: str
    domains: str = ""  # where this file's domain counts go (`ticdata.survival_domains`)


def merge_file(spec: MergeSpec, columns: dict) -> dict:
    """One manifest file's statuses set, its unfetched rows marked skipped; its figures per bucket."""
    path = Path(spec.part)
    df = pl.read_parquet(path)
    table = (pl.concat([pl.read_parquet(p) for p in spec.statuses], how="vertical_relaxed") if spec.statuses
             else pl.DataFrame(schema={"uid": pl.String}))
    df, _ = update_file(path, df, mark_table(table, columns), columns)
    bucket = row_bucket(path, spec.year, spec.bench, df.columns)
    todo = df.filter(pl.col("status").is_null() & ~bucket.is_in(list(spec.wanted)).fill_null(False))
    if todo.height:
        todo = todo.select("uid", status=pl.lit("skipped"), error_message=pl.lit(spec.skip_reason))
        df, _ = update_file(path, df, mark_table(todo, columns), columns)
    out = {}
    for (b,), g in df.with_columns(_b=bucket).group_by("_b", maintain_order=True):
        if b is None:
            continue
        statuses = g.group_by(pl.col("status").fill_null("pending")).len().sort("status")
        ok = g.filter(pl.col("status") == "success").group_by("shard").len()
        out[b] = {"rows": g.height, "statuses": {str(s): int(n) for s, n in statuses.iter_rows()}, "errors": error_histogram(g),
                  "successes": {str(s): int(n) for s, n in ok.iter_rows()}, "survival": file_counts(g, spec.year)}
    domains = domain_counts(df, bucket)
    if spec.domains:
        write_parquet_atomic(Path(spec.domains), domains)
    return {"buckets": out, "domain_rows": domains.height}


def add_up(stats: list[dict], buckets: list[str]) -> tuple[dict, dict]:
    """Per bucket (in benchmark order, buckets with rows only): rows, statuses, successes per shard,
    failure reasons and survival counts, from the merge tasks; and the failure reasons of every bucket."""
    out: dict[str, dict] = {}
    for name, s in ((name, s) for st in stats for name, s in st["buckets"].items()):
        b = out.setdefault(name, {"rows": 0, "statuses": {}, "errors": {}, "successes": {}, "survival": []})
        b["rows"] += s["rows"]
        b["survival"] += s["survival"]
        for key in ("statuses", "errors", "successes"):
            for k, n in s[key].items():
                b[key][k] = b[key].get(k, 0) + n
    every: dict[str, int] = {}
    for b in out.values():
        b["statuses"] = dict(sorted(b["statuses"].items()))
        for r, n in b["errors"].items():
            every[r] = every.get(r, 0) + n
        b["errors"] = _by_count(b["errors"])
    return {b: out[b] for b in buckets if b in out and out[b]["rows"]}, _by_count(every)


def _by_count(hist: dict[str, int]) -> dict[str, int]:
    """Most frequent first, then by reason (error_histogram's order)."""
    return dict(sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])))
