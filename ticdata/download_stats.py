"""What `tic download` writes beside each shard (img2dataset's files), and its summary figures.

Beside every shard DIR/shards/<bucket>/NNNNNNNN.tar, with img2dataset's names and fields:

- NNNNNNNN.parquet: one row per input row of the shard (sorted by uid): img2dataset's columns
  url, caption, key (= uid), status, error_message, width, height, original_width, original_height,
  exif (JSON), sha256, then uid, ts, year and tic's last_modified and exif_datetime_original
  (timestamp[us, UTC]), original_bytes (bytes fetched) and shard (<bucket>/NNNNNNNN.tar, null
  unless a success). `status` is tic's: success | failed_to_download | failed_to_resize | refused
  (img2dataset has no refused: it counts a refusal as failed_to_download).
- NNNNNNNN_stats.json: img2dataset's count, successes, failed_to_download (refusals included, as
  img2dataset counts them), failed_to_resize, duration, start_time, end_time, status_dict (error
  message or "success" -> rows); tic adds bucket, shard, refused, statuses (tic's status -> rows),
  errors (failure reason -> rows, `failure_reason`), bytes_downloaded, bytes_written (the tar's
  size) and unparsed_dates (column -> reason -> rows, `ticdata.download_dates`).

count = successes + failed_to_download + failed_to_resize = the shard's input rows; successes =
the tar's samples = the parquet's rows with status success. A shard none of whose rows succeeded
has its parquet and stats but no tar (open_clip's sizes.json lists only tars with samples).
"""

from __future__ import annotations

import polars as pl

from ticdata.download_dates import DATE_COLUMNS, PARSERS, TS, unparsed_counts
from ticdata.fetch import REFUSED
from ticdata.survival import format_survival

TOP_ERRORS = 10
FAILED = ("failed_to_download", "failed_to_resize", "refused")
# (regex on the error message, reason): the first that matches names the failure
_REASONS = (
    (r"^refused: .*non-global address", "refused: non-global address"),
    (r"^refused: .*X-Robots-Tag", "refused: X-Robots-Tag"),
    (r"^refused: more than \d+ bytes", "refused: over the byte cap"),
    (r"^refused: \d+x\d+ pixels", "refused: over the pixel cap"),
    (r"^refused: cannot read the image size", "refused: unreadable image header"),
    (r"^refused: scheme", "refused: not http(s)"),
    (r"^refused: no host", "refused: no host"),
    (r"^Use of image disallowed", "refused: X-Robots-Tag"),
    (r"^deadline:", "deadline exceeded"),
    (r"^incomplete read", "incomplete read"),
    (r"(?i)timed? ?out", "timed out"),
    (r"^cannot resolve", "cannot resolve host"),
    (r"(?i)connection refused", "connection refused"),
    (r"(?i)connection reset|remote end closed|broken pipe", "connection reset"),
    (r"(?i)certificate|ssl|tls", "TLS error"),
)


def failure_reason(message: pl.Expr) -> pl.Expr:
    """A short reason for an error message: the rules above, "HTTP <code>" for HTTP errors, else the
    message with numbers as N (at most 80 characters); "(no message)" for a null one."""
    expr = pl.when(message.is_null()).then(pl.lit("(no message)"))
    http = message.str.extract(r"^HTTP Error (\d{3})", 1)
    expr = expr.when(http.is_not_null()).then(pl.lit("HTTP ") + http)
    for pattern, reason in _REASONS:
        expr = expr.when(message.str.contains(pattern)).then(pl.lit(reason))
    return expr.otherwise(message.str.replace_all(r"\d+", "N").str.strip_chars().str.slice(0, 80))


def error_histogram(df: pl.DataFrame) -> dict[str, int]:
    """Failure reason -> rows, most frequent first, over the rows of `df` whose status is a failure."""
    failed = df.filter(pl.col("status").is_in(FAILED))
    if failed.height == 0:
        return {}
    counts = failed.group_by(failure_reason(pl.col("error_message")).alias("reason")).len().sort(["len", "reason"], descending=[True, False])
    return {str(r): int(n) for r, n in counts.iter_rows()}


def _exif_value(exif: pl.Expr) -> pl.Expr:
    return exif.str.json_path_match("$['EXIF DateTimeOriginal']")


def shard_table(raw: pl.DataFrame, rows: pl.DataFrame, bucket: str, name: str) -> tuple[pl.DataFrame, dict]:
    """img2dataset's per-sample table -> the shard's parquet (tic's statuses, typed dates, the
    manifest's ts), and the dates that did not parse ({column: {reason: rows}})."""
    refused = pl.col("error_message").str.starts_with(REFUSED) | pl.col("error_message").str.starts_with("Use of image disallowed")
    ok = pl.col("status") == "success"
    status = pl.when(ok).then(pl.lit("success")).when(refused.fill_null(False)).then(pl.lit("refused")).otherwise(pl.col("status"))
    raw = raw.with_columns(_exif_raw=pl.when(ok).then(_exif_value(pl.col("exif"))), _lm_raw=pl.when(ok).then(pl.col("last_modified")))
    unparsed = unparsed_counts(raw, {"last_modified": "_lm_raw", "exif_datetime_original": "_exif_raw"})
    table = raw.select(
        "url", "caption", pl.col("uid").alias("key"), status.alias("status"), "error_message",
        *[pl.col(c).cast(pl.Int32) for c in ("width", "height", "original_width", "original_height")],
        "exif", "sha256", "uid", "year",
        PARSERS["last_modified"][0](pl.col("_lm_raw")).alias("last_modified"),
        PARSERS["exif_datetime_original"][0](pl.col("_exif_raw")).alias("exif_datetime_original"),
        pl.col("original_bytes").cast(pl.Int64),
        pl.when(ok).then(pl.lit(f"{bucket}/{name}")).alias("shard"),
    ).join(rows.select("uid", pl.col("ts").cast(TS)), on="uid", how="left")
    order = ["url", "caption", "key", "status", "error_message", "width", "height", "original_width", "original_height",
             "exif", "sha256", "uid", "ts", "year", *DATE_COLUMNS, "original_bytes", "shard"]
    return table.select(order).sort("uid"), unparsed


def manifest_status(table: pl.DataFrame) -> pl.DataFrame:
    """The shard table's columns that go into the manifest (key only for a success)."""
    return table.select("uid", "status", "error_message", "sha256", "width", "height", "shard",
                        pl.when(pl.col("status") == "success").then(pl.col("key")).alias("key"), *DATE_COLUMNS)


def shard_stats(table: pl.DataFrame, img2dataset: dict, bucket: str, name: str, tar_bytes: int, unparsed: dict) -> dict:
    """The shard's _stats.json: img2dataset's fields recounted from tic's table, and tic's."""
    statuses = {str(s): int(n) for s, n in table.group_by("status").len().sort("status").iter_rows()}
    return {
        "count": table.height,
        "successes": statuses.get("success", 0),
        "failed_to_download": statuses.get("failed_to_download", 0) + statuses.get("refused", 0),
        "failed_to_resize": statuses.get("failed_to_resize", 0),
        "duration": img2dataset.get("duration"),
        "start_time": img2dataset.get("start_time"),
        "end_time": img2dataset.get("end_time"),
        "status_dict": dict(img2dataset.get("status_dict") or {}),
        "bucket": bucket,
        "shard": f"{bucket}/{name}",
        "refused": statuses.get("refused", 0),
        "statuses": statuses,
        "errors": error_histogram(table),
        "bytes_downloaded": int(table["original_bytes"].fill_null(0).sum()),
        "bytes_written": tar_bytes,
        "unparsed_dates": unparsed,
    }


def _busy_seconds(spans: list[tuple[float, float]]) -> float:
    """The length of the union of [start, end] intervals: the wall time some shard was downloading
    (a killed round's pause before its rerun does not count)."""
    total, end = 0.0, None
    for a, b in sorted(spans):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def round_figures(round_no: int, task_stats: list[dict]) -> dict:
    """This round's throughput and the dates it could not parse, from its shards' stats."""
    spans = [(s["start_time"], s["end_time"]) for s in task_stats if s.get("start_time") is not None and s.get("end_time") is not None]
    seconds = _busy_seconds(spans)
    images = sum(s.get("successes", 0) for s in task_stats)
    nbytes = sum(s.get("bytes_downloaded", 0) for s in task_stats)
    unparsed: dict[str, dict[str, int]] = {}
    for s in task_stats:
        for col, reasons in (s.get("unparsed_dates") or {}).items():
            for r, n in reasons.items():
                unparsed.setdefault(col, {})[r] = unparsed.get(col, {}).get(r, 0) + n
    return {"round": round_no, "shards": len(task_stats), "rows": sum(s.get("count", 0) for s in task_stats),
            "images": images, "bytes_downloaded": nbytes, "seconds": round(seconds, 3),
            "images_per_s": round(images / seconds, 2) if seconds > 0 else None,
            "mb_per_s": round(nbytes / 1e6 / seconds, 3) if seconds > 0 else None, "unparsed_dates": unparsed}


class DownloadSummary(dict):
    """Per bucket: rows, statuses, shards, samples, errors (a plain dict, as before); and the whole
    download's figures as attributes: `errors` (failure reason -> rows, every bucket), `last_round`
    (round_figures of the round that ran last) and `upgraded` (dates parsed from an older folder)."""

    def __init__(self, buckets: dict, errors: dict | None = None, last_round: dict | None = None, upgraded: dict | None = None,
                 survival: dict | None = None):
        super().__init__(buckets)
        self.errors = errors or {}
        self.last_round = last_round or {}
        self.upgraded = upgraded or {}
        self.survival = survival or {}  # `ticdata.survival.survival`: link rot per bucket, year and month

    def document(self) -> dict:
        """The manifest.json `download` keys beside rounds and parameters."""
        top = sorted(self.errors.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_ERRORS]
        return {"buckets": dict(self), "errors": dict(self.errors), "top_errors": [[r, n] for r, n in top],
                "last_round": self.last_round, "survival": self.survival}


def _dates_line(unparsed: dict) -> str:
    return "; ".join(f"{col} " + ", ".join(f"{r} {n:,}" for r, n in sorted(rs.items())) for col, rs in sorted(unparsed.items()))


def format_summary(summary: dict) -> str:
    """The per-bucket status table, then (for a DownloadSummary) throughput, failures by reason and
    the dates that did not parse."""
    statuses = sorted({s for b in summary.values() for s in b["statuses"]})
    head = f"{'bucket':<12} {'rows':>9} {'shards':>7} " + " ".join(f"{s:>18}" for s in statuses)
    lines = [head]
    for name, b in summary.items():
        lines.append(f"{name:<12} {b['rows']:>9,} {b['shards']:>7} " + " ".join(f"{b['statuses'].get(s, 0):>18,}" for s in statuses))
    last = getattr(summary, "last_round", None)
    if last:
        num = {k: last.get(k) if isinstance(last.get(k), (int, float)) else 0 for k in ("images", "bytes_downloaded", "seconds", "shards")}
        rate = (f"{last['images_per_s']:,.1f} images/s, {last['mb_per_s']:,.2f} MB/s"
                if isinstance(last.get("images_per_s"), (int, float)) and isinstance(last.get("mb_per_s"), (int, float)) else "no time measured")
        lines.append(f"round {last.get('round', '?')}: {num['images']:,} images, {num['bytes_downloaded'] / 1e6:,.2f} MB fetched "
                     f"in {num['seconds']:,.1f} s over {num['shards']} shards: {rate}")
        if isinstance(last.get("unparsed_dates"), dict) and last["unparsed_dates"]:
            lines.append(f"dates not parsed (stored as null): {_dates_line(last['unparsed_dates'])}")
    if getattr(summary, "upgraded", None):
        lines.append(f"older string dates parsed; not parsed (now null): {_dates_line(summary.upgraded)}")
    surv = getattr(summary, "survival", None)
    if isinstance(surv, dict) and surv.get("buckets"):
        lines.append("survival (successes / attempted rows, 95% Wilson interval), by bucket and first-seen year:")
        lines += ["  " + line for line in format_survival(surv).splitlines()]
    errors = getattr(summary, "errors", None)
    if errors:
        top = sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))
        lines.append(f"failures by reason ({sum(errors.values()):,} rows, {len(top)} reasons):")
        lines += [f"  {n:>9,}  {r}" for r, n in top[:TOP_ERRORS]]
        if len(top) > TOP_ERRORS:
            lines.append(f"  {sum(n for _, n in top[TOP_ERRORS:]):>9,}  ({len(top) - TOP_ERRORS} other reasons)")
    return "\n".join(lines)
