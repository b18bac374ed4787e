"""The three task kinds of `tic reshard`, as pure functions of their spec (the job runs them).

read_tars: stream a group of input tars one member at a time, look each uid up, append the
selected samples to one part file per bucket (with each sample's byte range) and write the sorted
uids the group saw. dedupe_range: uids of one range seen by several read tasks (copies after the
first are duplicates). write_shard: copy one output shard's byte ranges from the part files.
Everything is written atomically under names fixed by the spec, inside the job's state folder
(`work/`) or as the final shard, so a rerun reproduces it byte for byte.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ticdata.layout import SHARDS_DIR, ShardsFolder
from ticdata.reshard_lookup import Lookup
from ticdata.storage import atomic_dir, atomic_file
from ticdata.tars import TarWriter, trailer
from ticdata.wds import MALFORMED, iter_samples, sample_uid

EXAMPLES = 5  # malformed samples named per reason in reshard.json
COPY_BUFFER = 8 << 20
_U8 = np.dtype("<u8")


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


def work_dir(state: str | Path) -> Path:
    return Path(state) / "work"


def part_path(state: str | Path, read: int, bucket: int) -> Path:
    return work_dir(state) / read_key(read) / f"b{bucket:04d}.part"


def index_path(state: str | Path, read: int, bucket: int) -> Path:
    return work_dir(state) / read_key(read) / f"b{bucket:04d}.idx.npy"


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
    final = work_dir(spec.state) / read_key(spec.index)
    with atomic_dir(final) as tmp, ExitStack() as files:
        for path in spec.tars:
            for key, members in iter_samples(path, skipped, "re-download this shard or leave it out of the inputs"):
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
        seen = np.load(work_dir(spec.state) / read_key(t) / "seen.npy", mmap_mode="r")
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
    with atomic_file(work_dir(spec.state) / f"{dedupe_key(spec.index)}.npy") as fh:
        np.save(fh, drops, allow_pickle=False)
    return {"duplicates": n_dup, "selected_duplicates": int(drops.shape[1])}


def write_shard(spec: WriteSpec) -> dict:
    """Copy the byte ranges of one output shard's samples from the part files, add the trailer."""
    buf = bytearray(COPY_BUFFER)
    view = memoryview(buf)
    written = 0
    with atomic_file(ShardsFolder(Path(spec.out) / SHARDS_DIR).tar(spec.name, spec.shard)) as out:
        for read, a, b in spec.segments:
            idx = np.load(index_path(spec.state, read, spec.bucket), mmap_mode="r")
            start, end = int(idx[2, a]), int(idx[3, b - 1])
            with open(part_path(spec.state, read, spec.bucket), "rb", buffering=0) as src:
                src.seek(start)
                left = end - start
                while left:
                    n = src.readinto(view[: min(left, COPY_BUFFER)])
                    if not n:
                        raise RuntimeError(f"{part_path(spec.state, read, spec.bucket)} ends before byte {end}; rerun with overwrite")
                    out.write(view[:n])
                    left -= n
            written += end - start
        out.write(trailer(written))
    return {"samples": spec.samples, "bytes": written + len(trailer(written))}
