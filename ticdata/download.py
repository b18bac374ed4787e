"""`tic download DIR`: fetch every bucket of a curated manifest into webdataset shards.

img2dataset does the fetching, resizing and writing: each shard is one task running its
`Downloader` (thread pool, resizer, webdataset writer, per-sample status table), with three
changes made through its own extension points: the sample key is the uid (a writer subclass),
tars get a fixed mtime, and the fetch function is `ticdata.fetch` (host policy, byte and pixel
caps, Last-Modified kept). tic owns what img2dataset leaves out: a status for every row merged
back into the manifest, rounds that retry only failed rows, completion markers so a killed run
skips finished shards, and shards spread over a Ray cluster with their statuses collected.

Layout: DIR/shards/<bucket>/NNNNNNNN.tar with img2dataset's NNNNNNNN.parquet and NNNNNNNN_stats.json
beside it (`ticdata.download_stats`), and sizes.json. One `tic download` is one round, run as
a job (`ticdata.job`) whose state DIR/.tic/download/ holds the round's plan (plan.parquet: row ->
bucket, shard), completion markers and per-shard status tables: it finishes an interrupted round
(with the parameters it was started with), or else fetches every row that has no status yet or is
not a success (failures and refusals alike: a refusal may depend on flags the user has since
changed). The round's statuses are merged into the manifest, then the state is removed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from ticdata.benchmarks import benchmark_from_manifest, bucket_names
from ticdata.errors import UserError
from ticdata.executor import Task
from ticdata.download_dates import TS, upgrade_date_columns
from ticdata.download_stats import DownloadSummary, error_histogram, format_summary, manifest_status, round_figures, shard_stats, shard_table
from ticdata.fetch import FetchPolicy
from ticdata.job import Job, unfinished_plan
from ticdata.layout import SHARD_DIGITS, CuratedFolder, shard_name
from ticdata.documents import load_sizes
from ticdata.manifest import load_manifest_json, scan_manifest, update_manifest
from ticdata.storage import atomic_dir, publish, write_json_atomic, write_parquet_atomic

log = logging.getLogger(__name__)
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # img2dataset imports albumentations, which would call PyPI
STATUS_COLUMNS = {
    "status": pl.String,  # success | failed_to_download | failed_to_resize | refused
    "error_message": pl.String,
    "sha256": pl.String,
    "width": pl.Int32,
    "height": pl.Int32,
    "shard": pl.String,  # <bucket>/NNNNNNNN.tar, relative to DIR/shards
    "key": pl.String,
    "exif_datetime_original": TS,  # EXIF DateTimeOriginal, clock time as UTC (ticdata.download_dates)
    "last_modified": TS,  # the HTTP Last-Modified header
}
__all__ = ["DownloadConfig", "bucket_shards", "download", "format_summary", "wds_urls"]
RESIZE_MODES = ("no", "keep_ratio", "keep_ratio_largest", "center_crop", "border")


@dataclass(frozen=True)
class DownloadConfig:
    dir: Path
    image_size: int = 512
    resize_mode: str = "keep_ratio_largest"
    resize_only_if_bigger: bool = True
    encode_quality: int = 95
    samples_per_shard: int = 10_000
    threads: int = 64
    timeout: float = 10.0
    retries: int = 0  # img2dataset's immediate per-sample retries
    policy: FetchPolicy = field(default_factory=FetchPolicy)
    buckets: tuple[str, ...] | None = None  # None: every bucket of the benchmark
    user_agent_token: str | None = None
    disallowed_header_directives: tuple[str, ...] = ("noai", "noimageai", "noindex", "noimageindex")
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("image_size", "samples_per_shard", "threads", "encode_quality"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be positive")
        if not math.isfinite(self.timeout) or self.timeout <= 0 or self.retries < 0:
            raise UserError(f"--timeout {self.timeout} / --retries {self.retries}: the timeout must be a positive number of seconds and the retries at least 0")
        if self.resize_mode not in RESIZE_MODES:
            raise UserError(f"--resize-mode {self.resize_mode!r}: choose one of {', '.join(RESIZE_MODES)}")

    def downloader_params(self) -> dict:
        keep = ("image_size", "resize_mode", "resize_only_if_bigger", "encode_quality", "threads", "timeout", "retries",
                "user_agent_token", "disallowed_header_directives", "samples_per_shard")
        return {k: getattr(self, k) for k in keep} | {"policy": asdict(self.policy)}


@dataclass(frozen=True)
class ShardSpec:
    bucket: str
    shard: int
    round_dir: str  # the job's state folder
    shards_dir: str  # DIR/shards/<bucket>
    params: dict


def status_path(round_dir: str | Path, bucket: str, shard: int) -> Path:
    return Path(round_dir) / "status" / bucket / f"{shard:0{SHARD_DIGITS}d}.parquet"


# ----------------------------------------------------------------------------------------------
# The task: one shard through img2dataset's Downloader.


def _install_fetch(params: dict) -> None:
    """Route img2dataset's download_image through ticdata.fetch with this run's policy."""
    import img2dataset.downloader as d

    from ticdata import fetch as f

    policy = FetchPolicy(**params["policy"])
    _FETCHED.clear()  # one shard at a time per process

    def download_image(row, timeout, user_agent_token, disallowed_header_directives):
        key, url = row
        got = f.fetch(url, timeout, policy, disallowed_header_directives, user_agent_token)
        if got.data is None:
            return key, None, got.error
        with _FETCHED_LOCK:
            _FETCHED.setdefault(url, []).append((got.last_modified, len(got.data)))
        import io

        return key, io.BytesIO(got.data), None

    d.download_image = download_image


_FETCHED: dict[str, list[tuple[str | None, int]]] = {}  # url -> (Last-Modified, bytes) per fetch not yet written
_FETCHED_LOCK = threading.Lock()  # the fetch threads add, the writer (img2dataset's main thread) takes


def _writer_class():
    """img2dataset's webdataset writer with key = uid, a fixed mtime, Last-Modified and the fetched size kept."""
    import pyarrow as pa
    from img2dataset.writer import WebDatasetSampleWriter

    class UidKeyedWriter(WebDatasetSampleWriter):
        def __init__(self, shard_id, output_folder, save_caption, oom_shard_count, schema, encode_format):
            schema = schema.append(pa.field("last_modified", pa.string())).append(pa.field("original_bytes", pa.int64()))
            super().__init__(shard_id, output_folder, save_caption, oom_shard_count, schema, encode_format)
            self.tarwriter.mtime = 0.0  # reproducible tar headers

        def write(self, img_str, key, caption, meta):
            last_modified = size = None
            if meta["status"] != "failed_to_download":  # its bytes were fetched (a success or failed_to_resize)
                with _FETCHED_LOCK:
                    fetched = _FETCHED.get(meta["url"])
                    last_modified, size = fetched.pop(0) if fetched else (None, None)
                    if fetched == []:
                        del _FETCHED[meta["url"]]
            meta["key"] = meta["uid"]
            meta["last_modified"] = last_modified if img_str is not None else None
            meta["original_bytes"] = size
            super().write(img_str, meta["uid"], caption, meta)

    return UidKeyedWriter


def download_shard(spec: ShardSpec) -> dict:
    """Download one shard; move its tar, parquet and stats into place and write its status table."""
    from img2dataset.downloader import Downloader
    from img2dataset.resizer import Resizer

    p = spec.params
    _install_fetch(p)
    round_dir = Path(spec.round_dir)
    rows = (
        pl.scan_parquet(round_dir / "plan.parquet")
        .filter((pl.col("bucket") == spec.bucket) & (pl.col("shard") == spec.shard))
        .select("url", pl.col("text").alias("caption"), "uid", "ts", "year")
        .collect()
    )
    started = time.perf_counter()
    name = shard_name(spec.shard)
    stem = f"{spec.shard:0{SHARD_DIGITS}d}"
    status_file = status_path(round_dir, spec.bucket, spec.shard)
    with atomic_dir(round_dir / "tasks" / f"{spec.bucket}-{spec.shard}") as tmp:
        rows_file = tmp / "rows.arrow"
        rows.with_columns(pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%SZ")).write_ipc(rows_file, compat_level=pl.CompatLevel.oldest())
        resizer = Resizer(
            image_size=p["image_size"], resize_mode=p["resize_mode"], resize_only_if_bigger=p["resize_only_if_bigger"],
            encode_quality=p["encode_quality"],
        )
        downloader = Downloader(
            sample_writer_class=_writer_class(), resizer=resizer, thread_count=p["threads"], save_caption=True,
            extract_exif=True, output_folder=str(tmp), column_list=["url", "caption", "uid", "ts", "year"],
            timeout=p["timeout"], number_sample_per_shard=p["samples_per_shard"], oom_shard_count=SHARD_DIGITS,
            compute_hash="sha256", verify_hash_type=None, encode_format="jpg", retries=p["retries"],
            user_agent_token=p["user_agent_token"], disallowed_header_directives=list(p["disallowed_header_directives"]),
        )  # fmt: skip
        ok, _ = downloader((spec.shard, str(rows_file)))
        if not ok:
            raise RuntimeError(f"img2dataset failed on shard {spec.bucket}/{name} (its traceback is above)")
        raw = pl.read_parquet(tmp / f"{stem}.parquet")
        table, unparsed = shard_table(raw, rows, spec.bucket, name)
        if table.height != rows.height or set(table["uid"]) != set(rows["uid"]):
            raise RuntimeError(f"shard {spec.bucket}/{name}: img2dataset reported {table.height} of {rows.height} rows")
        has_tar = bool((table["status"] == "success").any())  # a tar without samples would break open_clip's sizes.json lookup
        stats = shard_stats(table, json.loads((tmp / f"{stem}_stats.json").read_text()), spec.bucket, name,
                            (tmp / name).stat().st_size if has_tar else 0, unparsed)
        status_file.parent.mkdir(parents=True, exist_ok=True)
        manifest_status(table).write_parquet(tmp / "status.parquet")
        table.write_parquet(tmp / "shard.parquet", compression="zstd", statistics=True)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=4, sort_keys=True) + "\n")
        shards_dir = Path(spec.shards_dir)
        if has_tar:
            publish(tmp / name, shards_dir / name)
        publish(tmp / "shard.parquet", shards_dir / f"{stem}.parquet")
        publish(tmp / "stats.json", shards_dir / f"{stem}_stats.json")
        publish(tmp / "status.parquet", status_file)
    keep = ("count", "successes", "start_time", "end_time", "bytes_downloaded", "bytes_written", "unparsed_dates")
    return {"bucket": spec.bucket, "shard": spec.shard, "rows": rows.height, "counts": stats["statuses"],
            "seconds": time.perf_counter() - started} | {k: stats[k] for k in keep}  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Rounds: plan, run, merge.


def _bucket_rows(dir: Path, doc: dict, wanted: tuple[str, ...] | None) -> pl.DataFrame:
    """(bucket, uid, url, text, ts, year, status) for every manifest row inside a bucket."""
    where = CuratedFolder(dir).manifest_json
    known = bucket_names(doc, where)
    names = list(wanted) if wanted else known
    for name in names:
        if name not in known:
            raise UserError(f"--buckets: {name!r} is not a bucket of {dir} ({', '.join(known)})")
    bench = benchmark_from_manifest(doc, where)
    lf = scan_manifest(dir)
    cols = lf.collect_schema().names()
    status = pl.col("status") if "status" in cols else pl.lit(None, dtype=pl.String)
    bucket = bench.bucket_expr()
    return (
        lf.select(bucket.alias("bucket"), "uid", "url", "text", "ts", "year", status.alias("status"))
        .filter(pl.col("bucket").is_in(names))
        .collect()
    )


def _existing_max_shard(folder: CuratedFolder, bucket: str) -> int:
    """The highest shard number in use: a tar, or the parquet/_stats.json of a shard without successes."""
    stems = [p.name.split(".")[0].removesuffix("_stats") for p in folder.shards.bucket(bucket).glob("*")
             if p.name.endswith((".tar", ".parquet", "_stats.json"))]
    return max((int(s) for s in stems if s.isdigit()), default=-1)


def _pending_plan(config: DownloadConfig, doc: dict) -> pl.DataFrame:
    """The next round's rows (not yet a success) with their bucket and shard number."""
    folder = CuratedFolder(config.dir)
    rows = _bucket_rows(config.dir, doc, config.buckets)
    pending = rows.filter(pl.col("status").is_null() | (pl.col("status") != "success")).sort(["bucket", "uid"])
    parts = []
    for (name,), group in pending.group_by(["bucket"], maintain_order=True):
        first = _existing_max_shard(folder, name) + 1
        parts.append(group.with_columns(shard=(pl.int_range(pl.len()) // config.samples_per_shard + first).cast(pl.Int64)))
    return pl.concat(parts).drop("status") if parts else pending.drop("status").with_columns(shard=pl.lit(0, pl.Int64))


def _round_job(config: DownloadConfig, doc: dict) -> tuple[Job, pl.DataFrame | None] | None:
    """The job of an unfinished round (resumed with the parameters it started with), or of a new
    round over the pending rows; None when every row of the buckets is a success."""
    fingerprint = unfinished_plan(config.dir, "download")
    plan = None
    if fingerprint is None:
        plan = _pending_plan(config, doc)
        if plan.height == 0:
            return None
        rounds = int(doc.get("download", {}).get("rounds", 0))
        fingerprint = {"round": rounds + 1, "rows": plan.height, "params": config.downloader_params(),
                       "buckets": sorted(plan["bucket"].unique().to_list())}
    job = Job(config.dir, "download", fingerprint, progress=config.progress, repeatable=True).open()
    return job, plan


def _merge(config: DownloadConfig, job: Job, doc: dict) -> DownloadSummary:
    """Fold the round's statuses into the manifest, write sizes.json, return the summary (statuses
    and failure reasons of every row in the buckets, whichever round fetched it)."""
    folder = CuratedFolder(config.dir)
    files = sorted(job.path("status").glob("*/*.parquet"))
    status = pl.concat([pl.read_parquet(f) for f in files]).sort("uid") if files else pl.DataFrame(schema={"uid": pl.String, **STATUS_COLUMNS})
    update_manifest(config.dir, status, STATUS_COLUMNS)
    _mark_skipped(config.dir, doc, config.buckets)
    rows = _bucket_rows(config.dir, doc, None)
    full = scan_manifest(config.dir).select("uid", *STATUS_COLUMNS).collect()
    rows = rows.drop("status").join(full, on="uid", how="left")
    summary = {}
    for (name,), group in rows.group_by(["bucket"], maintain_order=True):
        sizes = group.filter(pl.col("status") == "success").group_by("shard").len().sort("shard")
        sizes_doc = {s.split("/", 1)[1]: int(n) for s, n in sizes.iter_rows()}
        if sizes_doc or folder.shards.bucket(name).exists():
            write_json_atomic(folder.shards.sizes_json(name), sizes_doc)
        counts = {str(k): int(v) for k, v in group.group_by(pl.col("status").fill_null("pending")).len().sort("status").iter_rows()}
        summary[name] = {"rows": group.height, "statuses": counts, "shards": len(sizes_doc), "samples": sum(sizes_doc.values()),
                         "errors": error_histogram(group)}
    return DownloadSummary(summary, error_histogram(rows))


def download(config: DownloadConfig, executor) -> DownloadSummary:
    """Run (or finish) one download round; returns the per-bucket summary (a dict by bucket, with
    the failure reasons and the round's throughput as attributes, see `format_summary`)."""
    dir = Path(config.dir).resolve()
    config = DownloadConfig(**{**config.__dict__, "dir": dir})
    folder = CuratedFolder(dir)
    doc = load_manifest_json(dir)
    upgraded = upgrade_date_columns(dir)  # an older folder's string dates, before any status is merged
    opened = _round_job(config, doc)
    if opened is None:
        log.info("%s: every row in the buckets is downloaded; nothing to do", dir)
        return _stored_summary(dir, upgraded)
    job, plan = opened
    plan_file = job.path("plan.parquet")
    if plan is not None or not plan_file.exists():  # a new round (or one killed before its plan was saved)
        write_parquet_atomic(plan_file, plan if plan is not None else _pending_plan(config, doc))
    info = job.fingerprint
    shards = pl.read_parquet(plan_file, columns=["bucket", "shard"]).unique().sort(["bucket", "shard"])
    tasks = [
        Task(f"shard-{b}-{s:0{SHARD_DIGITS}d}", download_shard,
             (ShardSpec(b, s, str(job.state), str(folder.shards.bucket(b)), info["params"]),), f"{b}/{shard_name(s)}",
             outputs=(status_path(job.state, b, s),))
        for b, s in shards.iter_rows()
    ]  # fmt: skip
    log.info("round %d: %d rows in %d shards", info["round"], info["rows"], len(tasks))
    stats = job.stage(executor, "download", tasks)
    summary = _merge(config, job, doc)
    summary.last_round = round_figures(info["round"], list(stats.values()))
    summary.upgraded = upgraded
    _record(dir, summary, info)
    job.finish({"round": info["round"], "buckets": dict(summary), "last_round": summary.last_round})
    return summary


def _mark_skipped(dir: Path, doc: dict, wanted: tuple[str, ...] | None) -> None:
    """Rows this download does not fetch (outside the benchmark's buckets, or in buckets left out by
    --buckets) get status `skipped`, so every manifest row has a status; a later download that
    includes their bucket fetches them."""
    inside = _bucket_rows(dir, doc, wanted).select("uid")
    lf = scan_manifest(dir)
    todo = lf.filter(pl.col("status").is_null()).select("uid").collect().join(inside, on="uid", how="anti")
    if todo.height:
        reason = "not in the buckets of this download" if wanted else "outside every bucket of the benchmark"
        update_manifest(dir, todo.with_columns(status=pl.lit("skipped"), error_message=pl.lit(reason)), STATUS_COLUMNS)


def _stored_summary(dir: Path, upgraded: dict) -> DownloadSummary:
    """The summary manifest.json holds (nothing left to fetch), with an upgrade's counts recorded."""
    doc = load_manifest_json(dir)
    d = doc.get("download", {})
    as_dict = lambda v: v if isinstance(v, dict) else None  # noqa: E731 - figures only printed; a hand-edited value is left out
    errors = {str(k): v for k, v in (as_dict(d.get("errors")) or {}).items() if isinstance(v, int)}
    summary = DownloadSummary(d.get("buckets", {}), errors, as_dict(d.get("last_round")), upgraded)
    if upgraded and "download" in doc:
        doc["download"]["upgraded_dates"] = upgraded
        write_json_atomic(CuratedFolder(dir).manifest_json, doc)
    return summary


def _record(dir: Path, summary: DownloadSummary, info: dict) -> None:
    """manifest.json `download`: rounds, parameters, buckets (statuses, shards, samples, errors per
    bucket), errors and top_errors (every bucket), last_round (throughput, dates not parsed)."""
    doc = load_manifest_json(dir)
    rounds = doc.get("download", {}).get("rounds", 0)
    doc["download"] = {"rounds": max(rounds, info["round"]), "parameters": info["params"]} | summary.document()
    if summary.upgraded:
        doc["download"]["upgraded_dates"] = summary.upgraded
    write_json_atomic(CuratedFolder(dir).manifest_json, doc)


def bucket_shards(dir: Path, bucket: str) -> list[Path]:
    """The tars of a bucket listed in its sizes.json, in order."""
    shards = CuratedFolder(Path(dir)).shards
    sizes_path = shards.sizes_json(bucket)
    sizes = load_sizes(sizes_path) if sizes_path.exists() else {}
    return [shards.bucket(bucket) / name for name in sorted(sizes)]


def wds_urls(dir: Path, bucket: str) -> str:
    """The bucket's shards as one webdataset/open_clip `--train-data` string ("a.tar::b.tar")."""
    return "::".join(str(p) for p in bucket_shards(dir, bucket))
