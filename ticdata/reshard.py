"""`tic reshard`: a webdataset pool (e.g. DataComp's) -> webdataset shards per bucket.

The samples of each bucket are chosen by uid, either from a curated folder (the manifest rows of
the bucket's years, and months for monthly buckets, optionally of one split; a manifest made by
`tic uids import` names each row's bucket in its `bucket` column) or from DataComp-format uid
files (BUCKET=FILE.npy, or FILE.npy whose stem names the bucket).

Output, under OUT:

    shards/<bucket>/00000000.tar ...   key = uid; every member of the sample, renamed <uid>.<ext>,
                                       sorted by extension, bytes unchanged; headers normalised
    shards/<bucket>/sizes.json         {"00000000.tar": samples, ...} (what open_clip reads)
    reshard.json                       counts per bucket, the ledger, inputs, parameters

Shard k of a bucket holds the bucket's samples k*S .. (k+1)*S-1 in input order (input tars in the
order given, folders sorted, samples in tar order), S = samples_per_shard; only the last shard of
a bucket is smaller. A uid seen again later in the pool is a duplicate: the first copy is kept.
Every sample read is counted once: rows_in = selected + not_selected + duplicates + malformed.

Three stages on the executor, each task writing atomically under a deterministic name and leaving
a completion marker under OUT/.tic-reshard/, so a killed run resumes and gives the same bytes:

1. read: one task per group of `tars_per_task` input tars streams them one member at a time,
   looks each uid up, and appends the selected samples to one part file per bucket (plus the byte
   range of each sample) and the sorted uids it saw to `seen.npy`. Duplicates within the group
   are dropped here.
2. dedupe: one task per range of uid values gathers that range from every `seen.npy` and finds
   uids seen by more than one read task; copies after the first are duplicates (and, if
   selected, are left out of the output).
3. write: one task per output shard copies its samples' byte ranges from the part files into
   shards/<bucket>/NNNNNNNN.tar (a shard's samples are known from the read counts and the
   dedupe results alone, so the layout is the same whatever the grouping, executor or workers).

On a Ray cluster OUT must be on storage every node sees (the tasks share OUT/.tic-reshard/); it
is deleted once reshard.json, the mark of a finished reshard, is written.

Memory: the driver holds the uid -> bucket lookup, a sorted numpy array of the selected uids'
two 64-bit halves plus a 16-bit bucket index (18 bytes per selected uid, as DataComp's resharder's
`u8,u8` array plus the bucket), saved to OUT/.tic-reshard/lookup/ and memory-mapped by every task
(one copy in the page cache per machine, shared). A read task holds one sample's members at a
time and the set of uids it has seen (about 100 bytes per sample of its `tars_per_task` tars); a
dedupe task holds one range of uids (at most about DEDUPE_UIDS, 24-40 bytes each); a write task
streams bytes through an 8 MiB buffer. Nothing grows with the pool's size but the lookup.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import math
import re
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ticdata import __version__
from ticdata.errors import UserError
from ticdata.executor import Task, run_stage
from ticdata.ledger import LedgerError
from ticdata.manifest import MANIFEST_DIR, load_manifest_json, scan_manifest
from ticdata.storage import atomic_dir, dumps_json, read_json, remove_tmp_leftovers, write_json_atomic
from ticdata.tars import TarError, TarWriter, atomic_file, check_tar, iter_members, trailer
from ticdata.uidlists import read_uid_array
from ticdata.uidsplits import parse_uid_specs

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
STATE_DIR = ".tic-reshard"
SHARDS_DIR = "shards"
RESHARD_JSON = "reshard.json"
SIZES_JSON = "sizes.json"
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
MALFORMED = ("duplicate_member", "no_json", "bad_json", "no_uid", "bad_uid")
DEDUPE_UIDS = 8_000_000  # uids per dedupe task (about 40 bytes each while sorting)
EXAMPLES = 5  # malformed samples named per reason in reshard.json
COPY_BUFFER = 8 << 20

_UID_RE = re.compile(r"[0-9a-f]{32}")
_KEY_RE = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext: key, extension
_META_RE = re.compile(r"__[^/]*__($|/)")  # webdataset skips these members
_BUCKET_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=+-]{0,99}")
_U8 = np.dtype("<u8")


# ------------------------------------------------------------------------------------ inputs


def braceexpand(pattern: str) -> list[str]:
    """Expand `{a,b}` alternatives and `{00..99}` ranges (zero-padded like the `braceexpand`
    package webdataset uses: to the longer bound when a bound starts with 0), left to right."""
    depth, start = 0, -1
    for i, ch in enumerate(pattern):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                inner, rest = pattern[start + 1 : i], pattern[i + 1 :]
                alts = _brace_alternatives(inner)
                if alts is None:  # not a pattern: keep the braces literally
                    return [pattern[: i + 1] + r for r in braceexpand(rest)]
                tails = braceexpand(rest)
                return [pattern[:start] + a + t for alt in alts for a in braceexpand(alt) for t in tails]
    return [pattern]


def _brace_alternatives(inner: str) -> list[str] | None:
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    if len(parts) > 1:
        return parts
    m = re.fullmatch(r"(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?", inner)
    if m:
        left, right, incr = m.group(1), m.group(2), abs(int(m.group(3) or 1)) or 1
        a, b = int(left), int(right)
        pad = any(s.startswith(("0", "-0")) for s in (left, right) if s not in ("0", "-0"))
        width = max(len(left), len(right)) if pad else 0
        step = incr if b >= a else -incr
        return [f"{n:0{width}d}" for n in range(a, b + (1 if step > 0 else -1), step)]
    m = re.fullmatch(r"([A-Za-z])\.\.([A-Za-z])", inner)
    if m:
        a, b = ord(m.group(1)), ord(m.group(2))
        step = 1 if b >= a else -1
        return [chr(c) for c in range(a, b + step, step)]
    return None


def _is_shard_file(p: Path, root: Path) -> bool:
    rel = p.relative_to(root).parts
    return p.name.endswith(TAR_SUFFIXES) and not any(part.startswith((".", "_")) for part in rel) and p.is_file()


_HINT = "pass tar shards, folders of them, or a pattern like pool/{00000000..00000099}.tar"


def _expand_path(path: str, origin: str | None) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        files = sorted(q for q in p.rglob("*") if _is_shard_file(q, p))
        if not files:
            raise UserError(f"{path}: no .tar files in this folder (searched recursively; names starting with . or _ are skipped)")
        return files
    if p.exists():
        return [p]
    if origin:
        raise UserError(f"{path}: no such file (from the pattern {origin}); check the pattern's range and folder")
    raise UserError(f"{path}: no such file or folder; {_HINT}")


def expand_shards(specs: list[str]) -> list[Path]:
    """Input tars in input order: files as given, folders recursively sorted, brace patterns
    (`{0000..0099}`, `{a,b}`) and globs expanded in order; a path given twice is read once."""
    out: list[Path] = []
    seen: set[Path] = set()
    repeated = 0
    if not specs:
        raise UserError(f"no input shards; {_HINT}")
    for spec in specs:
        spec = str(spec)
        if Path(spec).exists():
            paths = _expand_path(spec, None)
        elif "{" in spec and (expanded := braceexpand(spec)) != [spec]:
            paths = [q for e in expanded for q in _expand_path(e, spec)]
        elif any(c in spec for c in "*?["):
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                raise UserError(f"{spec}: the pattern matches no file; {_HINT}")
            paths = [q for m in matches for q in _expand_path(m, spec)]
        else:
            paths = _expand_path(spec, None)
        for q in paths:
            r = q.resolve()
            if r in seen:
                repeated += 1
                continue
            seen.add(r)
            out.append(r)
    if repeated:
        log.warning("%d input tar(s) given more than once are read once", repeated)
    return out


def check_inputs(paths: list[Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of each input; a file that is not a tar is a UserError."""
    rows = []
    for p in paths:
        why = check_tar(p)
        if why:
            raise UserError(f"{p}: {why}; pass only webdataset tar shards (inside folders, DataComp's .parquet and _stats.json side files are skipped)")
        st = p.stat()
        rows.append((str(p), st.st_size, st.st_mtime_ns))
    return rows


# ------------------------------------------------------------------------------ selection


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
        if not _BUCKET_NAME_RE.fullmatch(n):
            raise UserError(f"{where}: bucket name {n!r} cannot name a folder; use letters, digits, '.', '_', '-' (BUCKET=FILE.npy renames)")
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
    """Each bucket of manifest.json gets the manifest rows of its years (and months), or of its
    name in the `bucket` column when the manifest has one (`tic uids import`)."""
    folder = Path(folder)
    doc = load_manifest_json(folder)
    buckets = doc.get("buckets") or {}
    names = list(buckets)
    if not names:
        raise UserError(f"{folder}/manifest.json: lists no buckets; curate with a benchmark that has steps")
    _check_bucket_names(names, f"{folder}/manifest.json")
    schema = scan_manifest(folder).collect_schema()  # also checks the folder has Parquet files
    by_column = "bucket" in schema
    if split is not None and "split" not in schema:
        raise UserError(f"{folder}: the manifest has no 'split' column; select all rows (split=None, --split all)")
    if not by_column and any("months" in b for b in buckets.values()) and "month" not in schema:
        raise UserError(f"{folder}: monthly buckets but the manifest has no 'month' column; recurate the folder")
    parts = []
    for path in sorted((folder / MANIFEST_DIR).glob("year=*/*.parquet")):
        year = int(path.parent.name.split("=", 1)[1])
        cols = ["uid"] + [c for c in ("month", "split", "bucket") if c in schema]
        df = pl.read_parquet(path, columns=cols)
        if split is not None:
            df = df.filter(pl.col("split") == split)
        if by_column:
            idx = pl.col("bucket").replace_strict(names, list(range(len(names))), default=None, return_dtype=pl.UInt16)
            df = df.with_columns(_b=idx)
        else:
            conds = []
            for k, b in enumerate(buckets.values()):
                if year not in b.get("years", []):
                    continue
                cond = pl.col("month").is_in(b["months"]) if "months" in b else pl.lit(True)
                conds.append((k, cond))
            if not conds:
                continue
            if len(conds) > 1:
                hits = df.select(sum(c.cast(pl.UInt16) for _, c in conds).max()).item()
                if hits and hits > 1:
                    raise UserError(f"{folder}/manifest.json: buckets overlap in year {year}; a row belongs to one bucket")
            expr = pl.when(conds[0][1]).then(pl.lit(conds[0][0], pl.UInt16))
            for k, c in conds[1:]:
                expr = expr.when(c).then(pl.lit(k, pl.UInt16))
            df = df.with_columns(_b=expr.otherwise(None))
        df = df.filter(pl.col("_b").is_not_null())
        if df.height:
            hi, lo = _uid_halves(df, path)
            parts.append((hi, lo, df["_b"].to_numpy()))
    source = {"kind": "manifest", "manifest": str(folder.resolve()), "split": split}
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


# ----------------------------------------------------------------------------------- tasks


def read_key(i: int) -> str:
    return f"read-{i:06d}"


def dedupe_key(i: int) -> str:
    return f"dedupe-{i:05d}"


def write_key(bucket: int, shard: int) -> str:
    return f"write-{bucket:04d}-{shard:08d}"


@dataclass(frozen=True)
class ReadSpec:
    index: int
    tars: tuple[str, ...]
    state: str


@dataclass(frozen=True)
class DedupeSpec:
    index: int
    lower: int | None  # range of uid high halves: lower <= hi < upper (None: unbounded)
    upper: int | None
    reads: int  # number of read tasks
    state: str


@dataclass(frozen=True)
class WriteSpec:
    bucket: int
    name: str
    shard: int
    segments: tuple[tuple[int, int, int], ...]  # (read task, first sample, end sample) in its part file
    samples: int
    state: str
    out: str


def _work(state: str | Path) -> Path:
    return Path(state) / "work"


def _part(state: str | Path, read: int, bucket: int) -> Path:
    return _work(state) / read_key(read) / f"b{bucket:04d}.part"


def _index(state: str | Path, read: int, bucket: int) -> Path:
    return _work(state) / read_key(read) / f"b{bucket:04d}.idx.npy"


def shard_path(out: str | Path, name: str, shard: int) -> Path:
    return Path(out) / SHARDS_DIR / name / f"{shard:08d}.tar"


def iter_samples(path: str, skipped: list[int]):
    """(key, [(ext, bytes), ...]) per sample of one tar: consecutive members sharing a key, as
    webdataset groups them; members without an extension and `__meta__` members are skipped."""
    key, members = None, []
    for name, data in iter_members(path, skipped):
        m = _KEY_RE.match(name)
        if m is None or _META_RE.match(name) or ("/" not in name and name.startswith("__") and name.endswith("__")):
            skipped[0] += 1
            continue
        k, ext = m.group(1), m.group(2)
        if k != key:
            if members:
                yield key, members
            key, members = k, []
        members.append((ext, data))
    if members:
        yield key, members


def sample_uid(members: list[tuple[str, bytes]]) -> tuple[str | None, str | None]:
    """(uid, None) for a well-formed sample, else (None, reason)."""
    exts = [e.lower() for e, _ in members]
    if len(set(exts)) != len(exts):
        return None, "duplicate_member"  # webdataset refuses such a sample
    js = [d for e, d in members if e.lower() == "json"]
    if not js:
        return None, "no_json"
    try:
        obj = json.loads(js[0])
    except (ValueError, RecursionError):
        return None, "bad_json"
    if not isinstance(obj, dict):
        return None, "bad_json"
    uid = obj.get("uid")
    if uid is None:
        return None, "no_uid"
    if not isinstance(uid, str) or not _UID_RE.fullmatch(uid):
        return None, "bad_uid"
    return uid, None


def read_tars(spec: ReadSpec) -> dict:
    """Stream a group of input tars; append selected samples to one part file per bucket."""
    t0 = time.perf_counter()
    lookup = Lookup.open(Path(spec.state) / "lookup")
    counts = {"rows_in": 0, "selected": 0, "not_selected": 0, "duplicates": 0}
    malformed = dict.fromkeys(MALFORMED, 0)
    examples: dict[str, list[str]] = {}
    skipped = [0]
    seen: set[str] = set()
    seen_hi: list[int] = []
    seen_lo: list[int] = []
    outs: dict[int, tuple[TarWriter, list[list[int]]]] = {}
    dup_selected: dict[str, int] = {}  # later copies of selected uids, per bucket
    final = _work(spec.state) / read_key(spec.index)
    with atomic_dir(final) as tmp, ExitStack() as files:
        for path in spec.tars:
            try:
                for key, members in iter_samples(path, skipped):
                    counts["rows_in"] += 1
                    uid, reason = sample_uid(members)
                    if uid is None:
                        malformed[reason] += 1
                        ex = examples.setdefault(reason, [])
                        if len(ex) < EXAMPLES:
                            ex.append(f"{path}: {key}")
                        continue
                    h, l = int(uid[:16], 16), int(uid[16:], 16)
                    if uid in seen:
                        counts["duplicates"] += 1
                        b = lookup.find(h, l)
                        if b >= 0:
                            dup_selected[str(b)] = dup_selected.get(str(b), 0) + 1
                        continue
                    seen.add(uid)
                    seen_hi.append(h)
                    seen_lo.append(l)
                    b = lookup.find(h, l)
                    if b < 0:
                        counts["not_selected"] += 1
                        continue
                    counts["selected"] += 1
                    if b not in outs:
                        fh = files.enter_context(open(tmp / f"b{b:04d}.part", "wb", buffering=1 << 20))
                        outs[b] = (TarWriter(fh), [[], [], [], []])
                    writer, idx = outs[b]
                    start = writer.offset
                    for ext, data in sorted(members, key=lambda m: m[0]):
                        writer.add(f"{uid}.{ext}", data)
                    for col, v in zip(idx, (h, l, start, writer.offset)):
                        col.append(v)
            except TarError as e:
                raise UserError(f"{path}: {e}; re-download this shard or leave it out of the inputs") from None
        files.close()
        for b, (_, idx) in sorted(outs.items()):
            np.save(tmp / f"b{b:04d}.idx.npy", np.array(idx, dtype=_U8).reshape(4, -1), allow_pickle=False)
        hi, lo = np.array(seen_hi, _U8), np.array(seen_lo, _U8)
        order = np.lexsort((lo, hi))
        np.save(tmp / "seen.npy", np.stack([hi[order], lo[order]]) if len(hi) else np.zeros((2, 0), _U8), allow_pickle=False)
    return counts | {
        "malformed": malformed,
        "examples": examples,
        "members_skipped": skipped[0],
        "seen": len(seen),
        "written": {str(b): len(idx[0]) for b, (_, idx) in sorted(outs.items())},
        "duplicates_selected": dup_selected,
        "_seconds": time.perf_counter() - t0,
    }


def dedupe_range(spec: DedupeSpec) -> dict:
    """uids of one range seen by several read tasks: the copies after the first read task's."""
    lookup = Lookup.open(Path(spec.state) / "lookup")
    his, los, tasks = [], [], []
    for t in range(spec.reads):
        seen = np.load(_work(spec.state) / read_key(t) / "seen.npy", mmap_mode="r")
        h = seen[0]
        a = 0 if spec.lower is None else int(h.searchsorted(np.uint64(spec.lower), "left"))
        b = len(h) if spec.upper is None else int(h.searchsorted(np.uint64(spec.upper), "left"))
        if b > a:
            his.append(np.array(seen[0, a:b]))
            los.append(np.array(seen[1, a:b]))
            tasks.append(np.full(b - a, t, _U8))
    drops = np.zeros((4, 0), _U8)
    n_dup = 0
    if his:
        hi, lo, task = np.concatenate(his), np.concatenate(los), np.concatenate(tasks)
        del his, los, tasks
        order = np.lexsort((task, lo, hi))
        hi, lo, task = hi[order], lo[order], task[order]
        del order
        later = np.flatnonzero((hi[1:] == hi[:-1]) & (lo[1:] == lo[:-1])) + 1
        n_dup = len(later)
        if n_dup:
            dh, dl, dt = hi[later], lo[later], task[later]
            bucket = lookup.find_many(dh, dl)
            sel = bucket >= 0
            drops = np.stack([dt[sel], dh[sel], dl[sel], bucket[sel].astype(_U8)])
    with atomic_file(_work(spec.state) / f"{dedupe_key(spec.index)}.npy") as fh:
        np.save(fh, drops, allow_pickle=False)
    return {"duplicates": n_dup, "selected_duplicates": int(drops.shape[1])}


def write_shard(spec: WriteSpec) -> dict:
    """Copy the byte ranges of one output shard's samples from the part files, add the trailer."""
    buf = bytearray(COPY_BUFFER)
    view = memoryview(buf)
    written = 0
    with atomic_file(shard_path(spec.out, spec.name, spec.shard)) as out:
        for read, a, b in spec.segments:
            idx = np.load(_index(spec.state, read, spec.bucket), mmap_mode="r")
            start, end = int(idx[2, a]), int(idx[3, b - 1])
            with open(_part(spec.state, read, spec.bucket), "rb", buffering=0) as src:
                src.seek(start)
                left = end - start
                while left:
                    n = src.readinto(view[: min(left, COPY_BUFFER)])
                    if not n:
                        raise RuntimeError(f"{_part(spec.state, read, spec.bucket)} ends before byte {end}; rerun with overwrite")
                    out.write(view[:n])
                    left -= n
            written += end - start
        out.write(trailer(written))
    return {"samples": spec.samples, "bytes": written + len(trailer(written))}


# ------------------------------------------------------------------------------------ plan


@dataclass
class ReshardPlan:
    inputs: list[tuple[str, int, int]]  # path, bytes, mtime_ns
    selection: Selection
    out: Path
    samples_per_shard: int
    split: str | None
    tars_per_task: int

    def fingerprint(self) -> dict:
        """What determines the output bytes (not how the work is split into tasks)."""
        return json.loads(dumps_json({
            "tool_version": __version__,
            "inputs": [list(x) for x in self.inputs],
            "selection": {"buckets": list(self.selection.names), "sha256": self.selection.sha256()},
            "samples_per_shard": self.samples_per_shard,
        }))

    def state_plan(self) -> dict:
        return self.fingerprint() | {"tars_per_task": self.tars_per_task}


def _existing_output(out: Path, plan: ReshardPlan) -> str:
    """'done' (a finished reshard of this plan), 'resume' (an unfinished one), 'free', or 'other'."""
    doc_path, state = out / RESHARD_JSON, out / STATE_DIR
    if doc_path.exists():
        try:
            if read_json(doc_path).get("fingerprint") == plan.fingerprint():
                return "done"
        except (ValueError, OSError):
            pass
        return "other"
    plan_path = state / "plan.json"
    if plan_path.exists():
        try:
            if read_json(plan_path) == plan.state_plan():
                return "resume"
        except (ValueError, OSError):
            pass
        return "other"
    shards = out / SHARDS_DIR
    if state.exists() or (shards.exists() and any(shards.iterdir())):
        return "other"
    return "free"


def plan_reshard(
    shards: list[str],
    out: Path,
    manifest: Path | None = None,
    uid_files: list[str] | None = None,
    samples_per_shard: int = 10_000,
    split: str | None = "train",
    tars_per_task: int = 1,
    overwrite: bool = False,
) -> ReshardPlan:
    """Check every input and build the uid lookup; writes nothing (call before starting Ray)."""
    if (manifest is None) == (not uid_files):
        raise UserError("choose the samples with a curated folder (--manifest DIR) or with uid files (--uids FILE.npy...), one of the two")
    if samples_per_shard < 1 or tars_per_task < 1:
        raise UserError("--samples-per-shard and --tars-per-task must be positive")
    out = Path(out).resolve()
    paths = expand_shards(list(shards))
    inside = [p for p in paths if p.is_relative_to(out)]
    if inside:  # this command's own output, e.g. OUT inside a pool folder
        log.warning("%d input tar(s) under the output folder %s are not read", len(inside), out)
        paths = [p for p in paths if not p.is_relative_to(out)]
        if not paths:
            raise UserError(f"{out}: every input tar is inside the output folder; pass the pool's tars")
    tars = check_inputs(paths)
    if manifest is not None:
        selection = selection_from_manifest(Path(manifest), split)
    else:
        selection = selection_from_uid_files(list(uid_files or []))
        split = None
    if len(selection.names) > np.iinfo(np.uint16).max:
        raise UserError(f"{len(selection.names)} buckets; at most 65,535")
    plan = ReshardPlan(tars, selection, out, samples_per_shard, split, tars_per_task)
    if not overwrite and _existing_output(out, plan) == "other":
        raise UserError(f"{out}: holds shards or a reshard of other inputs or parameters; pass --overwrite to replace them, or choose another --out")
    return plan


def _prepare_out(plan: ReshardPlan, overwrite: bool) -> dict | None:
    out = plan.out
    status = _existing_output(out, plan)
    if status == "done":
        shutil.rmtree(out / STATE_DIR, ignore_errors=True)  # a run killed while cleaning up
        return read_json(out / RESHARD_JSON)
    if status == "other":
        if not overwrite:
            raise UserError(f"{out}: holds shards or a reshard of other inputs or parameters; pass --overwrite to replace them, or choose another --out")
        shutil.rmtree(out / SHARDS_DIR, ignore_errors=True)
        shutil.rmtree(out / STATE_DIR, ignore_errors=True)
        (out / RESHARD_JSON).unlink(missing_ok=True)
    state = out / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    remove_tmp_leftovers(state)
    remove_tmp_leftovers(out / SHARDS_DIR)
    if status != "resume":
        write_json_atomic(state / "plan.json", plan.state_plan())
    return None


def _forget_lost_outputs(completions: Path, keys: list[str], output_of) -> None:
    """Markers whose outputs are gone (deleted by hand) are dropped, so those tasks run again."""
    for key in keys:
        marker = completions / f"{key}.json"
        if marker.exists() and not output_of(key).exists():
            marker.unlink()


def _dedupe_ranges(state: Path, reads: int, total: int) -> list[tuple[int | None, int | None]]:
    n = max(1, math.ceil(total / DEDUPE_UIDS))
    if n == 1:
        return [(None, None)]
    step = max(1, total // (n * 256))
    samples = [np.array(np.load(_work(state) / read_key(t) / "seen.npy", mmap_mode="r")[0, ::step]) for t in range(reads)]
    pooled = np.sort(np.concatenate(samples))
    cuts = sorted({int(pooled[(len(pooled) * r) // n]) for r in range(1, n)})
    bounds: list[int | None] = [None, *cuts, None]
    return list(zip(bounds[:-1], bounds[1:]))


def _layout(plan: ReshardPlan, state: Path, reads: list[dict], drops: np.ndarray) -> list[WriteSpec]:
    """Output shards of every bucket: the bucket's samples in input order, S per shard."""
    S = plan.samples_per_shard
    by_part: dict[tuple[int, int], np.ndarray] = {}
    for t in np.unique(drops[0]) if drops.shape[1] else []:
        mine = drops[:, drops[0] == t]
        for b in np.unique(mine[3]):
            sel = mine[:, mine[3] == b]
            idx = np.load(_index(state, int(t), int(b)), mmap_mode="r")
            hit = np.isin(idx[0], sel[1])  # candidate positions by high half, then exact
            pairs = set(zip(sel[1].tolist(), sel[2].tolist()))
            pos = [i for i in np.flatnonzero(hit).tolist() if (int(idx[0, i]), int(idx[1, i])) in pairs]
            by_part[(int(t), int(b))] = np.array(sorted(pos), np.int64)
    specs = []
    for b, name in enumerate(plan.selection.names):
        shard, count, segs = 0, 0, []
        for t, r in enumerate(reads):
            n = r["written"].get(str(b), 0)
            if not n:
                continue
            cuts = by_part.get((t, b), np.zeros(0, np.int64))
            edges = [-1, *cuts.tolist(), n]
            for lo_edge, hi_edge in zip(edges[:-1], edges[1:]):
                a, e = lo_edge + 1, hi_edge
                while a < e:
                    take = min(e - a, S - count)
                    segs.append((t, a, a + take))
                    count += take
                    a += take
                    if count == S:
                        specs.append(WriteSpec(b, name, shard, tuple(segs), count, str(state), str(plan.out)))
                        shard, count, segs = shard + 1, 0, []
        if count:
            specs.append(WriteSpec(b, name, shard, tuple(segs), count, str(state), str(plan.out)))
    return specs


def reshard(
    shards: list[str],
    out: Path,
    executor,
    manifest: Path | None = None,
    uid_files: list[str] | None = None,
    samples_per_shard: int = 10_000,
    split: str | None = "train",
    tars_per_task: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    plan: ReshardPlan | None = None,
) -> dict:
    """Reshard the pool `shards` into OUT/shards/<bucket>/; returns the reshard.json document.

    Pass `plan` (from `plan_reshard` with the same arguments) when the inputs were checked
    already, e.g. before starting Ray. A finished reshard of the same inputs is left as it is."""
    started = time.monotonic()
    plan = plan or plan_reshard(shards, out, manifest, uid_files, samples_per_shard, split, tars_per_task, overwrite)
    done = _prepare_out(plan, overwrite)
    if done is not None:
        log.info("%s: already resharded from these inputs; nothing to do", plan.out)
        return done
    out, state = plan.out, plan.out / STATE_DIR
    completions = state / "completions"
    lookup_dir = state / "lookup"
    if not all((lookup_dir / f"{n}.npy").exists() for n in ("hi", "lo", "bucket")):
        Lookup(plan.selection.hi, plan.selection.lo, plan.selection.bucket).save(lookup_dir)

    groups = [plan.inputs[i : i + plan.tars_per_task] for i in range(0, len(plan.inputs), plan.tars_per_task)]
    read_tasks = []
    for i, g in enumerate(groups):
        describe = g[0][0] if len(g) == 1 else f"{g[0][0]} (+{len(g) - 1} more)"
        read_tasks.append(Task(read_key(i), read_tars, (ReadSpec(i, tuple(p for p, _, _ in g), str(state)),), describe))
    _forget_lost_outputs(completions, [t.key for t in read_tasks], lambda k: _work(state) / k)
    read_stats = run_stage(executor, "read", read_tasks, completions, progress)
    reads = [read_stats[t.key] for t in read_tasks]

    dedupe_stats: list[dict] = []
    drops = np.zeros((4, 0), _U8)
    if len(read_tasks) > 1:
        ranges = _dedupe_ranges(state, len(read_tasks), sum(r["seen"] for r in reads))
        dedupe_tasks = [
            Task(dedupe_key(i), dedupe_range, (DedupeSpec(i, lo, hi, len(read_tasks), str(state)),), f"uid range {i}")
            for i, (lo, hi) in enumerate(ranges)
        ]
        _forget_lost_outputs(completions, [t.key for t in dedupe_tasks], lambda k: _work(state) / f"{k}.npy")
        got = run_stage(executor, "dedupe", dedupe_tasks, completions, progress)
        dedupe_stats = [got[t.key] for t in dedupe_tasks]
        found = [np.load(_work(state) / f"{t.key}.npy") for t in dedupe_tasks]
        drops = np.concatenate(found, axis=1) if found else drops

    specs = _layout(plan, state, reads, drops)
    for name in plan.selection.names:
        (out / SHARDS_DIR / name).mkdir(parents=True, exist_ok=True)
    write_tasks = [
        Task(write_key(s.bucket, s.shard), write_shard, (s,), f"{SHARDS_DIR}/{s.name}/{s.shard:08d}.tar") for s in specs
    ]
    _forget_lost_outputs(completions, [t.key for t in write_tasks],
                         lambda k: shard_path(out, plan.selection.names[int(k.split("-")[1])], int(k.split("-")[2])))
    write_stats = run_stage(executor, "write", write_tasks, completions, progress)

    doc = _finish(plan, reads, dedupe_stats, drops, specs, [write_stats[t.key] for t in write_tasks])
    shutil.rmtree(state, ignore_errors=True)
    led = doc["ledger"]
    log.info(
        "resharded %s samples read into %s selected in %d shards over %d buckets (%s not selected, %s duplicates, %s malformed) in %.1fs",
        f"{led['rows_in']:,}", f"{led['selected']:,}", sum(b["shards"] for b in doc["buckets"].values()), len(doc["buckets"]),
        f"{led['not_selected']:,}", f"{led['duplicates']:,}", f"{sum(led['malformed'].values()):,}", time.monotonic() - started,
    )
    return doc


def _finish(plan: ReshardPlan, reads: list[dict], dedupes: list[dict], drops: np.ndarray, specs: list[WriteSpec], writes: list[dict]) -> dict:
    names = plan.selection.names
    cross_dup = sum(d["duplicates"] for d in dedupes)
    cross_sel = sum(d["selected_duplicates"] for d in dedupes)
    rows_in = sum(r["rows_in"] for r in reads)
    selected = sum(r["selected"] for r in reads) - cross_sel
    not_selected = sum(r["not_selected"] for r in reads) - (cross_dup - cross_sel)
    duplicates = sum(r["duplicates"] for r in reads) + cross_dup
    malformed = {k: sum(r["malformed"][k] for r in reads) for k in MALFORMED}
    if rows_in != selected + not_selected + duplicates + sum(malformed.values()):
        raise LedgerError(f"reshard ledger does not balance: rows_in {rows_in} != selected {selected} + not selected "
                          f"{not_selected} + duplicates {duplicates} + malformed {malformed}")
    if selected != sum(s.samples for s in specs):
        raise LedgerError(f"{selected} samples selected but {sum(s.samples for s in specs)} laid out in shards")
    buckets = {}
    for b, name in enumerate(names):
        mine = [(s, w) for s, w in zip(specs, writes) if s.bucket == b]
        sizes = {f"{s.shard:08d}.tar": s.samples for s, _ in mine}
        write_json_atomic(plan.out / SHARDS_DIR / name / SIZES_JSON, sizes)
        samples = sum(sizes.values())
        buckets[name] = {
            "listed": plan.selection.listed[name],
            "samples": samples,
            "missing": plan.selection.listed[name] - samples,
            "shards": len(mine),
            "bytes": sum(w["bytes"] for _, w in mine),
            "duplicates": sum(r["duplicates_selected"].get(str(b), 0) for r in reads) + (int((drops[3] == b).sum()) if drops.shape[1] else 0),
        }
    examples: dict[str, list[str]] = {}
    for r in reads:
        for reason, ex in r["examples"].items():
            examples.setdefault(reason, []).extend(ex)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "tic", "version": __version__, "command": "reshard"},
        "inputs": {"files": len(plan.inputs), "bytes": sum(s for _, s, _ in plan.inputs), "shards": [p for p, _, _ in plan.inputs]},
        "selection": plan.selection.source,
        "parameters": {"samples_per_shard": plan.samples_per_shard, "split": plan.split},
        "buckets": buckets,
        "ledger": {"rows_in": rows_in, "selected": selected, "not_selected": not_selected, "duplicates": duplicates, "malformed": malformed},
        "members_skipped": sum(r["members_skipped"] for r in reads),
        "malformed_examples": {k: v[:EXAMPLES] for k, v in sorted(examples.items())},
        "fingerprint": plan.fingerprint(),
    }
    write_json_atomic(plan.out / RESHARD_JSON, doc)
    return doc


def format_reshard_table(doc: dict) -> str:
    """The buckets and ledger of a reshard.json, as text for the terminal."""
    lines = [f"{'bucket':<12} {'listed':>12} {'samples':>12} {'missing':>10} {'shards':>7} {'GB':>8}"]
    for name, b in doc["buckets"].items():
        lines.append(f"{name:<12} {b['listed']:>12,} {b['samples']:>12,} {b['missing']:>10,} {b['shards']:>7,} {b['bytes'] / 1e9:>8.2f}")
    led = doc["ledger"]
    lines.append("")
    lines.append(f"ledger: read {led['rows_in']:,} = selected {led['selected']:,} + not selected {led['not_selected']:,}"
                 f" + duplicates {led['duplicates']:,} + malformed {sum(led['malformed'].values()):,}")
    for reason, n in led["malformed"].items():
        if n:
            lines.append(f"  malformed {reason:<18} {n:>12,}   e.g. {doc['malformed_examples'].get(reason, ['?'])[0]}")
    return "\n".join(lines)
