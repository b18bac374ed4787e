"""The two task kinds of a curation, as pure functions of their spec (the executor runs them).

map_chunk: read one chunk of one input, date and judge its rows, write the valid ones into uid hash
partitions (one Arrow IPC file per map task, one record batch per partition). reduce_partition: gather one partition from every
map output, keep the earliest row per uid, write one Parquet file per year. Both write through
`atomic_dir`, under names fixed by their spec, so a rerun reproduces them byte for byte.
"""

from __future__ import annotations

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


SHUFFLE_FILE = "partitions.arrow"


def write_partitions(path, judged: pl.DataFrame, partitions: int, compression: str) -> None:
    """One Arrow IPC file per map task holding record batch p = the rows of hash partition p (an
    empty batch where it has none; rows with _part < 0 are left out). One file per map, not one per
    (map, partition): at 12.7B rows that is 12.7k files instead of 12.7k x 12.7k, and a reduce task
    reads its batch by offset from the file's footer (a range read on an object store)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    parts = judged.partition_by("_part", as_dict=True)
    schema = judged.head(0).drop("_part").to_arrow().schema
    empty = pa.record_batch([pa.array([], type=f.type) for f in schema], schema=schema)
    options = ipc.IpcWriteOptions(compression=None if compression == "uncompressed" else compression)
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, schema, options=options) as writer:
        for p in range(partitions):
            frame = parts.get((p,))
            if frame is None:
                writer.write_batch(empty)
                continue
            table = frame.drop("_part").to_arrow().cast(schema).combine_chunks()
            batches = table.to_batches()
            writer.write_batch(batches[0] if batches else empty)


def read_partition(path, partition: int):
    """Record batch `partition` of a map task's shuffle file (memory-mapped on local disk, a range
    read on an object store), or None when the map wrote no file (no valid row)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    if isinstance(path, ObjectPath):
        try:
            source = path.open("rb")
        except FileNotFoundError:
            return None
    else:
        if not path.exists():
            return None
        source = pa.memory_map(str(path))
    return ipc.open_file(source).get_batch(partition)


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
    shuffle_bytes = 0
    with atomic_dir(final) as tmp:
        if n_valid:
            # Dropped rows go to partition -1, which is not written: one gather instead of a
            # filter followed by a partition.
            part = pl.when(pl.col("_reason").is_null()).then(partition_index(spec.partitions)).otherwise(-1)
            judged = judged.with_columns(_part=part).drop("_reason")
            write_partitions(tmp / SHUFFLE_FILE, judged, spec.partitions, spec.compression)
            shuffle_bytes = (tmp / SHUFFLE_FILE).stat().st_size
    return {
        "input": spec.file.path,
        "kind": spec.file.kind,
        "rows_in": raw.height + sum(skipped.values()),
        "valid": n_valid,
        "dropped": dropped | {r: dropped.get(r, 0) + n for r, n in skipped.items()},
        "reader": {k: v for k, v in reader_stats.items() if not k.startswith("dropped:")},
        "_seconds": {"read": t1 - t0, "recover": t2 - t1, "write": time.perf_counter() - t2},
        "_shuffle_bytes": shuffle_bytes,
    }


def reduce_partition(spec: ReduceSpec) -> dict:
    """Earliest row per uid for one partition, written as one file per year."""
    schema = dict(spec.schema)
    obs_schema = {k: v for k, v in schema.items() if k not in ("month", "n_seen", "split")}
    obs_schema["_order"] = pl.Int64
    t0 = time.perf_counter()
    frames = []
    for key in spec.map_keys:
        batch = read_partition(location(spec.work) / "map" / key / SHUFFLE_FILE, spec.partition)
        if batch is not None and batch.num_rows:
            frames.append(conform(pl.from_arrow(batch), obs_schema))
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
