"""Which samples of a pool go to which bucket, for `tic reshard`: a sorted uid -> bucket lookup
built from a curated folder or from DataComp uid files, memory-mapped by every read task.

The lookup is two numpy arrays of uid halves (u8) and a bucket index (u2), sorted: 18 bytes per
selected uid, as DataComp's resharder's `u8,u8` array plus the bucket; a uid is found by binary
search, so no Python string is made per uid.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ticdata.benchmarks import benchmark_from_manifest, bucket_names, check_bucket_name
from ticdata.errors import UserError
from ticdata.layout import CuratedFolder
from ticdata.manifest import checked_manifest_files, load_manifest_json, scan_manifest
from ticdata.storage import atomic_file
from ticdata.uidlists import read_uid_array, parse_uid_specs

_U8 = np.dtype("<u8")


@dataclass
class Selection:
    """Sorted uid -> bucket lookup: uid halves `hi`, `lo` (u8) and the bucket's index (u2)."""

    names: tuple[str, ...]
    hi: np.ndarray
    lo: np.ndarray
    bucket: np.ndarray
    source: dict
    listed: dict[str, int] = field(default_factory=dict)

    def sha256(self) -> str:
        h = hashlib.sha256(json.dumps(list(self.names)).encode())
        for a in (self.hi, self.lo, self.bucket):
            h.update(np.ascontiguousarray(a).data)
        return h.hexdigest()


def _check_bucket_names(names: list[str], where: str) -> None:
    for n in names:
        check_bucket_name(n, where)
    if len(set(names)) != len(names):
        raise UserError(f"{where}: bucket names repeat ({', '.join(names)})")


def _build_selection(names: list[str], parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], source: dict) -> Selection:
    if parts:
        hi = np.concatenate([p[0] for p in parts]).astype(_U8, copy=False)
        lo = np.concatenate([p[1] for p in parts]).astype(_U8, copy=False)
        bucket = np.concatenate([p[2] for p in parts]).astype(np.uint16, copy=False)
    else:
        hi = lo = np.zeros(0, _U8)
        bucket = np.zeros(0, np.uint16)
    order = np.lexsort((bucket, lo, hi))
    hi, lo, bucket = hi[order], lo[order], bucket[order]
    del order
    same = (hi[1:] == hi[:-1]) & (lo[1:] == lo[:-1])
    clash = np.flatnonzero(same & (bucket[1:] != bucket[:-1]))
    if len(clash):
        i = int(clash[0])
        uid = f"{int(hi[i]):016x}{int(lo[i]):016x}"
        raise UserError(f"uid {uid} is in buckets {names[bucket[i]]} and {names[bucket[i + 1]]}; a uid belongs to one bucket")
    if same.any():
        keep = np.concatenate([[True], ~same])
        hi, lo, bucket = hi[keep], lo[keep], bucket[keep]
    counts = np.bincount(bucket, minlength=len(names))
    return Selection(tuple(names), hi, lo, bucket, source, {n: int(c) for n, c in zip(names, counts)})


def _uid_halves(df: pl.DataFrame, path: Path) -> tuple[np.ndarray, np.ndarray]:
    bad = df.filter(~pl.col("uid").str.contains(r"^[0-9a-f]{32}$") | pl.col("uid").is_null())
    if bad.height:
        raise UserError(f"{path}: uid {bad['uid'][0]!r} is not 32 lowercase hex digits; fix the manifest")
    halves = df.select(
        hi=pl.col("uid").str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64),
        lo=pl.col("uid").str.slice(16, 16).str.to_integer(base=16, dtype=pl.UInt64),
    )
    return halves["hi"].to_numpy(), halves["lo"].to_numpy()


def selection_from_manifest(folder: Path, split: str | None = "train") -> Selection:
    """Each bucket of manifest.json gets the manifest rows its benchmark puts in it (years, months,
    or the `bucket` column of a folder made by `tic uids import`)."""
    cf = CuratedFolder(Path(folder))
    doc = load_manifest_json(cf.root)
    names = bucket_names(doc, cf.manifest_json)
    bench = benchmark_from_manifest(doc, cf.manifest_json)
    schema = scan_manifest(cf.root).collect_schema()  # also checks the folder has Parquet files
    if split is not None and "split" not in schema:
        raise UserError(f"{cf.root}: the manifest has no 'split' column; select all rows (split=None, --split all)")
    if bench.granularity == "month" and "month" not in schema:
        raise UserError(f"{cf.root}: monthly buckets but the manifest has no 'month' column; recurate the folder")
    index = pl.col("_name").replace_strict(names, list(range(len(names))), default=None, return_dtype=pl.UInt16)
    parts = []
    for path in checked_manifest_files(cf.root):
        year = int(path.parent.name.split("=", 1)[1])
        cols = ["uid"] + [c for c in ("month", "split", "bucket") if c in schema]
        df = pl.read_parquet(path, columns=cols).with_columns(year=pl.lit(year, pl.Int32))
        if split is not None:
            df = df.filter(pl.col("split") == split)
        df = df.with_columns(_name=bench.bucket_expr()).with_columns(_b=index).filter(pl.col("_b").is_not_null())
        if df.height:
            hi, lo = _uid_halves(df, path)
            parts.append((hi, lo, df["_b"].to_numpy()))
    source = {"kind": "manifest", "manifest": str(cf.root.resolve()), "split": split}
    return _build_selection(names, parts, source)


def load_uid_array(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The two u8 halves of a DataComp uid file (checks as `uidlists.read_uid_file`, without
    turning hundreds of millions of uids into Python strings)."""
    arr = read_uid_array(path).reshape(-1)
    return np.ascontiguousarray(arr["f0"], dtype=_U8), np.ascontiguousarray(arr["f1"], dtype=_U8)


def selection_from_uid_files(specs: list[str]) -> Selection:
    pairs = parse_uid_specs(list(specs))
    if not pairs:
        raise UserError("no uid files given")
    names = [n for n, _ in pairs]
    _check_bucket_names(names, "uid files")
    parts = []
    for k, (_, path) in enumerate(pairs):
        hi, lo = load_uid_array(path)
        parts.append((hi, lo, np.full(len(hi), k, np.uint16)))
    source = {"kind": "uid_files", "files": {n: str(p.resolve()) for n, p in pairs}}
    return _build_selection(names, parts, source)


class Lookup:
    """uid halves -> bucket index (or -1), by binary search in the sorted arrays."""

    def __init__(self, hi: np.ndarray, lo: np.ndarray, bucket: np.ndarray):
        self.hi, self.lo, self.bucket = hi, lo, bucket
        self.n = len(hi)

    @classmethod
    def open(cls, folder: Path) -> "Lookup":
        return cls(*(np.load(folder / f"{n}.npy", mmap_mode="r") for n in ("hi", "lo", "bucket")))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, arr in (("hi", self.hi), ("lo", self.lo), ("bucket", self.bucket)):
            with atomic_file(folder / f"{name}.npy") as fh:
                np.save(fh, np.ascontiguousarray(arr), allow_pickle=False)

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
