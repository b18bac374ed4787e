"""Which bucket each sample of a step comes from: a counter-based draw, so a step can resume at any
sample and draw exactly what an uninterrupted run would have drawn.

Draw k of step s picks bucket i with probability `weights[i]`: u = splitmix64(seed, s, k) / 2^64
goes through the inverse of the weights' cumulative sum. Nothing but (seed, step, k) determines it:
no generator state to checkpoint, any worker can compute any range of draws, and the counts over a
step follow the multinomial distribution of the weights.
"""

from __future__ import annotations

import numpy as np

from ticdata.mix import splitmix64 as _splitmix



def uniforms(seed: int, step: int, start: int, count: int) -> np.ndarray:
    """Draws start..start+count-1 of a step as floats in [0, 1)."""
    key = _splitmix(_splitmix(np.array([seed & 0xFFFFFFFFFFFFFFFF], np.uint64)) ^ np.uint64(step & 0xFFFFFFFF))[0]
    k = np.arange(start, start + count, dtype=np.uint64)
    bits = _splitmix(k ^ key) >> np.uint64(11)  # 53 bits
    return bits.astype(np.float64) / float(1 << 53)


def bucket_choices(weights: tuple[float, ...] | list[float], seed: int, step: int, start: int, count: int) -> np.ndarray:
    """The bucket index of draws start..start+count-1 of a step (int16)."""
    w = np.asarray(weights, dtype=np.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {list(weights)}")
    cdf = np.cumsum(w / w.sum())
    cdf[-1] = 1.0
    idx = np.searchsorted(cdf, uniforms(seed, step, start, count), side="right")
    # a zero-weight bucket is never chosen (searchsorted lands on the next positive one)
    return idx.astype(np.int16)
