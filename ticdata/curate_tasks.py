"""The two task kinds of a curation, as pure functions of their spec (the executor runs them).

map_chunk: read one chunk of one input, date and judge its rows, write the valid ones into uid hash
partitions (one Arrow IPC file per partition). reduce_partition: gather one partition from every
map output, keep the earliest row per uid, write one Parquet file per year. Both write through
`atomic_dir`, under names fixed by their spec, so a rerun reproduces them byte for byte.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import polars as pl

from ticdata.columns import ColumnMap
from ticdata.dedupe import earliest_per_uid, partition_index
from ticdata.errors import UserError
from ticdata.manifest import conform
from ticdata.recover import judge_rows
from ticdata.snapshots import SnapshotTable
from ticdata.sources import InputFile, reader
from ticdata.objstore import ObjectPath, location
from ticdata.storage import atomic_dir

ROW_BITS = 32  # _order = map task index << 32 | row within the chunk


@dataclass(frozen=True)
class MapSpec:
    index: int
    file: InputFile
    chunk: tuple
    partitions: int
    work: str
    snapshots: SnapshotTable
    columns: ColumnMap
    compression: str


@dataclass(frozen=True)
class ReduceSpec:
    partition: int
    map_keys: tuple[str, ...]
    work: str
    schema: tuple[tuple[str, pl.DataType], ...]


def map_key(i: int) -> str:
    return f"map-{i:06d}"


def reduce_key(p: int) -> str:
    return f"reduce-{p:05d}"


def map_chunk(spec: MapSpec) -> dict:
    """Read one chunk, recover timestamps, write valid rows into uid hash partitions."""
    t0 = time.perf_counter()
    raw, reader_stats = reader(spec.file.kind).read(spec.file, spec.chunk, spec.columns)
    t1 = time.perf_counter()
    if raw.height >= 2**ROW_BITS:
        raise UserError(f"{spec.file.path}: a chunk holds {raw.height} rows; lower --chunk-rows")
    judged, dropped = judge_rows(raw, spec.snapshots, order_base=spec.index << ROW_BITS)
    t2 = time.perf_counter()
    skipped = {k.split(":", 1)[1]: v for k, v in reader_stats.items() if k.startswith("dropped:")}
    final = location(spec.work) / "map" / map_key(spec.index)
    n_valid = judged.height - sum(dropped.values())
    with atomic_dir(final) as tmp:
        if n_valid:
            # Dropped rows go to partition -1, which is not written: one gather instead of a
            # filter followed by a partition.
            part = pl.when(pl.col("_reason").is_null()).then(partition_index(spec.partitions)).otherwise(-1)
            judged = judged.with_columns(_part=part).drop("_reason")
            for (part,), frame in sorted(judged.partition_by("_part", as_dict=True).items()):
                if part < 0:
                    continue
                frame.drop("_part").write_ipc(
                    tmp / f"p-{part:05d}.arrow", compression=spec.compression, compat_level=pl.CompatLevel.newest()
                )
    return {
        "input": spec.file.path,
        "kind": spec.file.kind,
        "rows_in": raw.height + sum(skipped.values()),
        "valid": n_valid,
        "dropped": dropped | {r: dropped.get(r, 0) + n for r, n in skipped.items()},
        "reader": {k: v for k, v in reader_stats.items() if not k.startswith("dropped:")},
        "_seconds": {"read": t1 - t0, "recover": t2 - t1, "write": time.perf_counter() - t2},
    }


def reduce_partition(spec: ReduceSpec) -> dict:
    """Earliest row per uid for one partition, written as one file per year."""
    schema = dict(spec.schema)
    obs_schema = {k: v for k, v in schema.items() if k not in ("month", "n_seen", "split")}
    obs_schema["_order"] = pl.Int64
    t0 = time.perf_counter()
    frames = []
    for key in spec.map_keys:
        path = location(spec.work) / "map" / key / f"p-{spec.partition:05d}.arrow"
        if isinstance(path, ObjectPath):
            try:  # one GET instead of a HEAD and a GET
                frames.append(conform(pl.read_ipc(io.BytesIO(path.read_bytes())), obs_schema))
            except FileNotFoundError:
                pass
        elif path.exists():
            frames.append(conform(pl.read_ipc(path), obs_schema))
    rows_in = sum(f.height for f in frames)
    files, counts = [], []
    final = location(spec.work) / "reduce" / reduce_key(spec.partition)
    with atomic_dir(final) as tmp:
        if frames:
            both = pl.concat(frames, how="vertical")
            del frames
            t1 = time.perf_counter()
            kept = earliest_per_uid(both)
            del both
            t2 = time.perf_counter()
            kept = kept.with_columns(
                year=pl.col("ts").dt.year().cast(pl.Int32),
                month=pl.col("ts").dt.month().cast(pl.Int8),
                split=pl.lit("train"),
            )
            for (year,), part in sorted(kept.partition_by("year", as_dict=True).items()):
                rel = f"year={year}/part-{spec.partition:05d}.parquet"
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                conform(part.drop("year"), schema).write_parquet(tmp / rel, compression="zstd", compression_level=1, statistics=True)
                files.append(rel)
            grouped = kept.group_by(["year", "month", "split"]).len().sort(["year", "month", "split"])
            counts = [[int(y), int(m), str(s), int(n)] for y, m, s, n in grouped.iter_rows()]
            n_kept = kept.height
        else:
            n_kept = 0
            t1 = t2 = time.perf_counter()
    seconds = {"read": t1 - t0, "dedupe": t2 - t1, "write": time.perf_counter() - t2}
    return {"rows_in": rows_in, "kept": n_kept, "duplicates": rows_in - n_kept, "files": files, "counts": counts, "_seconds": seconds}
