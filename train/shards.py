"""The training shards of each bucket, and an index that reads any sample without scanning its tar.

Layout (written by `tic evalsets`, or `tic reshard`/`tic download` for data without eval sets):
DATA/<bucket>/NNNNNNNN.tar with DATA/<bucket>/sizes.json ({tar name: samples}). Only training rows
are in DATA = DIR/train/shards, so held-out rows are never read.

The index of a tar lists, per sample, the byte offset and size of its image and caption members
(one pass over the headers with `ticdata.wds.index_samples`, which seeks over the data; a sample is
what webdataset reads as one: consecutive members sharing a key). It is built on first use
and cached in the run folder (cache/index/<bucket>/<tar>.npz, keyed by the tar's size and mtime),
so random access is a `pread` of the image bytes: a step can start, or resume, at any sample.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ticdata.errors import UserError
from ticdata.layout import ShardsFolder, bucket_dir
from ticdata.documents import load_sizes
from ticdata.storage import atomic_file
from ticdata.tars import TarError
from ticdata.wds import image_span, index_samples


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
    keys, img, txt = [], [], []
    try:
        for key, spans in index_samples(path):
            image = image_span(spans)
            if image is not None and "txt" in spans:
                keys.append(key)
                img.append(image)
                txt.append(spans["txt"])
    except (TarError, OSError) as e:
        raise UserError(f"{path}: cannot read the training shard ({e}); re-create it (tic evalsets / tic reshard)")
    img_a, txt_a = (np.array(x, dtype=np.int64).reshape(-1, 2) for x in (img, txt))
    return ShardIndex(img_a[:, 0].copy(), img_a[:, 1].copy(), txt_a[:, 0].copy(), txt_a[:, 1].copy(), np.array(keys, dtype=str))


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
    with atomic_file(f) as fh:
        np.savez(fh, img_off=idx.img_off, img_len=idx.img_len, txt_off=idx.txt_off, txt_len=idx.txt_len, keys=idx.keys)
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

    @cached_property
    def fingerprint(self) -> str:
        """16 hex digits of sha256 over the sample keys in order and the tars' byte sizes: the same
        samples give the same digest wherever the folder lies, and a bucket whose samples or tars
        changed (downloaded, curated or carved again) reads differently: a resume is told apart from
        a rerun on other data."""
        h = hashlib.sha256(self.name.encode())
        for tar, ix in zip(self.tars, self.indexes):
            h.update(f"\0{tar.stat().st_size}\0{len(ix)}\0".encode())
            h.update("\n".join(ix.keys.tolist()).encode())
        return h.hexdigest()[:16]


def bucket_folders(shards: ShardsFolder, names: list[str]) -> list[Path]:
    out = []
    for n in names:
        folder = shards.bucket(n)
        if not folder.is_dir():
            data = shards.root.parent.parent if shards.root.parent.name == "train" else shards.root.parent
            raise UserError(f"{folder}: no training shards for bucket {n!r}; run `tic evalsets {data}` (or tic reshard) first")
        out.append(folder)
    return out


def open_buckets(shards: ShardsFolder, names: list[str], cache: Path | None) -> list[Bucket]:
    """Every bucket's tars (sizes.json order) with their indexes. A bucket may be empty; a step
    that would draw from it stops with the folder named (`StepPlan`)."""
    buckets = []
    for name, folder in zip(names, bucket_folders(shards, names)):
        sizes_path = shards.sizes_json(name)
        if sizes_path.exists():
            tars = [folder / t for t in load_sizes(sizes_path)]
        else:
            tars = sorted(folder.glob("*.tar"))
        tars = [t for t in tars if t.exists()]
        indexes = [load_index(t, None if cache is None else bucket_dir(cache, name)) for t in tars]
        counts = np.array([len(ix) for ix in indexes], dtype=np.int64)
        buckets.append(Bucket(name, tars, counts, indexes, folder))
    return buckets
