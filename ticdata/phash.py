"""Perceptual hashes (64-bit DCT pHash) and a Hamming-distance join to find near-duplicate images.

pHash: the image in grey, resized to 32x32, its 2-D DCT; the 8x8 lowest frequencies without the DC
term are compared with their median, one bit each (63 bits; the top bit is 0). Re-encoding,
resizing and mild colour changes move a few bits; a different picture moves about half of them.

Near-duplicate search, `near_pairs(queries, refs, d)`: every pair within Hamming distance d. By the
pigeonhole principle, two 64-bit hashes within distance d agree exactly on at least one of d+1
disjoint bit ranges, so each range is an equi-join (Polars) and only its candidates get a popcount.
Its cost grows with the number of candidates per range, refs / 2^(64/(d+1)): fine for eval sets of
up to a million images against any number of training images at the default d=4 (13-bit ranges).
Hashes with almost all bits equal (blank or flat images) match far too much; `informative()`
tells which hashes are worth using as eval images.
"""

from __future__ import annotations

import io

import numpy as np
import polars as pl

HASH_SIZE = 8
IMG_SIZE = 32
DEFAULT_DISTANCE = 4
MIN_BITS = 8  # a hash with fewer set (or unset) bits than this is a blank or flat image


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_DCT = _dct_matrix(IMG_SIZE)
_WEIGHTS = (np.uint64(1) << np.arange(63, dtype=np.uint64)[::-1]).astype(np.uint64)


def phash_pixels(gray: np.ndarray) -> int:
    """The pHash of a 32x32 grey image (float array)."""
    coeffs = _DCT @ gray @ _DCT.T
    low = coeffs[:HASH_SIZE, :HASH_SIZE].ravel()[1:]  # 63 values, DC term dropped
    bits = low > np.median(low)
    return int((bits.astype(np.uint64) * _WEIGHTS).sum())


def phash_image(img) -> int:
    """The pHash of a PIL image."""
    from PIL import Image

    g = img.convert("L").resize((IMG_SIZE, IMG_SIZE), Image.Resampling.LANCZOS)
    return phash_pixels(np.asarray(g, dtype=np.float64))


def phash_bytes(data: bytes) -> int:
    """The pHash of encoded image bytes (JPEG, PNG, WebP...); raises on undecodable bytes."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.draft("L", (IMG_SIZE * 2, IMG_SIZE * 2))  # JPEG: decode at a reduced scale, much faster
        return phash_image(img)


def informative(hashes: np.ndarray) -> np.ndarray:
    """True where a hash has at least MIN_BITS set and MIN_BITS unset bits (of 63)."""
    ones = np.bitwise_count(hashes.astype(np.uint64))
    return (ones >= MIN_BITS) & (ones <= 63 - MIN_BITS)


def _ranges(distance: int) -> list[tuple[int, int]]:
    parts = distance + 1
    edges = np.linspace(0, 64, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def near_pairs(queries: np.ndarray, refs: np.ndarray, distance: int = DEFAULT_DISTANCE) -> pl.DataFrame:
    """(q, r, distance) for every query index q and reference index r whose hashes differ in at most
    `distance` bits, each pair once."""
    q = np.asarray(queries, dtype=np.uint64)
    r = np.asarray(refs, dtype=np.uint64)
    empty = pl.DataFrame(schema={"q": pl.UInt32, "r": pl.UInt32, "distance": pl.UInt8})
    if len(q) == 0 or len(r) == 0:
        return empty
    if distance < 0 or distance > 31:
        raise ValueError("distance must be between 0 and 31")
    found = []
    qi = np.arange(len(q), dtype=np.uint32)
    ri = np.arange(len(r), dtype=np.uint32)
    for lo, hi in _ranges(distance):
        mask = np.uint64(((1 << (hi - lo)) - 1) << lo)
        left = pl.DataFrame({"q": qi, "k": q & mask})
        right = pl.DataFrame({"r": ri, "k": r & mask})
        cand = left.join(right, on="k", how="inner").select("q", "r")
        if cand.height:
            d = np.bitwise_count(q[cand["q"].to_numpy()] ^ r[cand["r"].to_numpy()])
            found.append(cand.with_columns(distance=pl.Series(d, dtype=pl.UInt8)).filter(pl.col("distance") <= distance))
    if not found:
        return empty
    return pl.concat(found).unique(["q", "r"]).sort("q", "r")
