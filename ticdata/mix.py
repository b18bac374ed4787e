"""splitmix64: a fast, well-mixed 64-bit hash of integers (vectorised with numpy), for seeded orders
and counter-based draws that must be identical on every machine and in every process."""

from __future__ import annotations

import numpy as np

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)) & _M64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
        return z ^ (z >> np.uint64(31))


GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment, added before mixing (2**64 / golden ratio)
MASK64 = (1 << 64) - 1


def splitmix64_int(x: int) -> int:
    """splitmix64 of one Python int (taken mod 2**64), equal to `splitmix64` of it as a uint64;
    for scalar draws, where a numpy round trip would cost more than the hash."""
    z = (x + GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)
