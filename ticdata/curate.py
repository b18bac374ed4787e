"""`tic curate`: pool files -> year-partitioned manifest, as a map/reduce over uid hash partitions.

This module plans the job, keeps its state folder and writes manifest.json; the tasks themselves
are in `ticdata.curate_tasks`. Map tasks read one chunk of one input (a run of Parquet row groups,
or one WARC/WAT/YFCC/RedCaps file), recover each row's timestamp, count drops, and write the valid
rows into N hash partitions of uid. Reduce tasks own one partition each: they keep the earliest
row per uid and write it to the year files. Memory per task is bounded by the chunk and partition
sizes, never by the pool.
The job (`ticdata.job`) keeps its state under <out>/.tic/curate/ (plan, completion markers, task
outputs); it is deleted once manifest.json and the done mark are written.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ticdata import __version__
from ticdata.benchmarks import Benchmark, load_benchmark
from ticdata.columns import ColumnMap
from ticdata.curate_tasks import MapSpec, ReduceSpec, map_chunk, map_key, reduce_key, reduce_partition
from ticdata.errors import UserError
from ticdata.executor import Task
from ticdata.job import DONE, Job
from ticdata.layout import CuratedFolder
from ticdata.documents import load_manifest_doc
from ticdata.ledger import Ledger
from ticdata.manifest import SCHEMA_VERSION, bucket_table, manifest_schema
from ticdata.recover import REASONS
from ticdata.snapshots import SnapshotTable
from ticdata.sources import InputFile, inspect_inputs, reader
from ticdata.objstore import is_remote, location
from ticdata.storage import dumps_json, publish, read_json, rmtree, write_json_atomic

log = logging.getLogger(__name__)
SHUFFLE_COMPRESSIONS = ("auto", "uncompressed", "lz4", "zstd")


@dataclass(frozen=True)
class CurateConfig:
    inputs: tuple[str, ...]
    out: Path
    benchmark: str = "tic-datacomp"
    granularity: str | None = None  # None: the benchmark's own
    columns: ColumnMap = field(default_factory=ColumnMap)
    input_format: str | None = None  # None: detect per file
    collinfo: str | None = None  # None: the shipped crawl index
    partitions: int | None = None  # None: from the input size and partition_rows
    partition_rows: int = 1_000_000
    chunk_rows: int = 1_000_000
    shuffle_compression: str = "auto"  # map outputs: auto, uncompressed (fastest), lz4 or zstd (less disk)
    overwrite: bool = False
    keep_work: bool = False
    work_dir: Path | None = None  # intermediate files; None: OUT/.tic/curate/work (a cluster needs shared storage)
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.inputs:
            raise UserError("no inputs; pass pool files or folders (Parquet, WARC/WAT, YFCC, RedCaps)")
        if self.shuffle_compression not in SHUFFLE_COMPRESSIONS:
            raise UserError(f"--shuffle-compression {self.shuffle_compression!r}: choose {', '.join(SHUFFLE_COMPRESSIONS)}")
        if self.chunk_rows < 1 or self.partition_rows < 1 or (self.partitions is not None and self.partitions < 1):
            raise UserError("--chunk-rows, --partition-rows and --partitions must be positive")


@dataclass
class Plan:
    inputs: list[InputFile]
    chunks: list[tuple[InputFile, tuple]]
    partitions: int
    schema: dict[str, pl.DataType]
    benchmark: Benchmark
    snapshots: SnapshotTable

    def fingerprint(self, config: CurateConfig) -> dict:
        return {
            "tool_version": __version__,
            "inputs": [{"path": f.path, "size": f.size, "mtime_ns": location(f.path).stat().st_mtime_ns} for f in self.inputs],
            "parameters": self.parameters(config),
        }

    def split(self) -> dict:
        """How the inputs are cut into map tasks (not part of the output's identity: any cut gives the
        same bytes). Another cut, e.g. a reader that now chunks by byte range, restarts the state
        instead of reusing map outputs of other chunks."""
        specs = dumps_json([[f.path, list(spec)] for f, spec in self.chunks])
        return {"chunks": len(self.chunks), "chunks_sha256": hashlib.sha256(specs).hexdigest()}

    def parameters(self, config: CurateConfig) -> dict:
        return {
            "benchmark": self.benchmark.name,
            "granularity": self.benchmark.granularity,
            "columns": dict(config.columns.renames),
            "input_format": config.input_format,
            "collinfo_sha256": self.snapshots.sha256,
            "partitions": self.partitions,
            "chunk_rows": config.chunk_rows,
        }


def make_plan(config: CurateConfig) -> Plan:
    """Validate everything and decide the tasks; writes nothing."""
    snapshots = SnapshotTable.load(config.collinfo)
    bench = load_benchmark(config.benchmark).with_granularity(config.granularity)
    _check_out_apart(config)
    out = location(config.out)
    files = inspect_inputs(list(config.inputs), config.columns, config.input_format,
                           exclude=out if is_remote(out) else Path(os.path.realpath(out)))
    other = [f for f in files if f.kind != "parquet"]
    if config.columns.renames and other:
        log.warning("--column applies to Parquet inputs only; %d %s file(s) keep their own layout", len(other), other[0].kind)
    chunks = [(f, spec) for f in files for spec in reader(f.kind).chunks(f, config.chunk_rows)]
    est = sum(f.estimated_rows() for f in files)
    partitions = config.partitions or max(1, math.ceil(est / config.partition_rows))
    schema = manifest_schema([(f.path, list(f.schema)) for f in files])
    return Plan(files, chunks, partitions, schema, bench, snapshots)


def _check_out_apart(config: CurateConfig) -> None:
    """An input inside --out (e.g. its own manifest) is refused; --out inside an input folder is
    fine: its files are left out of the inputs (`inspect_inputs(exclude=...)`)."""
    out = location(config.out)
    out = out if is_remote(out) else Path(os.path.realpath(out))  # realpath: no error on a symlink loop (named later)
    for raw in config.inputs:
        p = location(raw)
        p = p if is_remote(p) else Path(os.path.realpath(p))
        if is_remote(p) == is_remote(out) and p.is_relative_to(out):
            raise UserError(f"{raw}: an input inside --out {config.out}; choose an output folder apart from the inputs")


def make_job(config: CurateConfig, plan: Plan) -> Job:
    """The curation as a job on config.out (its outputs: manifest/ and manifest.json)."""
    folder = CuratedFolder(location(config.out).resolve())
    return Job(folder.root, "curate", plan.fingerprint(config), outputs=(folder.manifest_dir, folder.manifest_json),
               overwrite=config.overwrite, progress=config.progress, describe="a curation", split=plan.split())


def finished(config: CurateConfig, plan: Plan) -> dict | None:
    """The manifest.json of a finished curation of exactly this plan at config.out, else None."""
    job = make_job(config, plan)
    return load_manifest_doc(job.out) if job.assess() == DONE else None


def curate(config: CurateConfig, executor, plan: Plan | None = None) -> dict:
    """Run (or finish, or confirm) a curation; returns the manifest.json document.

    Pass the `make_plan(config)` result when the inputs were validated already (the CLI does so
    before starting Ray, so bad input fails fast)."""
    started = time.monotonic()
    plan = plan or make_plan(config)
    job = make_job(config, plan).open()
    folder = CuratedFolder(job.out)
    if job.done:
        log.info("%s: already curated from these inputs; nothing to do", job.out)
        return load_manifest_doc(folder.root)
    work = _work_dir(config, job)
    compression = shuffle_compression(config.shuffle_compression, sum(f.estimated_rows() for f in plan.inputs))
    map_tasks = [
        Task(map_key(i), map_chunk, (MapSpec(i, f, spec, plan.partitions, str(work), plan.snapshots, config.columns, compression),),
             f.path, outputs=(work / "map" / map_key(i),))
        for i, (f, spec) in enumerate(plan.chunks)
    ]
    map_keys = tuple(t.key for t in map_tasks)
    schema = tuple(plan.schema.items())
    reduce_tasks = [
        Task(reduce_key(p), reduce_partition, (ReduceSpec(p, map_keys, str(work), schema),), f"partition {p}",
             outputs=(work / "reduce" / reduce_key(p),))
        for p in range(plan.partitions)
    ]
    # Map outputs are needed only while a partition is still to reduce: then lost ones are made
    # again; once every partition is reduced the map stats are read from their markers.
    job.forget_lost(reduce_tasks)
    walls = {"plan": time.monotonic() - started}
    if _all_marked(job, reduce_tasks) and _all_marked(job, map_tasks):
        map_stats = {t.key: read_json(job.completions / f"{t.key}.json") for t in map_tasks}
    else:
        map_stats = job.stage(executor, "read", map_tasks)
    walls["map"] = time.monotonic() - started - sum(walls.values())
    reduce_stats = job.stage(executor, "dedupe", reduce_tasks)
    walls["reduce"] = time.monotonic() - started - sum(walls.values())
    maps, reduces = [map_stats[t.key] for t in map_tasks], [reduce_stats[t.key] for t in reduce_tasks]
    doc = _finalize(folder, work, plan, config, maps, reduces)
    if not config.keep_work and config.work_dir is not None:
        rmtree(work)
    walls["finalize"] = time.monotonic() - started - sum(walls.values())
    timing = time_profile(walls, maps, reduces, executor)
    job.finish({"timing": timing}, keep_state=config.keep_work)
    log.info("curated %d rows into %d in %.1fs", doc["ledger"]["rows_in"], doc["ledger"]["kept"], time.monotonic() - started)
    log.info("time: %s", describe_profile(timing))
    return doc


def time_profile(walls: dict, maps: list[dict], reduces: list[dict], executor) -> dict:
    """Where a curation's time went: the driver's wall seconds per phase, and the seconds the tasks
    spent in each step summed over tasks (task-seconds: on Ray one task holds one core, so rows per
    task-second is a per-core rate; in process a task may use every core). Tasks resumed from an
    earlier run count with their original seconds. Not part of the manifest: timing is not a
    deterministic output; it is kept in the done mark (`.tic/curate.done.json`)."""
    steps: dict[str, float] = {}
    for stage, stats in (("map", maps), ("reduce", reduces)):
        for s in stats:
            for step, sec in (s.get("_seconds") or {}).items():
                steps[f"{stage}.{step}"] = steps.get(f"{stage}.{step}", 0.0) + sec
    return {
        "executor": getattr(executor, "name", type(executor).__name__),
        "wall_s": {k: round(v, 3) for k, v in walls.items()},
        "task_s": {k: round(v, 3) for k, v in steps.items()},
        "rows": {"map": sum(m["rows_in"] for m in maps), "reduce": sum(r["rows_in"] for r in reduces),
                 "kept": sum(r["kept"] for r in reduces)},
        "shuffle_bytes": sum(m.get("_shuffle_bytes", 0) for m in maps),
        "tasks": {"map": len(maps), "reduce": len(reduces)},
    }


def describe_profile(t: dict) -> str:
    walls = ", ".join(f"{k} {v:.1f}s" for k, v in t["wall_s"].items())
    steps = ", ".join(f"{k} {v:.1f}" for k, v in t["task_s"].items())
    return f"{walls}; task-seconds: {steps}"


def _all_marked(job: Job, tasks: list[Task]) -> bool:
    return all((job.completions / f"{t.key}.json").exists() for t in tasks)


SHUFFLE_BYTES_PER_ROW = 300  # uncompressed intermediate size of a DataComp-layout row, measured


def shuffle_compression(choice: str, rows: int) -> str:
    """`auto`: uncompressed while the intermediate files fit in a quarter of this machine's memory
    (they stay in the page cache), else lz4 (half the bytes to write back and read from disk)."""
    if choice != "auto":
        return choice
    import psutil

    return "uncompressed" if rows * SHUFFLE_BYTES_PER_ROW < psutil.virtual_memory().total / 4 else "lz4"


def _work_dir(config: CurateConfig, job: Job) -> Path:
    if config.work_dir is None:
        return job.path("work")
    tag = hashlib.sha1(str(job.out).encode()).hexdigest()[:12]  # one subfolder per output folder
    return location(config.work_dir).resolve() / f"tic-curate-{tag}"


def _finalize(folder: CuratedFolder, work: Path, plan: Plan, config: CurateConfig, maps: list[dict], reduces: list[dict]) -> dict:
    ledger = Ledger()
    reasons = list(REASONS) + sorted({r for m in maps for r in m["dropped"]} - set(REASONS))
    dropped = {r: sum(m["dropped"].get(r, 0) for m in maps) for r in reasons}
    rows_in = sum(m["rows_in"] for m in maps)
    valid = sum(m["valid"] for m in maps)
    ledger.add_stage("read", rows_in, valid, dropped=dropped)
    ledger.add_stage(
        "dedupe", sum(r["rows_in"] for r in reduces), sum(r["kept"] for r in reduces), duplicates=sum(r["duplicates"] for r in reduces)
    )
    ledger.close()
    for p, r in enumerate(reduces):
        for rel in r["files"]:
            src = work / "reduce" / reduce_key(p) / rel
            dst = folder.manifest_dir / rel
            if src.exists():
                publish(src, dst)
            elif not dst.exists():
                raise RuntimeError(f"reduce output {rel} of partition {p} is missing; rerun with --overwrite")
    folder.manifest_dir.mkdir(parents=True, exist_ok=True)
    counts = [tuple(c) for r in reduces for c in r["counts"]]
    merged: dict[tuple, int] = {}
    for y, m, s, n in counts:
        merged[(y, m, s)] = merged.get((y, m, s), 0) + n
    buckets, outside = bucket_table([(y, m, s, n) for (y, m, s), n in merged.items()], plan.benchmark)
    years: dict[str, int] = {}
    for (y, _, _), n in sorted(merged.items()):
        years[str(y)] = years.get(str(y), 0) + n
    per_kind: dict[str, dict[str, int]] = {}
    for m in maps:
        agg = per_kind.setdefault(m["kind"], {"files": 0, "rows": 0})
        agg["rows"] += m["rows_in"]
        for k, v in m["reader"].items():
            agg[k] = agg.get(k, 0) + v
    for kind in per_kind:
        per_kind[kind]["files"] = sum(1 for f in plan.inputs if f.kind == kind)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "tic", "version": __version__, "command": "curate"},
        "inputs": {
            "files": [{"path": f.path, "kind": f.kind, "bytes": f.size} for f in plan.inputs],
            "bytes": sum(f.size for f in plan.inputs),
            "by_kind": per_kind,
        },
        "parameters": plan.parameters(config) | {"collinfo": plan.snapshots.source if config.collinfo else "shipped"},
        "benchmark": plan.benchmark.to_json(),
        "columns": {k: str(v) for k, v in plan.schema.items()},
        "rows": ledger.kept,
        "years": years,
        "splits": {"train": ledger.kept},
        "buckets": buckets,
        "outside_buckets": outside,
        "ledger": ledger.to_json(),
    }
    write_json_atomic(folder.manifest_json, doc)
    return doc
