"""Tar files for webdataset shards: a lean reader and a deterministic writer.

Writer: every member gets the same header fields (mtime 0, uid/gid 0, empty uname/gname, mode
0o644, POSIX ustar magic), laid out here rather than by `tarfile`, whose header bytes have changed
between Python releases; names that do not fit ustar (over 100 bytes, non-ASCII) and sizes of 8 GiB
or more get a POSIX pax extended header. An archive ends with two zero blocks, padded to a
multiple of 10,240 bytes (the record size GNU tar and Python's tarfile use). So equal members in
equal order give equal bytes, on any machine.

Reader: `iter_members` streams the regular files of an uncompressed tar (ustar, pax and GNU long
names) straight from a buffered file, one member in memory at a time, checking each header's
checksum; compressed tars (gzip, bzip2, xz) go through `tarfile`'s stream mode instead. Damage
(bad checksum, truncation) raises `TarError` with the byte offset. Non-regular members
(folders, links, devices, pax global headers) are skipped and counted.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import BinaryIO, Iterator

BLOCK = 512
RECORD = 20 * BLOCK
ZERO_BLOCK = bytes(BLOCK)
READ_BUFFER = 1 << 20
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")  # webdataset image members, as CLIP_benchmark and open_clip decode them
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
_OCTAL_MAX = 8**11  # a size field holds 11 octal digits

# The fixed part of every header this module writes (fields after the name, before the checksum,
# and after the checksum); see `member_header`.
_MODE_UID_GID = b"0000644\x00" + b"0000000\x00" + b"0000000\x00"
_MTIME = b"00000000000\x00"
_CHKSUM_BLANK = b" " * 8
_TAIL = (
    b"0"  # typeflag: regular file
    + bytes(100)  # linkname
    + b"ustar\x0000"  # magic, version (POSIX)
    + bytes(32)  # uname
    + bytes(32)  # gname
    + b"0000000\x00" * 2  # devmajor, devminor
    + bytes(155)  # prefix
    + bytes(12)  # to 512
)
_FIXED_SUM = sum(_MODE_UID_GID) + sum(_MTIME) + sum(_CHKSUM_BLANK) + sum(_TAIL)


class TarError(Exception):
    """A damaged or unsupported tar; the message says where."""


def _header(name: bytes, size_field: bytes, typeflag: bytes = b"0") -> bytes:
    tail = _TAIL if typeflag == b"0" else typeflag + _TAIL[1:]
    name_field = name.ljust(100, b"\x00")
    chk = _FIXED_SUM + sum(name_field) + sum(size_field) + (tail[0] - _TAIL[0])
    return b"".join((name_field, _MODE_UID_GID, size_field, _MTIME, b"%06o\x00 " % chk, tail))


def _pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode() + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:  # the length counts its own digits
        n = len(str(n)) + len(body)
    return str(n).encode() + body


def member_header(name: str, size: int) -> bytes:
    """The header block(s) of a regular-file member `name` of `size` bytes (deterministic)."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= 100 and raw.isascii() and size < _OCTAL_MAX:
        return _header(raw, b"%011o\x00" % size)
    records = b""
    if len(raw) > 100 or not raw.isascii():
        records += _pax_record("path", raw)
    if size >= _OCTAL_MAX:
        records += _pax_record("size", str(size).encode())
    short = raw.decode("ascii", "replace").encode("ascii", "replace")[:100].replace(b"\x00", b"_")
    pax = _header(b"././@PaxHeader", b"%011o\x00" % len(records), b"x") + records + bytes(-len(records) % BLOCK)
    return pax + _header(short, b"%011o\x00" % (size if size < _OCTAL_MAX else 0))


def padding(size: int) -> bytes:
    return bytes(-size % BLOCK)


def trailer(written: int) -> bytes:
    """End-of-archive blocks for an archive of `written` bytes so far, padded to a record."""
    end = written + 2 * BLOCK
    return bytes(2 * BLOCK + (-end % RECORD))


class TarWriter:
    """Append members to a binary file; `close()` writes the trailer (the file stays open)."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.offset = 0

    def add(self, name: str, data: bytes) -> None:
        head = member_header(name, len(data))
        pad = padding(len(data))
        self.fh.write(head)
        self.fh.write(data)
        if pad:
            self.fh.write(pad)
        self.offset += len(head) + len(data) + len(pad)

    def close(self) -> None:
        self.fh.write(trailer(self.offset))


# ---------------------------------------------------------------------------------- reading


def _number(field: bytes, offset: int, what: str) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256
        n = int.from_bytes(field[1:], "big")
        return -n if field[0] & 0x40 else n
    s = field.split(b"\x00", 1)[0].strip()
    try:
        return int(s or b"0", 8)
    except ValueError:
        raise TarError(f"bad {what} field in the header at byte {offset}") from None


def _checksum_ok(hdr: bytes) -> bool:
    try:
        want = int(hdr[148:156].split(b"\x00", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    unsigned = sum(hdr) - sum(hdr[148:156]) + 256
    if want == unsigned:
        return True
    signed = unsigned - 2 * (sum(b for b in hdr[:148] if b > 127) + sum(b for b in hdr[156:] if b > 127))
    return want == signed  # some old tars sum signed chars (tarfile accepts both)


def _parse_pax(data: bytes, offset: int) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    pos, end = 0, len(data)
    while pos < end and data[pos] != 0:
        sp = data.find(b" ", pos, pos + 24)
        try:
            n = int(data[pos:sp]) if sp > pos else 0
        except ValueError:
            n = 0
        rec = data[sp + 1 : pos + n]
        if n <= sp - pos or pos + n > end or not rec.endswith(b"\n") or b"=" not in rec:
            raise TarError(f"bad pax header at byte {offset}")
        key, _, value = rec[:-1].partition(b"=")
        out[key.decode("utf-8", "replace")] = value
        pos += n
    return out


def _read_exact(fh: BinaryIO, n: int, offset: int, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise TarError(f"truncated: {what} at byte {offset} needs {n} bytes, the file ends after {len(data)}")
    return data


def is_compressed(head: bytes) -> bool:
    return head.startswith(_COMPRESSED_MAGIC)


def iter_members(path: str | Path, skipped: list[int] | None = None) -> Iterator[tuple[str, bytes]]:
    """(name, data) of each regular file in the tar at `path`, in order.

    `skipped[0]` (when given) is increased by one for each non-regular member passed over.
    Damage, and errors reading the file, raise TarError."""
    try:
        for name, _, data in _iter_members(path, skipped, True):
            yield name, data
    except OSError as e:
        raise TarError(f"read error ({e.strerror or e})") from None


def iter_member_spans(path: str | Path) -> Iterator[tuple[str, int, int]]:
    """(name, data offset, size) of each regular file of an uncompressed tar, reading only the
    headers (the data is skipped with a seek): an index for random access by `pread`."""
    try:
        for name, offset, data in _iter_members(path, None, False):
            yield name, offset, data
    except OSError as e:
        raise TarError(f"read error ({e.strerror or e})") from None


def _iter_members(path: str | Path, skipped: list[int] | None, read: bool) -> Iterator[tuple[str, int, bytes | int]]:
    """(name, data offset, data when `read` else its size) of each regular member."""
    with open(path, "rb", buffering=READ_BUFFER) as fh:
        head = fh.peek(8)[:8]
        if is_compressed(head):
            if not read:
                raise TarError("compressed tar: an index needs an uncompressed tar")
            for name, data in _iter_tarfile(fh, skipped):
                yield name, -1, data
            return
        end = os.fstat(fh.fileno()).st_size
        offset = 0
        long_name: bytes | None = None
        pax: dict[str, bytes] = {}
        while True:
            hdr = fh.read(BLOCK)
            if not hdr:  # tarfile tolerates this; tic does not: it is what a cut at a member boundary looks like
                raise TarError(f"truncated: no end-of-archive marker; the file ends at byte {offset}, between two members")
            if len(hdr) < BLOCK:
                raise TarError(f"truncated: a header at byte {offset} is {len(hdr)} bytes long")
            if hdr == ZERO_BLOCK:
                return
            if not _checksum_ok(hdr):
                raise TarError(f"bad header checksum at byte {offset} (not a tar, or damaged)")
            size = _number(hdr[124:136], offset, "size")
            if size < 0:
                raise TarError(f"negative size in the header at byte {offset}")
            typeflag = hdr[156:157]
            here = offset
            offset += BLOCK
            if "size" in pax:
                try:
                    size = int(pax["size"])
                except ValueError:
                    raise TarError(f"bad pax size {pax['size'][:20]!r} for the member at byte {here}") from None
                if size < 0:
                    raise TarError(f"negative pax size for the member at byte {here}")
            if offset + size > end and typeflag not in (b"1", b"2", b"3", b"4", b"5", b"6"):
                # a size field beyond the file (base-256 2**62, pax 10**18): truncated or forged, never read
                raise TarError(f"truncated: the member at byte {here} claims {size} bytes, the file ends at byte {end}")
            padded = size + (-size % BLOCK)
            if typeflag in (b"x", b"g", b"L", b"K"):
                data = _read_exact(fh, padded, here, "an extended header")[:size]
                offset += padded
                if typeflag == b"x":
                    pax = _parse_pax(data, here)
                    if any(k.startswith("GNU.sparse") for k in pax):
                        raise TarError(f"sparse member at byte {here}; rewrite the tar without sparse files")
                elif typeflag == b"L":
                    long_name = data.split(b"\x00", 1)[0]
                elif typeflag == b"g" and skipped is not None:
                    skipped[0] += 1
                continue
            if typeflag == b"S":
                raise TarError(f"GNU sparse member at byte {here}; rewrite the tar without sparse files")
            if "path" in pax:
                raw = pax["path"]
            elif long_name is not None:
                raw = long_name
            else:
                raw = hdr[:100].split(b"\x00", 1)[0]
                if hdr[257:265] == b"ustar\x0000":
                    prefix = hdr[345:500].split(b"\x00", 1)[0]
                    if prefix:
                        raw = prefix + b"/" + raw
            name = raw.decode("utf-8", "surrogateescape")
            pax, long_name = {}, None
            regular = typeflag in (b"0", b"7") or (typeflag == b"\x00" and not name.endswith("/"))
            if regular and not read:
                if fh.seek(padded, 1) > end:
                    raise TarError(f"truncated: member {name!r} at byte {here} needs {size} bytes, the file ends before")
                yield name, offset, size
                offset += padded
            elif regular:
                data = _read_exact(fh, size, here, f"member {name!r}")
                if padded != size:
                    _read_exact(fh, padded - size, here, f"padding of {name!r}")
                yield name, offset, data
                offset += padded
            else:
                if skipped is not None:
                    skipped[0] += 1
                if typeflag in (b"1", b"2", b"3", b"4", b"5", b"6"):
                    padded = 0  # links, devices, folders, fifos carry no data whatever the size field says
                if padded:
                    _read_exact(fh, padded, here, f"member {name!r}")
                offset += padded


def _iter_tarfile(fh: BinaryIO, skipped: list[int] | None) -> Iterator[tuple[str, bytes]]:
    import lzma
    import zlib

    try:
        with tarfile.open(fileobj=fh, mode="r|*") as tf:
            for m in tf:
                if m.isreg():
                    yield m.name, tf.extractfile(m).read()
                elif skipped is not None:
                    skipped[0] += 1
                tf.members = []
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as e:
        raise TarError(f"damaged compressed tar ({e})") from None


def check_tar(path: Path) -> str | None:
    """None when `path` starts like a tar (or a compressed one that opens), else why not."""
    try:
        with open(path, "rb") as fh:
            hdr = fh.read(BLOCK)
            if is_compressed(hdr):
                fh.seek(0)
                try:
                    with tarfile.open(fileobj=fh, mode="r|*") as tf:
                        tf.next()
                except Exception as e:  # noqa: BLE001 - any failure means "not a readable tar"
                    return f"is compressed but not a readable tar ({e})"
                return None
    except IsADirectoryError:
        return "is a folder"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if len(hdr) < BLOCK:
        return f"is not a tar file ({len(hdr)} bytes, less than one tar header)"
    if hdr == ZERO_BLOCK:
        return None  # an empty archive
    if not _checksum_ok(hdr):
        return "is not a tar file (its first block is not a tar header)"
    return None
