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
a job (`ticdata.job`) whose state DIR/.tic/download/ holds the round's plan (plan/: each manifest
file's pending rows; shards.parquet: the shards as slices of them, `ticdata.download_plan`),
completion markers and per-shard status tables: it finishes an interrupted round (with the
parameters it was started with), or else fetches every row that has no status yet or is not a
success (failures and refusals alike: a refusal may depend on flags the user has since changed).
The round's statuses are merged into the manifest file by file, then the state is removed. The
driver holds file names, counts and the shard table, never a row.
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

from ticdata.benchmarks import bucket_names
from ticdata.errors import UserError
from ticdata.executor import Task
from ticdata.download_dates import TS, upgrade_date_columns
from ticdata.download_stats import DownloadSummary, format_summary, manifest_status, round_figures, shard_stats, shard_table
from ticdata.fetch import FetchPolicy
from ticdata.job import Job, unfinished_plan
from ticdata.layout import SHARD_DIGITS, CuratedFolder, shard_name, part_year
from ticdata.documents import load_sizes
from ticdata.download_plan import MergeSpec, PlanSpec, add_up, merge_file, number_shards, plan_file, plan_path, shard_rows
from ticdata.manifest import checked_manifest_files, load_manifest_json
from ticdata.storage import atomic_dir, publish, rmtree, write_json_atomic, write_parquet_atomic
from ticdata.survival import survival, with_official
from ticdata.survival_domains import merge_stage, with_domains
from ticdata.wds import write_in_key_order

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
    slices: tuple[tuple[int, int, int], ...] = ()  # (plan file, first row, rows): `download_plan.shard_rows`


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
    rows = shard_rows(round_dir, spec.slices)
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
        if has_tar:  # samples in uid order, not the order img2dataset's threads finished in: same download, same bytes
            write_in_key_order(tmp / name, tmp / "sorted.tar")
            os.replace(tmp / "sorted.tar", tmp / name)
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
# Rounds: plan, run, merge (tasks per manifest file: `ticdata.download_plan`).


def _files(dir: Path, doc: dict, wanted: tuple[str, ...] | None) -> tuple[list[tuple[int, Path]], list[str], list[str]]:
    """(year, file) of every manifest file, the benchmark's buckets, and the ones fetched."""
    known = bucket_names(doc, CuratedFolder(dir).manifest_json)
    names = list(wanted) if wanted else known
    for name in names:
        if name not in known:
            raise UserError(f"--buckets: {name!r} is not a bucket of {dir} ({', '.join(known)})")
    return [(part_year(p), p) for p in checked_manifest_files(dir)], known, names


def _may_hold(doc: dict, year: int, names: list[str]) -> bool:
    """Whether a manifest file of `year` can hold rows of the fetched buckets (a year bucket's
    files only hold its own year; months and uid lists are told row by row)."""
    bench = doc["benchmark"]
    if bench.get("granularity", "year") != "year":
        return True
    return any(year in s["years"] and s["name"] in names for s in bench["steps"])


def _existing_max_shard(folder: CuratedFolder, bucket: str) -> int:
    """The highest shard number in use: a tar, or the parquet/_stats.json of a shard without successes."""
    stems = [p.name.split(".")[0].removesuffix("_stats") for p in folder.shards.bucket(bucket).glob("*")
             if p.name.endswith((".tar", ".parquet", "_stats.json"))]
    return max((int(s) for s in stems if s.isdigit()), default=-1)


def _round_job(config: DownloadConfig, doc: dict) -> Job:
    """The job of an unfinished round (resumed with the parameters it started with), or of a new one."""
    fingerprint = unfinished_plan(config.dir, "download")
    if fingerprint is None:
        _, _, names = _files(config.dir, doc, config.buckets)
        rounds = int(doc.get("download", {}).get("rounds", 0))
        fingerprint = {"round": rounds + 1, "params": config.downloader_params(), "buckets": sorted(names)}
    return Job(config.dir, "download", fingerprint, progress=config.progress, repeatable=True).open()


def _shard_table(config: DownloadConfig, job: Job, files: list, names: list[str], executor) -> pl.DataFrame:
    """Stage plan (a task per manifest file of a fetched bucket), then the shards numbered once and saved."""
    saved = job.path("shards.parquet")
    doc = load_manifest_json(config.dir)
    tasks = [Task(f"plan-{i:06d}", plan_file, (PlanSpec(str(part), i, year, doc["benchmark"], tuple(names), str(job.state)),),
                  str(part), outputs=(plan_path(job.state, i),))
             for i, (year, part) in enumerate(files) if _may_hold(doc, year, names)]
    stats = job.stage(executor, "plan", tasks)
    if saved.exists():
        return pl.read_parquet(saved)
    counts = [(b, s["part"], start, n) for s in (stats[t.key] for t in tasks) for b, start, n in s["counts"]]
    folder = CuratedFolder(config.dir)
    first = {b: _existing_max_shard(folder, b) + 1 for b in names}
    table = number_shards(counts, first, config.samples_per_shard)
    write_parquet_atomic(saved, table)
    return table


def _merge(config: DownloadConfig, job: Job, files: list, known: list[str], names: list[str], shards: pl.DataFrame,
           executor) -> DownloadSummary:
    """Stage merge: statuses into every manifest file; sizes.json and the summary (statuses and
    failure reasons of every row in the buckets, whichever round fetched it) from the tasks' figures."""
    holding: dict[int, list[str]] = {}
    for b, shard, part in shards.select("bucket", "shard", "part").unique().sort("part", "shard").iter_rows():
        holding.setdefault(part, []).append(str(status_path(job.state, b, shard)))
    reason = "not in the buckets of this download" if config.buckets else "outside every bucket of the benchmark"
    doc = load_manifest_json(config.dir)
    domains = [job.path("domains", f"{i:06d}.parquet") for i in range(len(files))]
    tasks = [Task(f"merge-{i:06d}", merge_file, (MergeSpec(str(part), year, doc["benchmark"], tuple(names), tuple(holding.get(i, ())),
                                                           reason, str(domains[i])), STATUS_COLUMNS), str(part), outputs=(domains[i],))
             for i, (year, part) in enumerate(files)]
    stats = job.stage(executor, "merge", tasks)
    doc["columns"] = doc.get("columns", {}) | {c: str(t) for c, t in STATUS_COLUMNS.items()}
    write_json_atomic(CuratedFolder(config.dir).manifest_json, doc)
    per_bucket, errors = add_up([stats[t.key] for t in tasks], known)
    folder = CuratedFolder(config.dir)
    summary = {}
    for name, b in per_bucket.items():
        sizes_doc = {s.split("/", 1)[1]: n for s, n in sorted(b["successes"].items())}
        if sizes_doc or folder.shards.bucket(name).exists():
            write_json_atomic(folder.shards.sizes_json(name), sizes_doc)
        summary[name] = {"rows": b["rows"], "statuses": b["statuses"], "shards": len(sizes_doc), "samples": sum(sizes_doc.values()),
                         "errors": b["errors"]}
    surv = survival({b: v["survival"] for b, v in per_bucket.items()})
    surv = with_domains(surv, merge_stage(job, executor, domains, sum(stats[t.key].get("domain_rows", 0) for t in tasks)))
    lists = (doc.get("inputs") or {}).get("uid_lists") if isinstance(doc.get("inputs"), dict) else None
    if isinstance(lists, dict) and lists:  # a folder of official uid lists (`tic uids import`)
        surv = with_official(surv, lists)
    return DownloadSummary(summary, errors, survival=surv)


def download(config: DownloadConfig, executor) -> DownloadSummary:
    """Run (or finish) one download round; returns the per-bucket summary (a dict by bucket, with
    the failure reasons and the round's throughput as attributes, see `format_summary`)."""
    dir = Path(config.dir).resolve()
    config = DownloadConfig(**{**config.__dict__, "dir": dir})
    folder = CuratedFolder(dir)
    doc = load_manifest_json(dir)
    upgraded = upgrade_date_columns(dir)  # an older folder's string dates, before any status is merged
    files, known, names = _files(dir, doc, config.buckets)
    job = _round_job(config, doc)
    info = job.fingerprint
    shards = _shard_table(config, job, files, names, executor)
    if shards.height == 0:
        rmtree(job.state)  # no round: nothing recorded
        log.info("%s: every row in the buckets is downloaded; nothing to do", dir)
        return _stored_summary(dir, upgraded)
    tasks = []
    for (b, s), group in shards.group_by(["bucket", "shard"], maintain_order=True):
        slices = tuple((int(p), int(a), int(n)) for p, a, n in group.select("part", "start", "rows").iter_rows())
        tasks.append(Task(f"shard-{b}-{s:0{SHARD_DIGITS}d}", download_shard,
                          (ShardSpec(b, s, str(job.state), str(folder.shards.bucket(b)), info["params"], slices),),
                          f"{b}/{shard_name(s)}", outputs=(status_path(job.state, b, s),)))
    log.info("round %d: %d rows in %d shards", info["round"], int(shards["rows"].sum()), len(tasks))
    stats = job.stage(executor, "download", tasks)
    summary = _merge(config, job, files, known, names, shards, executor)
    summary.last_round = round_figures(info["round"], list(stats.values()))
    summary.upgraded = upgraded
    _record(dir, summary, info)
    job.finish({"round": info["round"], "buckets": dict(summary), "last_round": summary.last_round})
    return summary


def _stored_summary(dir: Path, upgraded: dict) -> DownloadSummary:
    """The summary manifest.json holds (nothing left to fetch), with an upgrade's counts recorded."""
    doc = load_manifest_json(dir)
    d = doc.get("download", {})
    as_dict = lambda v: v if isinstance(v, dict) else None  # noqa: E731 - figures only printed; a hand-edited value is left out
    errors = {str(k): v for k, v in (as_dict(d.get("errors")) or {}).items() if isinstance(v, int)}
    summary = DownloadSummary(d.get("buckets", {}), errors, as_dict(d.get("last_round")), upgraded, as_dict(d.get("survival")))
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
