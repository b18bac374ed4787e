"""uid lists in DataComp's format: a .npy structured array of dtype `u8,u8`, sorted.

A uid's 32 hex digits are two big-endian 64-bit halves (DataComp's resharder and the official
TiC uid files use this layout). Loading never unpickles (`allow_pickle=False`).
"""

from __future__ import annotations

import io
import os
import tokenize
from pathlib import Path

import numpy as np

from ticdata.benchmarks import check_bucket_name
from ticdata.errors import UserError
from ticdata.storage import write_bytes_atomic

UID_DTYPE = np.dtype("u8,u8")
ORDER_BLOCK = 1 << 22  # uids compared at once when checking a file's order on its memory map


def uids_to_array(uids: list[str]) -> np.ndarray:
    """Hex uids -> sorted, de-duplicated `u8,u8` array."""
    if not uids:
        return np.zeros(0, dtype=UID_DTYPE)
    try:
        raw = bytes.fromhex("".join(uids))
    except ValueError:
        raise UserError("uid list: a uid is not hexadecimal; uids are 32 lowercase hex digits")
    if len(raw) != 16 * len(uids):
        raise UserError("uid list: a uid does not have 32 hex digits")
    halves = np.frombuffer(raw, dtype=">u8").reshape(-1, 2).astype("<u8")
    arr = np.empty(len(uids), dtype=UID_DTYPE)
    arr["f0"], arr["f1"] = halves[:, 0], halves[:, 1]
    return np.unique(arr)


def array_to_uids(arr: np.ndarray) -> list[str]:
    halves = np.empty((len(arr), 2), dtype=">u8")
    halves[:, 0], halves[:, 1] = arr["f0"], arr["f1"]
    h = halves.tobytes().hex()
    return [h[i : i + 32] for i in range(0, len(h), 32)]


def write_uid_file(path: Path, uids: list[str]) -> int:
    arr = uids_to_array(uids)
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    write_bytes_atomic(Path(path), buf.getvalue())
    return len(arr)


def uid_range_bounds(ranges: int) -> list[int]:
    """Lower bounds of `ranges` equal ranges of a uid's high 64-bit half, then 2**64: the cut the
    range stages (export's merge, import's join, reshard's lookup) share; uids are hashes, so the
    ranges hold about equal shares."""
    return [(r << 64) // ranges for r in range(ranges)] + [1 << 64]


def out_of_order(arr: np.ndarray) -> tuple[int, bool] | None:
    """The first index i where arr[i] <= arr[i-1], and whether it is an equal pair; None when strictly sorted."""
    for s in range(1, len(arr), ORDER_BLOCK):
        a = np.asarray(arr[s - 1 : s - 1 + ORDER_BLOCK + 1])
        prev, cur = a[:-1], a[1:]
        b = (cur["f0"] < prev["f0"]) | ((cur["f0"] == prev["f0"]) & (cur["f1"] <= prev["f1"]))
        if b.any():
            i = int(np.argmax(b))
            return s + i, bool(cur["f0"][i] == prev["f0"][i] and cur["f1"][i] == prev["f1"][i])
    return None


def npy_header(count: int) -> bytes:
    """np.save's header (format 1.0) for `count` uids."""
    buf = io.BytesIO()
    d = {"descr": np.lib.format.dtype_to_descr(UID_DTYPE), "fortran_order": False, "shape": (count,)}
    np.lib.format.write_array_header_1_0(buf, d)
    return buf.getvalue()


class UidFileWriter:
    """A uid .npy written in sorted blocks without holding the array: the data go after room for the
    header of `at_most` uids, and the header of the final count is written last (a shorter header,
    fewer digits past a 64-byte boundary, moves the data down). Same bytes as np.save; atomic."""

    def __init__(self, path: Path, at_most: int):
        self.path, self.count = Path(path), 0
        self.offset = len(npy_header(at_most))

    def __enter__(self) -> "UidFileWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".tmp-{self.path.name}-{os.getpid()}")
        self.fh = open(self.tmp, "w+b")
        self.fh.seek(self.offset)
        return self

    def append(self, block: np.ndarray) -> None:
        self.fh.write(np.ascontiguousarray(block, dtype=UID_DTYPE).tobytes())
        self.count += len(block)

    def _close(self) -> None:
        header, size = npy_header(self.count), self.count * UID_DTYPE.itemsize
        if len(header) != self.offset:
            src, dst, step = self.offset, len(header), 1 << 24
            for start in range(0, size, step):
                self.fh.seek(src + start)
                chunk = self.fh.read(min(step, size - start))
                self.fh.seek(dst + start)
                self.fh.write(chunk)
        self.fh.seek(0)
        self.fh.write(header)
        self.fh.truncate(len(header) + size)
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()

    def __exit__(self, kind, value, tb) -> None:
        if kind is not None:
            self.fh.close()
            self.tmp.unlink(missing_ok=True)
            return
        self._close()
        os.replace(self.tmp, self.path)


def _checked_layout(path: Path) -> tuple[np.dtype, int, int]:
    """(dtype, count, data offset) of a DataComp uid file, checked (one clear error per bad file).
    The header's shape and dtype are read and checked against the file's size before anything is
    allocated: a header that claims more uids than the file holds is refused, not trusted."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such uid file")
    if not path.is_file():
        raise UserError(f"{path}: not a regular file; a uid file is DataComp's `u8,u8` .npy")
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            offset = fh.tell()
    except (ValueError, OSError, SyntaxError, TypeError, tokenize.TokenError) as e:  # numpy tokenizes the header
        hint = " (an .npz archive?)" if path.read_bytes()[:2] == b"PK" else ""
        raise UserError(f"{path}: not a numpy uid file{hint} ({str(e).splitlines()[0][:120]}); expected DataComp's `u8,u8` .npy") from None
    if dtype.hasobject:
        raise UserError(f"{path}: not a numpy uid file (it holds Python objects, which tic never unpickles); expected DataComp's `u8,u8` .npy")
    if dtype.names is None or len(dtype.names) != 2 or any(dtype[i] != np.dtype("u8") for i in range(2)):
        raise UserError(f"{path}: dtype {dtype} is not DataComp's `u8,u8` uid layout")
    if len(shape) != 1:
        raise UserError(f"{path}: shape {shape}; a uid file is one-dimensional")
    need = offset + shape[0] * dtype.itemsize
    have = path.stat().st_size
    if have < need:
        raise UserError(f"{path}: truncated: its header claims {shape[0]:,} uids ({need:,} bytes), the file has {have:,}; re-create it")
    return dtype, shape[0], offset


def read_uid_array(path: Path) -> np.ndarray:
    """A DataComp uid file as its `u8,u8` structured array, checked (see _checked_layout)."""
    dtype, count, offset = _checked_layout(Path(path))
    arr = np.fromfile(path, dtype=dtype, count=count, offset=offset)
    return arr.astype(UID_DTYPE, copy=False)


def uid_memmap(path: Path) -> np.ndarray:
    """A uid file, checked, memory-mapped as `u8,u8` (nothing read until sliced); a file whose two
    fields are laid out otherwise (padding, other order of offsets) is read and converted instead."""
    dtype, count, offset = _checked_layout(Path(path))
    if dtype.itemsize != UID_DTYPE.itemsize or [dtype.fields[n][1] for n in dtype.names] != [0, 8]:
        return read_uid_array(path)
    if count == 0:
        return np.zeros(0, dtype=UID_DTYPE)
    return np.memmap(path, dtype=UID_DTYPE, mode="r", offset=offset, shape=(count,))


def read_uid_file(path: Path) -> list[str]:
    return array_to_uids(read_uid_array(path))


def parse_uid_specs(specs: list[str]) -> list[tuple[str, Path]]:
    """BUCKET=FILE.npy, or FILE.npy whose stem names the bucket."""
    pairs = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        pairs.append((name, Path(path)) if sep else (Path(spec).stem, Path(spec)))
    names = [check_bucket_name(n, f"uid file {p}") for n, p in pairs]
    if len(set(names)) != len(names):
        raise UserError(f"uid files: bucket names repeat ({names}); name them with BUCKET=FILE.npy")
    return pairs
