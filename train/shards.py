"""The training shards of each bucket, and an index that reads any sample without scanning its tar.

Layout (written by `tic evalsets`, or `tic reshard`/`tic download` for data without eval sets):
DATA/<bucket>/NNNNNNNN.tar with DATA/<bucket>/sizes.json ({tar name: samples}). Only training rows
are in DATA = DIR/train/shards, so held-out rows are never read.

The index of a tar lists, per sample, the byte offset and size of its image and caption members
(one pass over the headers with `tarfile`, which seeks over the data). It is built on first use
and cached in the run folder (cache/index/<bucket>/<tar>.npz, keyed by the tar's size and mtime),
so random access is a `pread` of the image bytes: a step can start, or resume, at any sample.
"""

from __future__ import annotations

import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ticdata.errors import UserError
from ticdata.tars import IMAGE_EXTS



@dataclass(frozen=True)
class ShardIndex:
    """Per sample of one tar: image offset/size, caption offset/size, and its key."""

    img_off: np.ndarray
    img_len: np.ndarray
    txt_off: np.ndarray
    txt_len: np.ndarray
    keys: np.ndarray  # str

    def __len__(self) -> int:
        return len(self.img_off)


def build_index(path: Path) -> ShardIndex:
    """Scan one tar's headers; samples without both an image and a caption are left out."""
    samples: dict[str, dict] = {}
    order: list[str] = []
    try:
        with tarfile.open(path, "r:") as tf:
            for m in tf:
                slash = m.name.rfind("/")
                dot = m.name.find(".", slash + 1)
                if not m.isreg() or dot < 0:
                    continue
                key, ext = m.name[:dot], m.name[dot + 1:].lower()  # webdataset: the key ends at the first dot
                if key not in samples:
                    samples[key] = {}
                    order.append(key)
                if ext in IMAGE_EXTS and "img" not in samples[key]:
                    samples[key]["img"] = (m.offset_data, m.size)
                elif ext == "txt":
                    samples[key]["txt"] = (m.offset_data, m.size)
                tf.members = []
    except (tarfile.TarError, OSError, EOFError) as e:
        raise UserError(f"{path}: cannot read the training shard ({e}); re-create it (tic evalsets / tic reshard)")
    keep = [k for k in order if "img" in samples[k] and "txt" in samples[k]]
    arr = lambda f: np.array([f(samples[k]) for k in keep], dtype=np.int64).reshape(-1)  # noqa: E731
    return ShardIndex(arr(lambda s: s["img"][0]), arr(lambda s: s["img"][1]), arr(lambda s: s["txt"][0]),
                      arr(lambda s: s["txt"][1]), np.array(keep, dtype=str))


def load_index(path: Path, cache: Path | None) -> ShardIndex:
    """The index of a tar, from the cache when the tar has not changed."""
    if cache is None:
        return build_index(path)
    st = path.stat()
    tag = f"{st.st_size}-{int(st.st_mtime_ns)}"
    f = cache / f"{path.name}.{tag}.npz"
    if f.exists():
        z = np.load(f)
        return ShardIndex(z["img_off"], z["img_len"], z["txt_off"], z["txt_len"], z["keys"])
    idx = build_index(path)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".tmp-{os.getpid()}-{f.name}"
    with open(tmp, "wb") as fh:
        np.savez(fh, img_off=idx.img_off, img_len=idx.img_len, txt_off=idx.txt_off, txt_len=idx.txt_len, keys=idx.keys)
    os.replace(tmp, f)
    return idx


@dataclass
class Bucket:
    name: str
    tars: list[Path]
    counts: np.ndarray  # valid samples per tar (from the index)
    indexes: list[ShardIndex]
    folder: Path | None = None

    @property
    def size(self) -> int:
        return int(self.counts.sum())

    def locate(self, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(tar number, sample within it) of the bucket's samples `i` (0..size-1)."""
        ends = self.__dict__.get("_ends")
        if ends is None:
            ends = self.__dict__["_ends"] = np.cumsum(self.counts)
        t = np.searchsorted(ends, i, side="right")
        return t, i - (ends[t] - self.counts[t])


def bucket_folders(data: Path, names: list[str]) -> list[Path]:
    out = []
    for n in names:
        folder = data / n
        if not folder.is_dir():
            raise UserError(f"{folder}: no training shards for bucket {n!r}; run `tic evalsets DIR` (or tic reshard) first")
        out.append(folder)
    return out


def open_buckets(data: Path, names: list[str], cache: Path | None) -> list[Bucket]:
    """Every bucket's tars (sizes.json order) with their indexes. A bucket may be empty; a step
    that would draw from it stops with the folder named (`StepPlan`)."""
    buckets = []
    for name, folder in zip(names, bucket_folders(data, names)):
        sizes_path = folder / "sizes.json"
        if sizes_path.exists():
            tars = [folder / t for t in json.loads(sizes_path.read_text())]
        else:
            tars = sorted(folder.glob("*.tar"))
        tars = [t for t in tars if t.exists()]
        indexes = [load_index(t, None if cache is None else cache / name) for t in tars]
        counts = np.array([len(ix) for ix in indexes], dtype=np.int64)
        buckets.append(Bucket(name, tars, counts, indexes, folder))
    return buckets
