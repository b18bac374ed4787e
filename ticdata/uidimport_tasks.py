"""The tasks of `tic uids import` at any size: a join of the manifest with the uid lists by uid range.

Neither side fits in one process at TiC-DataComp's size (12.7B manifest rows; lists of 1-2B uids), so
the join is partitioned by uid range, as curate's reduce is by uid hash:

- lists: per uid file, check it (sorted, no uid twice) on its memory map; an unsorted file is sorted
  into the state (DataComp's and TiC's files are sorted: their check costs one pass, no copy).
- keys: per manifest file, its uids as sorted unique `u8,u8` keys.
- join: per range of the high half, the slices of every list and every key run in that range
  (memory-mapped), joined: a uid in two lists is refused here; the matches go to one Arrow IPC
  file per range, record batch p = manifest file p (curate's shuffle layout).
- apply: per manifest file, its matches from every range, joined to its rows (same rows, columns,
  order and Parquet options as the one-process import, so the same bytes).

A task holds one manifest file or one range (about RANGE_UIDS keys); the driver holds names and counts.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl

from ticdata.layout import part_year

from ticdata.benchmarks import benchmark_from_manifest
from ticdata.curate_tasks import read_partition, write_partitions
from ticdata.errors import UserError
from ticdata.official_dating import tally
from ticdata.uidlists import UID_DTYPE, UidFileWriter, array_to_uids, out_of_order, uid_memmap, uid_range_bounds

RANGE_UIDS = 4_000_000
LOWER_HEX_UID = r"^[0-9a-f]{32}$"  # the uids a list can hold as rendered by DataComp (lowercase hex)
TRAIN = "train"
EVAL_MARKS = {"exclude_reason": pl.String, "excluded_by": pl.String, "excluded_distance": pl.Int32, "eval_class": pl.String}


def _keys(uids: pl.Expr) -> list[pl.Expr]:
    """(f0, f1) of a lowercase 32-hex uid, null for anything else (it can match no list)."""
    ok = uids.str.contains(LOWER_HEX_UID).fill_null(False)
    return [pl.when(ok).then(uids.str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64, strict=False)).alias("f0"),
            pl.when(ok).then(uids.str.slice(16, 16).str.to_integer(base=16, dtype=pl.UInt64, strict=False)).alias("f1")]


def check_list(path: str, bucket: str, index: int, work: str) -> dict:
    """A uid file ready to be sliced by range: itself when sorted, else a sorted copy in the state."""
    arr = uid_memmap(Path(path))
    bad = out_of_order(arr)
    if bad is None:
        return {"path": path, "uids": len(arr)}
    i, equal = bad
    if equal:
        raise UserError(f"uid {array_to_uids(arr[i:i + 1])[0]} is listed more than once in the uid file of bucket {bucket}; "
                        "a uid file lists each uid once (DataComp's files are sorted and unique)")
    full = np.sort(np.asarray(arr), order=["f0", "f1"])  # an unsorted list: held once, to sort it
    same = (full["f0"][1:] == full["f0"][:-1]) & (full["f1"][1:] == full["f1"][:-1])
    if same.any():
        uid = array_to_uids(full[int(np.argmax(same)):][:1])[0]
        raise UserError(f"uid {uid} is listed more than once in the uid file of bucket {bucket}; "
                        "a uid file lists each uid once (DataComp's files are sorted and unique)")
    target = Path(work) / f"list-{index:04d}.npy"
    with UidFileWriter(target, len(full)) as w:
        w.append(full)
    return {"path": str(target), "uids": len(full)}


def write_keys(part: str, index: int, work: str) -> dict:
    """One manifest file's uids as a sorted unique key run."""
    keys = pl.read_parquet(part, columns=["uid"]).select(_keys(pl.col("uid"))).drop_nulls().unique().sort("f0", "f1")
    target = Path(work) / f"keys-{index:06d}.npy"
    out = np.empty(keys.height, dtype=UID_DTYPE)
    out["f0"], out["f1"] = keys["f0"].to_numpy(), keys["f1"].to_numpy()
    with UidFileWriter(target, len(out)) as w:
        w.append(out)
    return {"path": str(target), "keys": len(out)}


def _slice(path: str, lo: int, hi: int) -> pl.DataFrame:
    """The keys of a sorted uid file whose high half lies in [lo, hi): two binary searches on the
    memory map (a few pages each), then only the slice is read."""
    arr = uid_memmap(Path(path))
    f0 = arr["f0"]
    a, b = bisect_left(f0, lo), (len(arr) if hi >= 1 << 64 else bisect_left(f0, hi))
    part = np.asarray(arr[a:b])
    return pl.DataFrame({"f0": part["f0"], "f1": part["f1"]}, schema={"f0": pl.UInt64, "f1": pl.UInt64})


def join_range(r: int, ranges: int, lists: list[tuple[str, str]], keys: list[str], work: str) -> dict:
    """Matches (manifest file, f0, f1, list) of uid range r, one IPC batch per manifest file."""
    lo, hi = uid_range_bounds(ranges)[r : r + 2]
    listed = pl.concat([_slice(p, lo, hi).with_columns(list=pl.lit(i, pl.UInt16)) for i, (_, p) in enumerate(lists)])
    twice = listed.filter(pl.struct("f0", "f1").is_duplicated())
    if twice.height:
        f0, f1 = twice.row(0)[:2]
        names = sorted({lists[i][0] for i in twice.filter((pl.col("f0") == f0) & (pl.col("f1") == f1))["list"]})
        raise UserError(f"uid {f0:016x}{f1:016x} is in more than one uid file ({', '.join(names)}); a uid belongs to one bucket")
    found = pl.concat([_slice(p, lo, hi).with_columns(_part=pl.lit(j, pl.Int32)) for j, p in enumerate(keys)])
    matches = found.join(listed, on=["f0", "f1"], how="inner")
    target = Path(work) / f"matches-{r:05d}.arrow"
    write_partitions(target, matches, len(keys), "uncompressed")
    return {"path": str(target), "listed": listed.height, "matches": matches.height}


def _selected(path: Path, index: int, ranges: list[str], names: list[str], columns: list[str] | None = None) -> tuple[int, pl.DataFrame]:
    """The file's rows and its listed rows (sorted by uid), each with its list's name as `bucket`
    (the file's own `bucket`, from an earlier import, renamed `src_bucket`)."""
    batches = [read_partition(Path(m), index) for m in ranges]
    matched = pl.concat([pl.from_arrow(b) for b in batches if b is not None and b.num_rows] or
                        [pl.DataFrame(schema={"f0": pl.UInt64, "f1": pl.UInt64, "list": pl.UInt16})])
    table = matched.select("f0", "f1", bucket=pl.col("list").replace_strict(list(range(len(names))), names, return_dtype=pl.String))
    df = pl.read_parquet(path, columns=columns)
    if "bucket" in df.columns:  # a folder of uid lists imported again: its own buckets are tic's side
        df = df.rename({"bucket": "src_bucket"})
    return df.height, df.with_columns(_keys(pl.col("uid"))).join(table, on=["f0", "f1"], how="inner").drop("f0", "f1").sort("uid")


def _dating(sel: pl.DataFrame, path: Path, doc: dict, where: str) -> list[list]:
    dating: Counter = Counter()
    tally(sel, part_year(path), benchmark_from_manifest(doc, Path(where)), dating)
    return [[o, y, m, t, n] for (o, y, m, t), n in dating.items()]


def tally_part(part: str, index: int, ranges: list[str], names: list[str], doc: dict, where: str) -> dict:
    """How tic dates one manifest file's listed rows (`reshard --dating`): counts, no file written."""
    path = Path(part)
    want = [c for c in ("uid", "month", "bucket") if c in pl.read_parquet_schema(path)]
    _, sel = _selected(path, index, ranges, names, want)
    return {"dating": _dating(sel, path, doc, where)}


def apply_part(part: str, index: int, ranges: list[str], names: list[str], target: str, doc: dict, where: str) -> dict:
    """One manifest file restricted to its listed uids, each with its list's bucket (the file's own
    rows, sorted by uid, as the one-process import wrote them)."""
    path = Path(part)
    rows_in, sel = _selected(path, index, ranges, names)
    dating = _dating(sel, path, doc, where)
    sel = sel.drop("src_bucket", strict=False)
    reset = 0
    if "split" in sel.columns:  # the lists define a fresh folder: marks of an earlier `tic evalsets` go
        reset = int((sel["split"] != TRAIN).sum())
        sel = sel.with_columns([pl.lit(TRAIN).alias("split")] + [pl.lit(None, t).alias(c) for c, t in EVAL_MARKS.items() if c in sel.columns])
    if sel.height:
        from ticdata.storage import write_parquet_atomic

        write_parquet_atomic(Path(target), sel, compression="zstd", statistics=True)
    year = part_year(path)
    split = pl.col("split") if "split" in sel.columns else pl.lit(TRAIN)
    counts = [[b, year, str(s), int(n)] for b, s, n in sel.group_by("bucket", split.alias("split")).len().iter_rows()]
    return {"rows_in": rows_in, "kept": sel.height, "reset": reset, "file": target if sel.height else None, "counts": counts,
            "per_bucket": dict(sel.group_by("bucket").len().iter_rows()),
            "dating": dating}
