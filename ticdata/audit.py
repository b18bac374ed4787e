"""`tic audit DIR --out DIR2`: how far a curated pool's time buckets can be trusted.

One Ray task per manifest file computes every signal of its rows (`ticdata.audit_signals`) and
writes small partial tables (counts per signal x year x month, agreement counts, lag histogram,
per-domain and per-crawl counts); the driver sums them. Memory is bounded by one manifest file
per task and the partial tables, whatever the pool's size.

Findings (DIR2/audit.json, every figure; DIR2/audit.md and .html with plots):
- coverage: rows carrying each signal;
- agreement: recovered year x each signal's year, and the share on the diagonal;
- impossible order: rows first seen before the date in their own URL (the day, or the month's first
  day when the URL has no day): the recovered time, or the URL date, is wrong;
- lag: first seen minus the earliest trustworthy evidence (URL date, EXIF), in days;
- wrong bucket: among rows with trustworthy evidence, the share whose earliest evidence falls in an
  earlier bucket than the recovered one, with a 95% Wilson interval. It estimates the error rate
  of the rows that carry evidence; rows without evidence may differ (say so when quoting it);
- domains contributing most disagreement; rows per crawl and each crawl's share of its bucket.

`--fix DIR3` writes a corrected manifest: a row whose earliest trustworthy evidence is earlier than
its recovered time, and not before 1995, gets that time (`ts`, `year`, `month` updated); the
recovered time stays in `ts_original` and `ts_fix_source` says which evidence moved it.
`--fail-if "wrong_bucket.share>0.05"` (repeatable) exits with status 3 when a figure crosses it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ticdata.audit_signals import SIGNALS, with_signals
from ticdata.benchmarks import Benchmark, benchmark_from_manifest
from ticdata.errors import UserError
from ticdata import __version__
from ticdata.executor import Task
from ticdata.job import Job
from ticdata.layout import CuratedFolder, check_apart, part_year
from ticdata.manifest import bucket_table, checked_manifest_files, list_bucket_table, load_manifest_json
from ticdata.snapshots import SnapshotTable
from ticdata.storage import read_json, write_json_atomic, write_parquet_atomic
from ticdata.survival import file_counts, survival, wilson  # noqa: F401  (wilson: also audit's API)
from ticdata.survival_domains import domain_counts, merge_stage, with_domains

log = logging.getLogger(__name__)
AUDIT_JSON = "audit.json"
LAG_BREAKS = [-3650, -365, -30, 0, 1, 7, 30, 90, 182, 365, 730, 1095, 1826, 3650]  # days; bins are [a, b)
LAG_LABELS = ([f"< {LAG_BREAKS[0]}"] + [f"[{a}, {b})" for a, b in zip(LAG_BREAKS[:-1], LAG_BREAKS[1:])]
              + [f">= {LAG_BREAKS[-1]}"])
TABLES = ("ym", "agree", "lag", "domains", "crawls", "bucket_moves")  # partial tables per task, in write order


def bucket_expr(bench: Benchmark, when: pl.Expr) -> pl.Expr:
    """The bucket name of a datetime column under the benchmark (null outside every step)."""
    return bench.bucket_expr(when.dt.year(), when.dt.month())


@dataclass(frozen=True)
class PartSpec:
    index: int
    part: str
    year: int
    out: str  # folder of this task's partial tables
    bench: dict
    fix_out: str | None  # the corrected folder DIR3 (its manifest/ is written) or None


def audit_part(spec: PartSpec) -> dict:
    bench = benchmark_from_manifest({"benchmark": spec.bench}, Path(spec.part))
    lf = pl.scan_parquet(spec.part)
    cols = lf.collect_schema().names()
    if "ts" not in cols:
        raise UserError(f"{spec.part}: no 'ts' column; audit a folder written by tic curate")
    snaps = SnapshotTable.load().frame()
    lf = lf.with_columns(pl.lit(spec.year, pl.Int32).alias("year")) if "year" not in cols else lf
    # the evidence join does not keep row order: sort back to the manifest's, so --fix writes the same bytes every run
    df = with_signals(lf.with_row_index("_row"), cols + ["year"], snaps).collect().sort("_row").drop("_row")
    df = df.with_columns(
        _rec_bucket=bucket_expr(bench, pl.col("sig_recovered")),
        _ev_bucket=bucket_expr(bench, pl.col("sig_earliest")),
    ).with_columns(
        _has_ev=pl.col("sig_earliest").is_not_null(),
        _wrong=pl.col("sig_earliest").is_not_null() & (pl.col("sig_earliest") < pl.col("sig_recovered"))
        & (pl.col("_ev_bucket").fill_null("(outside)") != pl.col("_rec_bucket").fill_null("(outside)")),
        _impossible=pl.col("sig_url").is_not_null() & (pl.col("sig_recovered") < pl.col("sig_url")),
        _lag=(pl.col("sig_recovered") - pl.col("sig_earliest")).dt.total_days(),
    )
    out = Path(spec.out)
    tables = {}
    ym = []
    for s in SIGNALS:
        c = pl.col(f"sig_{s}")
        ym.append(df.filter(c.is_not_null()).group_by(year=c.dt.year().cast(pl.Int32), month=c.dt.month().cast(pl.Int8))
                  .len().with_columns(signal=pl.lit(s)))
    tables["ym"] = pl.concat(ym).select("signal", "year", "month", pl.col("len").cast(pl.Int64).alias("n"))
    agree = []
    for s in SIGNALS[1:]:
        c = pl.col(f"sig_{s}")
        agree.append(df.filter(c.is_not_null()).group_by(rec_year=pl.col("sig_recovered").dt.year().cast(pl.Int32),
                                                          sig_year=c.dt.year().cast(pl.Int32)).len().with_columns(signal=pl.lit(s)))
    tables["agree"] = pl.concat(agree).select("signal", "rec_year", "sig_year", pl.col("len").cast(pl.Int64).alias("n"))
    lag = df.filter(pl.col("_lag").is_not_null()).select(
        bin=pl.sum_horizontal([(pl.col("_lag") >= b).cast(pl.Int32) for b in LAG_BREAKS])  # index of the [a, b) bin
        .replace_strict(list(range(len(LAG_LABELS))), LAG_LABELS, return_dtype=pl.String)).group_by("bin").len()
    tables["lag"] = lag.select("bin", pl.col("len").cast(pl.Int64).alias("n"))
    tables["domains"] = (df.group_by("domain").agg(rows=pl.len(), with_evidence=pl.col("_has_ev").sum(),
                                                    wrong=pl.col("_wrong").sum(), impossible=pl.col("_impossible").sum())
                         .filter((pl.col("wrong") + pl.col("impossible")) > 0)
                         .with_columns(pl.col("rows", "with_evidence", "wrong", "impossible").cast(pl.Int64)))
    crawl_col = "first_snapshot" if "first_snapshot" in df.columns else None
    tables["crawls"] = (df.group_by(crawl=pl.col(crawl_col) if crawl_col else pl.lit(None, pl.String), bucket="_rec_bucket").len()
                        .select("crawl", "bucket", pl.col("len").cast(pl.Int64).alias("n")))
    tables["bucket_moves"] = (df.filter("_wrong").group_by(from_bucket="_rec_bucket", to_bucket="_ev_bucket").len()
                              .select("from_bucket", "to_bucket", pl.col("len").cast(pl.Int64).alias("n")))
    if spec.fix_out:
        fixed = _fixed(df)
        _write_fixed(fixed, cols, Path(spec.fix_out), spec.index)
    out.mkdir(parents=True, exist_ok=True)
    for name in TABLES:  # bucket_moves last: the task's declared output
        write_parquet_atomic(out / f"{name}.parquet", tables[name])
    stats = {"rows": df.height, "domains": tables["domains"].height, "with_evidence": int(df["_has_ev"].sum()), "wrong": int(df["_wrong"].sum()),
             "impossible": int(df["_impossible"].sum()), "url_dated": int(df["sig_url"].is_not_null().sum()),
             "url_dated_day": int((df["sig_url"].is_not_null() & df["_url_has_day"].fill_null(False)).sum())}
    if "status" in df.columns:  # downloaded: link rot per bucket (`ticdata.survival`) and its domains
        stats["survival"] = {b: file_counts(g, spec.year) for (b,), g in df.group_by("_rec_bucket") if b is not None}
        rot = domain_counts(df, pl.col("_rec_bucket"))
        write_parquet_atomic(out / "rot_domains.parquet", rot)
        stats["rot_domain_rows"] = rot.height
    if spec.fix_out:
        stats["fixed"] = int(fixed["ts_fix_source"].is_not_null().sum())
        stats["fix_counts"] = _fix_counts(fixed, cols, bench)
    return stats


def _fixed(df: pl.DataFrame) -> pl.DataFrame:
    move = pl.col("sig_earliest").is_not_null() & (pl.col("sig_earliest") < pl.col("sig_recovered"))
    source = pl.when(~move).then(None).when(pl.col("sig_earliest") == pl.col("sig_url")).then(pl.lit("url")).otherwise(pl.lit("exif"))
    return df.with_columns(ts_original=pl.col("ts"), ts_fix_source=source).with_columns(
        ts=pl.when(move).then(pl.col("sig_earliest")).otherwise(pl.col("ts").cast(pl.Datetime("us", "UTC"))),
    ).with_columns(month=pl.col("ts").dt.month().cast(pl.Int8), year=pl.col("ts").dt.year().cast(pl.Int32))


def _write_fixed(df: pl.DataFrame, cols: list[str], root: Path, index: int) -> None:
    keep = [c for c in cols if c not in ("year",)] + ["ts_original", "ts_fix_source"]
    keep = list(dict.fromkeys(c for c in keep if c in df.columns))
    for (year,), part in df.group_by("year", maintain_order=True):  # rows keep the manifest's order: same bytes every run
        write_parquet_atomic(CuratedFolder(root).year_dir(year) / f"audit-{index:06d}.parquet", part.select(keep), compression="zstd")


def _fix_counts(fixed: pl.DataFrame, cols: list[str], bench: Benchmark) -> list[list]:
    """The corrected rows as `count_buckets` counts them on disk, so the driver need not read them:
    (year, month, split, n), or for a folder of uid lists (bucket, year, split, n)."""
    split = (pl.col("split") if "split" in cols else pl.lit("train")).alias("split")
    if bench.granularity == "list":
        counts = fixed.group_by("bucket", "year", split).len()
        return [[b, int(y), str(sp), int(n)] for b, y, sp, n in counts.iter_rows()]
    counts = fixed.group_by("year", pl.col("month").fill_null(1), split).len()
    return [[int(y), int(m), str(sp), int(n)] for y, m, sp, n in counts.iter_rows()]


def _parts(folder: CuratedFolder) -> list[tuple[int, Path]]:
    files = checked_manifest_files(folder.root)
    if not files:
        raise UserError(f"{folder.manifest_dir}: no Parquet files; audit a folder written by tic curate")
    return [(part_year(p), p) for p in files]


def make_job(dir: Path, out: Path, fix: Path | None = None, overwrite: bool = False, progress: bool = True) -> Job:
    """The audit of DIR as a job on OUT: its plan is the manifest files (path, size, mtime) and the
    --fix folder; its outputs audit.json and, with --fix, DIR3's manifest."""
    folder = CuratedFolder(Path(dir).resolve())
    load_manifest_json(folder.root)
    if fix is not None:
        check_apart(Path(fix), {"audited folder": folder.root}, "--fix")
    fingerprint = {
        "tool_version": __version__,
        "manifest": [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for _, p in _parts(folder)],
        "manifest_json_sha256": hashlib.sha256(folder.manifest_json.read_bytes()).hexdigest(),
        "fix": str(Path(fix).resolve()) if fix is not None else None,
    }
    outputs = [Path(out) / AUDIT_JSON]
    if fix is not None:
        fixed = CuratedFolder(Path(fix).resolve())
        outputs += [fixed.manifest_dir, fixed.manifest_json]
    return Job(Path(out), "audit", fingerprint, outputs=tuple(outputs), overwrite=overwrite, progress=progress,
               describe="an audit (or a --fix manifest) of other inputs").check()


def official_agreement(doc: dict) -> dict:
    """What the folder's manifest.json records of official lists (`tic uids import`) and official eval
    maps (`tic evalsets --tic-*`): per list, listed / found / dated elsewhere by tic; per bucket pair,
    official eval uids that tic's dating puts in another bucket. Empty when none were imported."""
    out: dict = {}
    lists = (doc.get("inputs") or {}).get("uid_lists") if isinstance(doc.get("inputs"), dict) else None
    if isinstance(lists, dict) and lists:
        out["uid_lists"] = {name: {k: v.get(k) for k in ("uids", "matched", "missing", "dated_elsewhere")}
                            for name, v in lists.items() if isinstance(v, dict)}
    imports = ((doc.get("evalsets") or {}).get("imports") or {}) if isinstance(doc.get("evalsets"), dict) else {}
    if isinstance(imports, dict) and "bucket_disagreements" in imports:
        out["eval_maps"] = {"placed_by_official_year": imports.get("placed_by_official_year"),
                            "bucket_disagreements": imports["bucket_disagreements"]}
    return out


TOP_DOMAINS = 20
DOMAIN_MERGE_ROWS = 4_000_000  # per-part domain rows one merge task sums (a few hundred MB)


@dataclass(frozen=True)
class DomainMerge:
    files: tuple[str, ...]  # every part's domains.parquet
    k: int  # this task's class of the domain hash
    classes: int


def top_domains(spec: DomainMerge) -> dict:
    """The domains of one hash class summed over every part, and the TOP_DOMAINS with most
    disagreement: a domain lives in one class, so the top of the tops is the global top, while the
    driver holds TOP_DOMAINS rows per class instead of every part's domains."""
    lf = pl.scan_parquet(list(spec.files))
    if spec.classes > 1:
        lf = lf.filter(pl.col("domain").hash(seed=0) % spec.classes == spec.k)
    top = (lf.group_by("domain").agg(pl.col("rows", "with_evidence", "wrong", "impossible").sum())
           .with_columns(disagreement=pl.col("wrong") + pl.col("impossible"))
           .sort("disagreement", "domain", descending=[True, False]).head(TOP_DOMAINS).collect())
    return {"top": top.drop("disagreement").to_dicts()}


def _merged_domains(job: Job, executor, parts: int, stats: list[dict]) -> pl.DataFrame:
    files = tuple(str(job.path("parts", f"{i:06d}", "domains.parquet")) for i in range(parts))
    classes = max(1, -(-sum(s.get("domains", 0) for s in stats) // DOMAIN_MERGE_ROWS))
    tops = job.stage(executor, "domains", [Task(f"domains-{k:04d}", top_domains, (DomainMerge(files, k, classes),), f"domain class {k}")
                                           for k in range(classes)])
    schema = {"domain": pl.String, "rows": pl.Int64, "with_evidence": pl.Int64, "wrong": pl.Int64, "impossible": pl.Int64}
    return pl.DataFrame([r for k in sorted(tops) for r in tops[k]["top"]], schema=schema, orient="row")


def run_audit(dir: Path, out: Path, executor, fix: Path | None = None, progress: bool = True, overwrite: bool = False) -> dict:
    started = time.monotonic()
    folder = CuratedFolder(Path(dir).resolve())
    job = make_job(folder.root, out, fix, overwrite, progress).open()
    if job.done:
        log.info("%s: already audited from these inputs; nothing to do", job.out)
        return read_json(job.out / AUDIT_JSON)
    doc = load_manifest_json(folder.root)
    bench = benchmark_from_manifest(doc, folder.manifest_json)
    parts = _parts(folder)
    fixed = CuratedFolder(Path(fix).resolve()) if fix is not None else None
    if fixed is not None:
        fixed.manifest_dir.mkdir(parents=True, exist_ok=True)
    tasks = [Task(f"audit-{i:06d}", audit_part, (PartSpec(i, str(p), y, str(job.path("parts", f"{i:06d}")), doc["benchmark"],
                                                          str(fixed.root) if fixed else None),), str(p),
                  outputs=(job.path("parts", f"{i:06d}", f"{TABLES[-1]}.parquet"),))
             for i, (y, p) in enumerate(parts)]
    stats = job.stage(executor, "audit", tasks)
    # the bounded tables (signals x months, bins, crawls x buckets) meet in the driver; domains in tasks
    tables = {name: pl.concat([pl.read_parquet(job.path("parts", f"{i:06d}", f"{name}.parquet")) for i in range(len(parts))])
              for name in TABLES if name != "domains"}
    tables["domains"] = _merged_domains(job, executor, len(parts), [stats[t.key] for t in tasks])
    result = _findings(doc, bench, [stats[t.key] for t in tasks], tables)
    result["inputs"] = {"dir": str(folder.root), "manifest_files": len(parts), "benchmark": bench.name}
    counts: dict[str, list] = {}
    for s in (stats[t.key] for t in tasks):
        for b, c in s.get("survival", {}).items():
            counts.setdefault(b, []).extend(c)
    if counts:
        rot = [job.path("parts", f"{i:06d}", "rot_domains.parquet") for i in range(len(parts))]
        tops = merge_stage(job, executor, rot, sum(stats[t.key].get("rot_domain_rows", 0) for t in tasks))
        result["survival"] = with_domains(survival({b.name: counts[b.name] for b in bench.steps if b.name in counts}), tops)
    official = official_agreement(doc)
    if official:
        result["official"] = official
    if fixed is not None:
        result["fix"] = _finish_fix(folder.root, fixed.root, doc, bench, [stats[t.key] for t in tasks])
    result["seconds"] = round(time.monotonic() - started, 1)
    write_json_atomic(job.out / AUDIT_JSON, result)
    job.finish()
    return result


def _findings(doc: dict, bench: Benchmark, stats: list[dict], t: dict[str, pl.DataFrame]) -> dict:
    rows = sum(s["rows"] for s in stats)
    cov = t["ym"].group_by("signal").agg(pl.col("n").sum())
    coverage = {s: 0 for s in SIGNALS} | dict(cov.iter_rows())
    agree = t["agree"].group_by("signal", "rec_year", "sig_year").agg(pl.col("n").sum())
    agreement = {}
    for s in SIGNALS[1:]:
        a = agree.filter(pl.col("signal") == s)
        n = int(a["n"].sum())
        same = int(a.filter(pl.col("rec_year") == pl.col("sig_year"))["n"].sum())
        matrix: dict[str, dict[str, int]] = {}
        for _, ry, sy, k in a.sort("rec_year", "sig_year").iter_rows():
            matrix.setdefault(str(ry), {})[str(sy)] = int(k)
        agreement[s] = {"rows": n, "same_year": same / n if n else None, "matrix": matrix}
    lag = t["lag"].group_by("bin").agg(pl.col("n").sum())
    lag_counts = dict(lag.iter_rows())
    labels = LAG_LABELS
    with_ev = sum(s["with_evidence"] for s in stats)
    wrong = sum(s["wrong"] for s in stats)
    lo, hi = wilson(wrong, with_ev)
    url_dated = sum(s["url_dated"] for s in stats)
    impossible = sum(s["impossible"] for s in stats)
    dom = (t["domains"].group_by("domain").agg(pl.col("rows", "with_evidence", "wrong", "impossible").sum())
           .with_columns(disagreement=pl.col("wrong") + pl.col("impossible")).sort("disagreement", "domain", descending=[True, False]).head(20))
    crawls = t["crawls"].group_by("crawl", "bucket").agg(pl.col("n").sum())
    bucket_rows = crawls.group_by("bucket").agg(pl.col("n").sum().alias("bucket_rows"))
    crawls = crawls.join(bucket_rows, on="bucket", how="left", nulls_equal=True).with_columns(share_of_bucket=pl.col("n") / pl.col("bucket_rows")).sort("crawl")
    moves = t["bucket_moves"].group_by("from_bucket", "to_bucket").agg(pl.col("n").sum()).sort("n", descending=True)
    by_month = {s: [[int(y), int(m), int(n)] for y, m, n in t["ym"].filter(pl.col("signal") == s).group_by("year", "month")
                    .agg(pl.col("n").sum()).sort("year", "month").iter_rows()] for s in SIGNALS}
    return {
        "rows": rows,
        "benchmark": bench.to_json(),
        "coverage": {s: {"rows": int(n), "share": n / rows if rows else None} for s, n in coverage.items()},
        "agreement": agreement,
        "impossible_order": {"rows": impossible, "url_dated": url_dated, "share_of_url_dated": impossible / url_dated if url_dated else None,
                             "rule": "first seen before the date in the URL (its day, else the first day of its month)"},
        "lag_days": {"bins": labels, "counts": [int(lag_counts.get(b, 0)) for b in labels],
                     "definition": "first seen minus the earliest trustworthy evidence (URL date, EXIF), in days"},
        "wrong_bucket": {"with_evidence": with_ev, "wrong": wrong, "share": wrong / with_ev if with_ev else None, "ci95": [lo, hi],
                         "interval": "Wilson score, 95%",
                         "rule": "earliest trustworthy evidence (URL date, EXIF DateTimeOriginal) earlier than the recovered "
                                 "time and in another bucket; Last-Modified is reported, not used",
                         "scope": "rows that carry trustworthy evidence"},
        "bucket_moves": [{"from": f, "to": tb, "rows": int(n)} for f, tb, n in moves.head(50).iter_rows()],
        "domains": [dict(zip(dom.columns, r)) for r in dom.iter_rows()],
        "crawls": [{"crawl": c, "bucket": b, "rows": int(n), "share_of_bucket": float(sh)} for c, b, n, _, sh in crawls.iter_rows()],
        "rows_by_month": by_month,
    }


def _finish_fix(dir: Path, fix: Path, doc: dict, bench: Benchmark, stats: list[dict]) -> dict:
    counts = [tuple(c) for s in stats for c in s["fix_counts"]]
    buckets, outside = (list_bucket_table if bench.granularity == "list" else bucket_table)(counts, bench)
    fixed = sum(s["fixed"] for s in stats)
    new = dict(doc)
    new["buckets"], new["outside_buckets"] = buckets, outside
    info = {"rows_moved": fixed, "from": str(dir.resolve()),
            "rule": "ts = earliest of URL date and EXIF DateTimeOriginal when earlier than the recovered time (and not before "
                    "1995); the recovered time is kept in ts_original, the evidence used in ts_fix_source"}
    new["audit_fix"] = info
    write_json_atomic(CuratedFolder(fix).manifest_json, new)
    return info | {"out": str(fix.resolve())}


_COND = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|==|<|>)\s*(-?[0-9.eE+-]+)\s*$")


def check_fail_if(result: dict, conditions: list[str]) -> list[str]:
    """The conditions that hold ("wrong_bucket.share>0.05"); a path that is not a number is an error."""
    hit = []
    for cond in conditions:
        m = _COND.match(cond)
        if not m:
            raise UserError(f"--fail-if {cond!r}: expected PATH OP NUMBER, e.g. 'wrong_bucket.share>0.05'")
        path, op, num = m.group(1), m.group(2), float(m.group(3))
        v = result
        for key in path.split("."):
            if not isinstance(v, dict) or key not in v:
                raise UserError(f"--fail-if {cond!r}: audit.json has no figure {path!r}")
            v = v[key]
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise UserError(f"--fail-if {cond!r}: {path} is {v!r}, not a number")
        if {"<": v < num, "<=": v <= num, ">": v > num, ">=": v >= num, "==": v == num}[op]:
            hit.append(f"{cond} (value {v:.6g})")
    return hit


def headline(result: dict) -> str:
    w = result["wrong_bucket"]
    cov = result["coverage"]
    imp = result["impossible_order"]
    pct = lambda x: "-" if x is None else f"{x:.1%}"  # noqa: E731
    lines = [
        f"rows {result['rows']:,}; evidence: url {pct(cov['url']['share'])}, exif {pct(cov['exif']['share'])}, "
        f"last_modified {pct(cov['last_modified']['share'])}, snapshot {pct(cov['snapshot']['share'])}",
        f"same year as recovered: url {pct(result['agreement']['url']['same_year'])}, exif {pct(result['agreement']['exif']['same_year'])}, "
        f"last_modified {pct(result['agreement']['last_modified']['same_year'])}",
        f"wrong bucket: {pct(w['share'])} of {w['with_evidence']:,} rows with evidence "
        f"(95% CI {pct(w['ci95'][0])}-{pct(w['ci95'][1])})",
        f"impossible order (first seen before its URL date): {imp['rows']:,} ({pct(imp['share_of_url_dated'])} of URL-dated rows)",
    ]
    if result["domains"]:
        d = result["domains"][0]
        lines.append(f"most disagreement: {d['domain']} ({d['wrong']:,} wrong, {d['impossible']:,} impossible)")
    return "\n".join(lines)
