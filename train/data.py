"""A step's batches: which samples (bucket, tar, sample) each batch holds, and loading them.

The plan is pure arithmetic on counters, with no state to save: draw k of a step picks its bucket
(`tic_train.sampling`); the j-th draw from bucket b takes sample perm_{b,e}[j mod L_b] where L_b is
the bucket's limit (the replay buffer's share, else its size), e = j div L_b the pass over it, and
perm_{b,e} a seeded permutation of the bucket's first-L_b samples in the bucket's seeded order.
So the replay buffer is a fixed random subset of the bucket, reshuffled at each pass, and batch n
of a step is the same whether the step runs through or resumes at n.

`BatchDataset` is a map-style dataset over batch numbers: a DataLoader worker loads batch n by
reading each sample's bytes at its indexed offset, decoding and transforming it (the random
augmentations seeded by (seed, step, draw)), and tokenising the caption. With several processes
(DDP), rank r takes samples r, r + world, ... of each global batch.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np
import torch

from ticdata.mix import splitmix64 as _splitmix
from tic_train.sampling import bucket_choices
from tic_train.shards import Bucket

log = logging.getLogger(__name__)


def _perm(n: int, seed: int, *salt: int) -> np.ndarray:
    key = int(_splitmix(np.array([(seed * 1_000_003 + sum((s + 1) * 7919**k for k, s in enumerate(salt))) & 0xFFFFFFFFFFFFFFFF], np.uint64))[0])
    return np.random.default_rng(key).permutation(n)


@dataclass
class StepPlan:
    """The draws of one training step over `buckets` with a method's weights and limits."""

    buckets: list[Bucket]
    weights: tuple[float, ...]
    limits: tuple[int | None, ...]
    samples: int  # the step's budget C (Oracle: T x C)
    batch_size: int
    seed: int
    step: int

    def __post_init__(self):
        for b, w in zip(self.buckets, self.weights):
            if w > 0 and b.size == 0:
                from ticdata.errors import UserError

                raise UserError(f"{b.folder or b.name}: bucket {b.name!r} has no valid training sample (image + caption), "
                                f"but step {self.step + 1} draws {w:.1%} of its samples from it; download or reshard it, "
                                "or train only the steps before it (--steps)")
        self._limit = [min(lim, b.size) if lim is not None else b.size for b, lim in zip(self.buckets, self.limits)]
        self._base: dict[int, np.ndarray] = {}  # bucket -> its first-L samples in seeded order
        self._perms: dict[tuple[int, int], np.ndarray] = {}
        self._prefix = [np.zeros(len(self.buckets), dtype=np.int64)]  # draws per bucket before each block

    @property
    def batches(self) -> int:
        return -(-self.samples // self.batch_size)

    def _base_of(self, b: int) -> np.ndarray:
        if b not in self._base:
            order = _perm(self.buckets[b].size, self.seed, 1, b)  # the bucket's order: fixed for the whole run
            self._base[b] = order[: self._limit[b]].astype(np.uint32 if self.buckets[b].size < 2**32 else np.int64)
        return self._base[b]

    def _pass(self, b: int, e: int) -> np.ndarray:
        if (b, e) not in self._perms:
            if len(self._perms) > 64:
                self._perms.clear()
            self._perms[(b, e)] = self._base_of(b)[_perm(self._limit[b], self.seed, 2, self.step, b, e)]
        return self._perms[(b, e)]

    BLOCK = 1 << 16  # draws per block of the per-bucket prefix counts: a batch recomputes at most this many

    def _counts_before(self, block: int) -> np.ndarray:
        while len(self._prefix) <= block:
            k = len(self._prefix) - 1
            ch = bucket_choices(self.weights, self.seed, self.step, k * self.BLOCK, self.BLOCK)
            self._prefix.append(self._prefix[-1] + np.bincount(ch, minlength=len(self.buckets)))
        return self._prefix[block]

    def draws(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(bucket, sample within the bucket) of draws start..stop-1."""
        stop = min(stop, self.samples)
        block = start // self.BLOCK
        b0 = block * self.BLOCK
        choice = bucket_choices(self.weights, self.seed, self.step, b0, stop - b0)
        prior = self._counts_before(block)
        ch = choice[start - b0 :]
        sample = np.empty(len(ch), dtype=np.int64)
        for b in np.unique(ch):
            before = int(prior[b]) + int((choice[: start - b0] == b).sum())
            j = before + np.arange(int((ch == b).sum()))
            L = self._limit[b]
            out = np.empty(len(j), dtype=np.int64)
            for e in np.unique(j // L):
                m = (j // L) == e
                out[m] = self._pass(int(b), int(e))[j[m] % L]
            sample[ch == b] = out
        return ch.astype(np.int64), sample

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        a = n * self.batch_size
        return self.draws(a, a + self.batch_size)


class BatchDataset(torch.utils.data.Dataset):
    """Batch n of a StepPlan as (images, tokens, draw numbers); this rank's part only."""

    def __init__(self, plan: StepPlan, transform, tokenizer, rank: int = 0, world: int = 1):
        self.plan, self.transform, self.tokenizer, self.rank, self.world = plan, transform, tokenizer, rank, world
        self._files: dict = {}

    def __len__(self) -> int:
        return self.plan.batches

    def _read(self, path, off: int, size: int) -> bytes:
        fh = self._files.get(path)
        if fh is None:
            fh = self._files[path] = open(path, "rb", buffering=0)
        return __import__("os").pread(fh.fileno(), int(size), int(off))

    def __getitem__(self, n: int):
        from PIL import Image

        buckets, samples = self.plan.batch(n)
        first = n * self.plan.batch_size
        draws = np.arange(first, first + len(buckets))[self.rank :: self.world]
        buckets, samples = buckets[self.rank :: self.world], samples[self.rank :: self.world]
        images, texts, bad = [], [], []
        where = {}
        for b in np.unique(buckets):
            m = buckets == b
            where[int(b)] = dict(zip(np.nonzero(m)[0].tolist(), zip(*(a.tolist() for a in self.plan.buckets[b].locate(samples[m])))))
        seeds = (_splitmix(draws.astype(np.uint64) ^ np.uint64((self.plan.seed * 0x9E3779B1 + self.plan.step * 0x85EBCA77) & 0xFFFFFFFFFFFFFFFF))
                 >> np.uint64(1)).tolist()
        for j, (b, seed) in enumerate(zip(buckets.tolist(), seeds)):
            bucket = self.plan.buckets[b]
            t, local = where[b][j]
            ix = bucket.indexes[t]
            path = bucket.tars[t]
            try:
                img = Image.open(io.BytesIO(self._read(path, ix.img_off[local], ix.img_len[local])))
                img = img.convert("RGB")
                torch.default_generator.manual_seed(seed)  # augmentation of draw d: the same whether or not the step was resumed
                images.append(self.transform(img))
                texts.append(self._read(path, ix.txt_off[local], ix.txt_len[local]).decode("utf-8", "replace"))
            except Exception as e:  # a broken sample is skipped and counted, never fatal
                bad.append(f"{path.name}:{ix.keys[local]}: {type(e).__name__}")
        if not images:
            raise RuntimeError(f"batch {n}: no sample could be decoded ({'; '.join(bad[:3])})")
        return torch.stack(images), self.tokenizer(texts), torch.as_tensor(draws[: len(images)]), len(bad)
