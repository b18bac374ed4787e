"""Which sites a bucket's survivors come from: the domains that contributed most rows to a bucket,
their survival, and their share of the bucket's attempted rows against their share of its
survivors. Long-lived sites (image hosts, big retailers) keep their links, small blogs lose them,
so after link rot a bucket leans toward a few domains more than the published one did; the two
shares side by side show by how much.

Counted per manifest file (`domain_counts`, in download's merge tasks and audit's tasks, written to
the job's state), then summed per class of the domain's hash in tasks (`top_of_class`): a domain
lives in one class, so each bucket's top of the classes' tops is its global top, and the driver
holds TOP rows per bucket and class, never every domain of the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ticdata.executor import Task
from ticdata.survival import ATTEMPTED, wilson

TOP = 10  # domains per bucket
MERGE_ROWS = 4_000_000  # per-file domain rows one merge task sums (a few hundred MB)
COLUMNS = {"bucket": pl.String, "domain": pl.String, "attempted": pl.Int64, "survived": pl.Int64}
NO_DOMAIN = "(no host)"


def domain_expr(url: pl.Expr = pl.col("url")) -> pl.Expr:
    """The lower-cased host of a URL (null when the URL has no scheme://host)."""
    return url.str.extract(r"^[a-zA-Z][a-zA-Z0-9+.-]*://([^/:?#]+)", 1).str.to_lowercase()


def domain_counts(df: pl.DataFrame, bucket: pl.Expr) -> pl.DataFrame:
    """[bucket, domain, attempted, survived] of one manifest file's attempted rows."""
    got = df.filter(pl.col("status").is_in(ATTEMPTED)).select(
        bucket.cast(pl.String).alias("bucket"), domain_expr().fill_null(NO_DOMAIN).alias("domain"),
        (pl.col("status") == "success").alias("_ok"))
    return (got.filter(pl.col("bucket").is_not_null()).group_by("bucket", "domain")
            .agg(attempted=pl.len().cast(pl.Int64), survived=pl.col("_ok").sum().cast(pl.Int64))
            .sort("bucket", "domain").select(list(COLUMNS)))


@dataclass(frozen=True)
class DomainClass:
    files: tuple[str, ...]  # every file's domain counts
    k: int  # this task's class of the domain hash
    classes: int
    top: int = TOP


def top_of_class(spec: DomainClass) -> dict:
    """The domains of one hash class summed over every file; per bucket the `top` with most attempted rows."""
    lf = pl.scan_parquet(list(spec.files), schema=COLUMNS)
    if spec.classes > 1:
        lf = lf.filter(pl.col("domain").hash(seed=0) % spec.classes == spec.k)
    summed = lf.group_by("bucket", "domain").agg(pl.col("attempted", "survived").sum())
    top = (summed.sort("attempted", "domain", descending=[True, False]).group_by("bucket", maintain_order=True)
           .head(spec.top).sort("bucket", "attempted", "domain", descending=[False, True, False]).collect())
    return {"top": top.rows()}


def merge_stage(job, executor, files: list[Path], rows: int, top: int = TOP) -> dict[str, list[list]]:
    """The stage summing every file's domain counts by hash class; per bucket its `top` domains as
    [domain, attempted, survived], most attempted first."""
    files = [f for f in files if Path(f).exists()]
    if not files:
        return {}
    classes = max(1, -(-rows // MERGE_ROWS))
    spec = tuple(str(f) for f in files)
    tops = job.stage(executor, "rot-domains", [Task(f"rot-domains-{k:04d}", top_of_class, (DomainClass(spec, k, classes, top),),
                                                    f"domain class {k}") for k in range(classes)])
    out: dict[str, list[list]] = {}
    for key in sorted(tops):
        for b, d, n, ok in tops[key]["top"]:
            out.setdefault(b, []).append([d, int(n), int(ok)])
    return {b: sorted(v, key=lambda r: (-r[1], r[0]))[:top] for b, v in out.items()}


def with_domains(doc: dict, tops: dict[str, list[list]]) -> dict:
    """`doc` (`ticdata.survival.survival`) with, per bucket, its top domains (survival and interval
    each) and their share of the bucket's attempted rows and of its survivors."""
    for b, v in doc["buckets"].items():
        rows = tops.get(b) or []
        if not rows:
            continue
        top = []
        for d, n, ok in rows:
            lo, hi = wilson(ok, n)
            top.append({"domain": d, "attempted": n, "survived": ok, "survival": ok / n if n else None, "low": lo, "high": hi})
        n_top, ok_top = sum(r[1] for r in rows), sum(r[2] for r in rows)
        v["domains"] = {"top": top, "attempted_share": n_top / v["attempted"] if v["attempted"] else None,
                        "survivor_share": ok_top / v["survived"] if v["survived"] else None}
    return doc
