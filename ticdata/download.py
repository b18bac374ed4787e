"""`tic download DIR`: fetch every bucket of a curated manifest into webdataset shards.

img2dataset does the fetching, resizing and writing: each shard is one task running its
`Downloader` (thread pool, resizer, webdataset writer, per-sample status table), with three
changes made through its own extension points: the sample key is the uid (a writer subclass),
tars get a fixed mtime, and the fetch function is `ticdata.fetch` (host policy, byte and pixel
caps, Last-Modified kept). tic owns what img2dataset leaves out: a status for every row merged
back into the manifest, rounds that retry only failed rows, completion markers so a killed run
skips finished shards, and shards spread over a Ray cluster with their statuses collected.

Layout: DIR/shards/<bucket>/NNNNNNNN.tar (+ sizes.json). One `tic download` is one round, run as
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
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from ticdata.benchmarks import benchmark_from_manifest, bucket_names
from ticdata.errors import UserError
from ticdata.executor import Task
from ticdata.fetch import REFUSED, FetchPolicy
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
    "exif_datetime_original": pl.String,
    "last_modified": pl.String,
}
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

    def download_image(row, timeout, user_agent_token, disallowed_header_directives):
        key, url = row
        got = f.fetch(url, timeout, policy, disallowed_header_directives, user_agent_token)
        if got.data is None:
            return key, None, got.error
        if got.last_modified:
            _LAST_MODIFIED[url] = got.last_modified
        import io

        return key, io.BytesIO(got.data), None

    d.download_image = download_image


_LAST_MODIFIED: dict[str, str] = {}


def _writer_class():
    """img2dataset's webdataset writer with key = uid, a fixed mtime and Last-Modified kept."""
    import pyarrow as pa
    from img2dataset.writer import WebDatasetSampleWriter

    class UidKeyedWriter(WebDatasetSampleWriter):
        def __init__(self, shard_id, output_folder, save_caption, oom_shard_count, schema, encode_format):
            schema = schema.append(pa.field("last_modified", pa.string()))
            super().__init__(shard_id, output_folder, save_caption, oom_shard_count, schema, encode_format)
            self.tarwriter.mtime = 0.0  # reproducible tar headers

        def write(self, img_str, key, caption, meta):
            meta["key"] = meta["uid"]
            meta["last_modified"] = _LAST_MODIFIED.pop(meta["url"], None) if img_str is not None else None
            super().write(img_str, meta["uid"], caption, meta)

    return UidKeyedWriter


def _exif_datetime(exif_json: str | None) -> str | None:
    if not exif_json:
        return None
    try:
        value = json.loads(exif_json).get("EXIF DateTimeOriginal")
    except ValueError:
        return None
    if not value:
        return None
    m = re.match(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})", value)
    return f"{m[1]}-{m[2]}-{m[3]}T{m[4]}:{m[5]}:{m[6]}" if m else None


def _status_table(raw: pl.DataFrame, bucket: str) -> pl.DataFrame:
    """img2dataset's per-sample table -> tic's status columns, one row per uid."""
    refused = pl.col("error_message").str.starts_with(REFUSED) | pl.col("error_message").str.starts_with(
        "Use of image disallowed"
    )
    status = pl.when(pl.col("status") == "success").then(pl.lit("success")).when(refused.fill_null(False)).then(
        pl.lit("refused")
    ).otherwise(pl.col("status"))
    return raw.select(
        "uid",
        status.alias("status"),
        "error_message",
        pl.col("sha256"),
        pl.col("width").cast(pl.Int32),
        pl.col("height").cast(pl.Int32),
        pl.when(pl.col("status") == "success").then(pl.lit(bucket + "/") + pl.col("shard_file")).alias("shard"),
        pl.when(pl.col("status") == "success").then(pl.col("uid")).alias("key"),
        pl.col("exif").map_elements(_exif_datetime, return_dtype=pl.String).alias("exif_datetime_original"),
        "last_modified",
    ).sort("uid")


def download_shard(spec: ShardSpec) -> dict:
    """Download one shard; move its tar into place and write its status table."""
    from img2dataset.downloader import Downloader
    from img2dataset.resizer import Resizer

    p = spec.params
    _install_fetch(p)
    round_dir = Path(spec.round_dir)
    rows = (
        pl.scan_parquet(round_dir / "plan.parquet")
        .filter((pl.col("bucket") == spec.bucket) & (pl.col("shard") == spec.shard))
        .select("url", pl.col("text").alias("caption"), "uid", pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%SZ").alias("ts"), "year")
        .collect()
    )
    started = time.perf_counter()
    name = shard_name(spec.shard)
    status_file = status_path(round_dir, spec.bucket, spec.shard)
    with atomic_dir(round_dir / "tasks" / f"{spec.bucket}-{spec.shard}") as tmp:
        rows_file = tmp / "rows.arrow"
        rows.write_ipc(rows_file, compat_level=pl.CompatLevel.oldest())
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
        raw = pl.read_parquet(tmp / f"{spec.shard:0{SHARD_DIGITS}d}.parquet").with_columns(shard_file=pl.lit(name))
        table = _status_table(raw, spec.bucket)
        if table.height != rows.height or set(table["uid"]) != set(rows["uid"]):
            raise RuntimeError(f"shard {spec.bucket}/{name}: img2dataset reported {table.height} of {rows.height} rows")
        status_file.parent.mkdir(parents=True, exist_ok=True)
        table.write_parquet(tmp / "status.parquet")
        if (table["status"] == "success").any():  # a tar without samples would break open_clip's sizes.json lookup
            publish(tmp / name, Path(spec.shards_dir) / name)
        publish(tmp / "status.parquet", status_file)
    counts = dict(table.group_by("status").len().iter_rows())
    return {"bucket": spec.bucket, "shard": spec.shard, "rows": rows.height, "counts": counts,
            "seconds": time.perf_counter() - started}  # fmt: skip


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
    tars = [int(p.stem) for p in folder.shards.bucket(bucket).glob("*.tar") if p.stem.isdigit()]
    return max(tars, default=-1)


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


def _merge(config: DownloadConfig, job: Job, doc: dict) -> dict:
    """Fold the round's statuses into the manifest, write sizes.json, return the summary."""
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
        summary[name] = {"rows": group.height, "statuses": counts, "shards": len(sizes_doc), "samples": sum(sizes_doc.values())}
    return summary


def download(config: DownloadConfig, executor) -> dict:
    """Run (or finish) one download round; returns the per-bucket summary."""
    dir = Path(config.dir).resolve()
    config = DownloadConfig(**{**config.__dict__, "dir": dir})
    folder = CuratedFolder(dir)
    doc = load_manifest_json(dir)
    opened = _round_job(config, doc)
    if opened is None:
        log.info("%s: every row in the buckets is downloaded; nothing to do", dir)
        return _merge_summary(config, doc)
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
    job.stage(executor, "download", tasks)
    summary = _merge(config, job, doc)
    _record(dir, summary, info)
    job.finish({"round": info["round"], "buckets": summary})
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


def _merge_summary(config: DownloadConfig, doc: dict) -> dict:
    return load_manifest_json(config.dir).get("download", {}).get("buckets", {})


def _record(dir: Path, summary: dict, info: dict) -> None:
    doc = load_manifest_json(dir)
    rounds = doc.get("download", {}).get("rounds", 0)
    doc["download"] = {"rounds": max(rounds, info["round"]), "parameters": info["params"], "buckets": summary}
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


def format_summary(summary: dict) -> str:
    statuses = sorted({s for b in summary.values() for s in b["statuses"]})
    head = f"{'bucket':<12} {'rows':>9} {'shards':>7} " + " ".join(f"{s:>18}" for s in statuses)
    lines = [head]
    for name, b in summary.items():
        lines.append(f"{name:<12} {b['rows']:>9,} {b['shards']:>7} " + " ".join(f"{b['statuses'].get(s, 0):>18,}" for s in statuses))
    return "\n".join(lines)
