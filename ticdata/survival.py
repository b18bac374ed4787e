"""Link rot per bucket: how much of each bucket a download got, by first-seen year and month.

The web forgets old pages faster than new ones, so a regenerated benchmark is not the published
one: its old buckets shrink more. Survival = successes / attempted rows, where attempted rows are
those with a download status (success, failed_to_download, failed_to_resize, refused); rows never
fetched (skipped: outside the downloaded buckets; pending) are not counted. Every rate carries a
95% Wilson score interval. The counts are taken per manifest file (`file_counts`, in download's
merge tasks) and added up in the driver (`survival`): bounded by buckets x months x statuses, so no
process holds the pool.
"""

from __future__ import annotations

import math

import polars as pl

ATTEMPTED = ("success", "failed_to_download", "failed_to_resize", "refused")
Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """The Wilson score interval of k successes in n trials (None, None for n = 0)."""
    if n == 0:
        return None, None
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    # exact ends where the formula's rounding would leave 0 of n a hair above 0, n of n a hair below 1
    return (0.0 if k == 0 else max(0.0, mid - half)), (1.0 if k == n else min(1.0, mid + half))


def file_counts(df: pl.DataFrame, year: int) -> list[list]:
    """[year, month, status, rows] of one manifest file's attempted rows (`year`: its hive year)."""
    month = pl.col("month").fill_null(0) if "month" in df.columns else pl.lit(0, pl.Int8)
    got = (df.filter(pl.col("status").is_in(ATTEMPTED)).group_by(month.alias("month"), "status").len()
           .sort("month", "status"))
    return [[year, int(m), str(s), int(n)] for m, s, n in got.iter_rows()]


def _rate(ok: int, n: int) -> dict:
    lo, hi = wilson(ok, n)
    return {"attempted": n, "survived": ok, "survival": ok / n if n else None, "low": lo, "high": hi}


def survival(per_bucket: dict[str, list[list]]) -> dict:
    """Per bucket (in the given order): the survival of its attempted rows with its interval, the
    rows lost by status, and the same per first-seen year and per month (month 0: unknown); and
    the lowest bucket survival (`min`, what `--fail-if "survival.min<0.5"` reads)."""
    out: dict = {"buckets": {}}
    for bucket, counts in per_bucket.items():
        total: dict[str, int] = {}
        years: dict[int, list[int]] = {}
        months: dict[str, list[int]] = {}
        for y, m, status, n in counts:
            total[status] = total.get(status, 0) + n
            for table, key in ((years, y), (months, f"{y}-{m:02d}" if m else f"{y}-??")):
                cell = table.setdefault(key, [0, 0])
                cell[0] += n if status == "success" else 0
                cell[1] += n
        n = sum(total.values())
        out["buckets"][bucket] = _rate(total.get("success", 0), n) | {
            "lost": {s: total[s] for s in ATTEMPTED[1:] if total.get(s)},
            "years": {str(y): _rate(ok, k) for y, (ok, k) in sorted(years.items())},
            "months": {m: _rate(ok, k) for m, (ok, k) in sorted(months.items())},
        }
    rates = [b["survival"] for b in out["buckets"].values() if b["survival"] is not None]
    out["min"] = min(rates) if rates else None
    return out


def with_official(doc: dict, uid_lists: dict) -> dict:
    """`doc` with, per official uid list a folder was imported from (`tic uids import`: the
    manifest's inputs.uid_lists), listed / in the pool / downloaded / lost, so a paper's bucket size
    and a regeneration's stand side by side: lost = listed - downloaded (not in the pool, or not
    downloaded)."""
    official = {}
    for name, v in uid_lists.items():
        got = doc["buckets"].get(name, {}).get("survived", 0)
        official[name] = {"listed": v["uids"], "in_pool": v["matched"], "downloaded": got, "lost": v["uids"] - got,
                          "kept": got / v["uids"] if v["uids"] else None}
    return doc | {"official": official}


def format_survival(doc: dict) -> str:
    """The survival table: one line per bucket, then its years when the bucket spans several."""
    lines = [f"{'bucket':<12} {'attempted':>10} {'survived':>10} {'survival':>9}  {'95% interval':<15} lost (by status)"]
    for name, b in doc["buckets"].items():
        lines.append(_line(name, b) + "  " + ", ".join(f"{s} {n:,}" for s, n in b["lost"].items()))
        if len(b["years"]) > 1:
            lines += ["  " + _line(y, r, 10).rstrip() for y, r in b["years"].items()]
    lines += format_domains(doc)
    if doc.get("official"):
        lines.append(f"{'official list':<14} {'listed':>12} {'in the pool':>12} {'downloaded':>12} {'lost':>12} {'kept':>7}")
        for name, o in doc["official"].items():
            kept = "-" if o["kept"] is None else f"{o['kept']:.1%}"
            lines.append(f"{name:<14} {o['listed']:>12,} {o['in_pool']:>12,} {o['downloaded']:>12,} {o['lost']:>12,} {kept:>7}")
    return "\n".join(lines)


def _line(name: str, r: dict, width: int = 12) -> str:
    rate = "-" if r["survival"] is None else f"{r['survival']:.1%}"
    interval = "" if r["survival"] is None else f"[{r['low']:.1%}, {r['high']:.1%}]"
    return f"{name:<{width}} {r['attempted']:>10,} {r['survived']:>10,} {rate:>9}  {interval:<15}"


def format_domains(doc: dict, show: int = 3) -> list[str]:
    """One line per bucket: its top domains' share of attempted rows and of survivors, and the first few."""
    lines = []
    for b, v in doc["buckets"].items():
        d = v.get("domains")
        if not d:
            continue
        pct = lambda x: "-" if x is None else f"{x:.1%}"  # noqa: E731
        first = ", ".join(f"{r['domain']} {pct(r['survival'])} of {r['attempted']:,}" for r in d["top"][:show])
        lines.append(f"{b:<12} top {len(d['top'])} domains: {pct(d['attempted_share'])} of attempted, "
                     f"{pct(d['survivor_share'])} of survivors ({first})")
    return lines
