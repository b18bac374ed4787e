"""The uid -> bucket lookup of `tic reshard`, built by tasks and kept as one file set per uid range.

At TiC-DataComp's size the lookup is 18 bytes per selected uid, about 229 GB at 12.7B rows: no
driver may build it. Two stages, as `tic uids export`:

- runs: per manifest file, its selected rows' (hi, lo, bucket) sorted, a uid in two buckets
  refused; a DataComp uid file is its own run (sorted already; an unsorted one is sorted into the
  state) with one bucket.
- ranges: per range of the high half, the slices of every run (binary search on their memory
  maps), sorted, a uid in two buckets refused, duplicates dropped, written as
  `range-RRRRR-{hi,lo,bucket}.npy`; `ranges.json` lists the lower bounds.

`Lookup.open` memory-maps the ranges and routes each query to its range. The ranges, read in
order, are the one sorted array the one-process build made, so `content_sha256` hashes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
from bisect import bisect_left, bisect_right
from pathlib import Path

import numpy as np
import polars as pl

from ticdata.layout import part_year

from ticdata.benchmarks import benchmark_from_manifest
from ticdata.errors import UserError
from ticdata.storage import atomic_file, read_json, write_json_atomic
from ticdata.uidlists import out_of_order, uid_memmap, uid_range_bounds

RANGE_UIDS = 8_000_000  # selected uids a range task sorts at once (18 bytes each, ~40 while sorting)
RUN = np.dtype([("hi", "<u8"), ("lo", "<u8"), ("b", "<u2")])
_U8 = np.dtype("<u8")


def _save(path: Path, arr: np.ndarray) -> None:
    with atomic_file(path) as fh:
        np.save(fh, np.ascontiguousarray(arr), allow_pickle=False)


def _clash(names: list[str], hi, lo, b) -> None:
    """A uid in two buckets, in arrays sorted by (hi, lo, bucket): refused, named."""
    same = (hi[1:] == hi[:-1]) & (lo[1:] == lo[:-1])
    clash = np.flatnonzero(same & (b[1:] != b[:-1]))
    if len(clash):
        i = int(clash[0])
        raise UserError(f"uid {int(hi[i]):016x}{int(lo[i]):016x} is in buckets {names[b[i]]} and {names[b[i + 1]]}; "
                        "a uid belongs to one bucket")


def _sorted_unique(names: list[str], hi, lo, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.lexsort((b, lo, hi))
    hi, lo, b = hi[order], lo[order], b[order]
    _clash(names, hi, lo, b)
    keep = np.ones(len(hi), dtype=bool)
    keep[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
    return hi[keep], lo[keep], b[keep]


def manifest_run(path: str, index: int, work: str, names: list[str], doc: dict, where: str, split: str | None) -> dict:
    """One manifest file's selected rows as a sorted run of (hi, lo, bucket)."""
    part = Path(path)
    bench = benchmark_from_manifest(doc, Path(where))
    have = pl.read_parquet_schema(part)
    cols = ["uid"] + [c for c in ("month", "split", "bucket") if c in have]
    df = pl.read_parquet(part, columns=cols).with_columns(year=pl.lit(part_year(part), pl.Int32))
    if split is not None:
        df = df.filter(pl.col("split") == split)
    index_of = pl.col("_name").replace_strict(names, list(range(len(names))), default=None, return_dtype=pl.UInt16)
    df = df.with_columns(_name=bench.bucket_expr()).with_columns(_b=index_of).filter(pl.col("_b").is_not_null())
    bad = df.filter(~pl.col("uid").str.contains(r"^[0-9a-f]{32}$") | pl.col("uid").is_null())
    if bad.height:
        raise UserError(f"{part}: uid {bad['uid'][0]!r} is not 32 lowercase hex digits; fix the manifest")
    halves = df.select(hi=pl.col("uid").str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64),
                       lo=pl.col("uid").str.slice(16, 16).str.to_integer(base=16, dtype=pl.UInt64), b="_b")
    hi, lo, b = _sorted_unique(names, halves["hi"].to_numpy(), halves["lo"].to_numpy(), halves["b"].to_numpy())
    run = np.empty(len(hi), RUN)
    run["hi"], run["lo"], run["b"] = hi, lo, b
    target = Path(work) / f"run-{index:06d}.npy"
    _save(target, run)
    return {"path": str(target), "kind": "run", "bucket": None, "rows": len(run)}


def list_run(path: str, k: int, work: str) -> dict:
    """A DataComp uid file as a run of bucket k: the file itself when strictly sorted (DataComp's and
    TiC's are), else a sorted, de-duplicated copy in the state (the file held once to sort it)."""
    arr = uid_memmap(Path(path))
    if out_of_order(arr) is None:
        return {"path": str(Path(path).resolve()), "kind": "list", "bucket": k, "rows": len(arr)}
    full = np.unique(np.asarray(arr))
    target = Path(work) / f"list-{k:04d}.npy"
    _save(target, full)
    return {"path": str(target), "kind": "list", "bucket": k, "rows": len(full)}


def _slice(run: dict, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hi, lo, bucket) of a run whose high half lies in [lo, hi)."""
    if run["kind"] == "run":
        arr = np.load(run["path"], mmap_mode="r", allow_pickle=False)
        key, fields = arr["hi"], ("hi", "lo")
    else:
        arr = uid_memmap(Path(run["path"]))
        key, fields = arr["f0"], ("f0", "f1")
    a, e = bisect_left(key, lo), (len(arr) if hi >= 1 << 64 else bisect_left(key, hi))
    part = np.asarray(arr[a:e])
    b = part["b"] if run["kind"] == "run" else np.full(len(part), run["bucket"], np.uint16)
    return part[fields[0]].astype(_U8), part[fields[1]].astype(_U8), b.astype(np.uint16)


def lookup_range(r: int, ranges: int, runs: list[dict], names: list[str], folder: str) -> dict:
    """The lookup's range r: every run's slice, sorted, checked, unique."""
    lo, hi = uid_range_bounds(ranges)[r : r + 2]
    pieces = [_slice(run, lo, hi) for run in runs]
    cat = [np.concatenate([p[i] for p in pieces]) if pieces else np.zeros(0, t) for i, t in enumerate((_U8, _U8, np.uint16))]
    h, l, b = _sorted_unique(names, *cat)
    for name, arr in (("hi", h), ("lo", l), ("bucket", b)):
        _save(Path(folder) / f"range-{r:05d}-{name}.npy", arr)
    return {"uids": len(h), "per_bucket": np.bincount(b, minlength=len(names)).tolist()}


def plan_ranges(total: int) -> int:
    return max(1, math.ceil(total / RANGE_UIDS))


def write_index(folder: Path, ranges: int) -> None:
    write_json_atomic(folder / "ranges.json", {"lower_bounds": uid_range_bounds(ranges)[:-1]})


def content_sha256(folder: Path, names: tuple[str, ...]) -> str:
    """sha256 of the bucket names, then every range's hi, then lo, then bucket arrays: the bytes of
    the one sorted lookup, streamed from the files (8 MiB at a time, whatever the lookup's size)."""
    ranges = len(read_json(folder / "ranges.json")["lower_bounds"])
    h = hashlib.sha256(json.dumps(list(names)).encode())
    for name in ("hi", "lo", "bucket"):
        for r in range(ranges):
            with open(folder / f"range-{r:05d}-{name}.npy", "rb") as fh:
                version = np.lib.format.read_magic(fh)  # then the header, then the array's bytes
                (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(fh)
                while block := fh.read(1 << 23):
                    h.update(block)
    return h.hexdigest()


class _Range:
    """One range: uid halves -> bucket index (or -1), by binary search in its sorted arrays."""

    def __init__(self, hi: np.ndarray, lo: np.ndarray, bucket: np.ndarray):
        self.hi, self.lo, self.bucket = hi, lo, bucket
        self.n = len(hi)

    def find(self, h: int, l: int) -> int:
        hi = self.hi
        i = int(hi.searchsorted(np.uint64(h)))
        while i < self.n and hi[i] == h:
            if self.lo[i] == l:
                return int(self.bucket[i])
            i += 1
        return -1

    def find_many(self, qh: np.ndarray, ql: np.ndarray) -> np.ndarray:
        out = np.full(len(qh), -1, np.int64)
        if not self.n or not len(qh):
            return out
        left = self.hi.searchsorted(qh, "left")
        right = self.hi.searchsorted(qh, "right")
        one = np.flatnonzero(right - left == 1)
        hit = one[np.asarray(self.lo[left[one]]) == ql[one]]
        out[hit] = np.asarray(self.bucket[left[hit]])
        for i in np.flatnonzero(right - left > 1):  # equal high halves: rare
            out[i] = self.find(int(qh[i]), int(ql[i]))
        return out


class Lookup:
    """The lookup's ranges, memory-mapped; a query goes to the range its high half falls in."""

    def __init__(self, lows: list[int], parts: list[_Range]):
        self.lows, self.parts = lows, parts

    @classmethod
    def open(cls, folder: Path) -> "Lookup":
        folder = Path(folder)
        lows = read_json(folder / "ranges.json")["lower_bounds"]
        parts = [_Range(*(np.load(folder / f"range-{r:05d}-{n}.npy", mmap_mode="r") for n in ("hi", "lo", "bucket")))
                 for r in range(len(lows))]
        return cls(lows, parts)

    def find(self, h: int, l: int) -> int:
        return self.parts[bisect_right(self.lows, h) - 1].find(h, l)

    def find_many(self, qh: np.ndarray, ql: np.ndarray) -> np.ndarray:
        out = np.full(len(qh), -1, np.int64)
        which = np.searchsorted(np.array(self.lows, dtype=_U8), qh, "right") - 1
        for r in np.unique(which):
            mask = which == r
            out[mask] = self.parts[int(r)].find_many(qh[mask], ql[mask])
        return out


def build_lookup(selection, state: Path, stage) -> dict[str, int]:
    """Build the lookup under state/lookup with the two stages (`stage(name, tasks)` runs them and
    returns their stats: the job's, so a killed build resumes); the uids listed per bucket."""
    from ticdata.executor import Task

    names = list(selection.names)
    work, folder = state / "lookup-runs", state / "lookup"
    work.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    tasks = [Task(f"select-{i:06d}", manifest_run, (p, i, str(work), names, selection.doc, selection.where, selection.split), p,
                  outputs=(work / f"run-{i:06d}.npy",)) for i, p in enumerate(selection.manifest_files)]
    tasks += [Task(f"select-list-{k:04d}", list_run, (p, k, str(work)), p) for k, p in enumerate(selection.uid_files)]
    made = stage("select", tasks)
    runs = [made[t.key] for t in tasks]
    ranges = plan_ranges(sum(r["rows"] for r in runs))
    range_tasks = [Task(f"lookup-{r:05d}", lookup_range, (r, ranges, runs, names, str(folder)), f"uid range {r}",
                        outputs=tuple(folder / f"range-{r:05d}-{n}.npy" for n in ("hi", "lo", "bucket"))) for r in range(ranges)]
    got = stage("lookup", range_tasks)
    write_index(folder, ranges)
    per_bucket = np.sum([got[t.key]["per_bucket"] for t in range_tasks], axis=0)
    return {n: int(c) for n, c in zip(names, per_bucket)}
