"""webdataset shards as tic reads them: which tars a pattern names, the samples of one tar, a
sample's uid, a header-only index of a tar's samples for random access, and a tar's samples
rewritten in key order.

One reader for every verb that reads shards (reshard, evalsets, the trainer, the evaluator), so
they agree on what a sample is: consecutive members sharing a key (the name up to the first dot of
its last path part, webdataset's `base_plus_ext`), `__meta__` members and members without an
extension skipped.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
from pathlib import Path
from typing import Iterator

from ticdata.errors import UserError
from ticdata.tars import IMAGE_EXTS, TarError, TarWriter, check_tar, iter_member_spans, iter_members

log = logging.getLogger(__name__)

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
MALFORMED = ("duplicate_member", "no_json", "bad_json", "no_uid", "bad_uid", "bad_member_name")  # why a sample is not used

_UID_RE = re.compile(r"[0-9a-f]{32}")
_KEY_RE = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext: key, extension
_META_RE = re.compile(r"__[^/]*__($|/)")  # webdataset skips these members


# ------------------------------------------------------------------------------ which tars


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
        if not p.is_file():
            raise UserError(f"{path}: not a regular file (a FIFO, socket or device); pass tar files or folders of them")
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


# ------------------------------------------------------------------------------ samples


def split_name(name: str) -> tuple[str, str] | None:
    """(key, extension) of a member name, or None for members webdataset skips."""
    m = _KEY_RE.match(name)
    if m is None or _META_RE.match(name) or ("/" not in name and name.startswith("__") and name.endswith("__")):
        return None
    return m.group(1), m.group(2)


SHARD_REMEDY = "re-create this shard (tic download, tic reshard) or leave it out of the inputs"


def iter_samples(path: str, skipped: list[int], remedy: str = SHARD_REMEDY):
    """(key, [(ext, bytes), ...]) per sample of one tar: consecutive members sharing a key, as
    webdataset groups them; members without an extension and `__meta__` members are skipped.
    The one guarded reader of every verb: a damaged tar (checksum, truncation, forged sizes) is a
    UserError naming the file and `remedy`, never a traceback."""
    try:
        yield from _samples(path, skipped)
    except TarError as e:
        raise UserError(f"{path}: {e}; {remedy}") from None


def _samples(path: str, skipped: list[int]):
    key, members = None, []
    for name, data in iter_members(path, skipped):
        parts = split_name(name)
        if parts is None:
            skipped[0] += 1
            continue
        k, ext = parts
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
    if not all(e.isprintable() and "/" not in e and "\\" not in e for e in exts):
        return None, "bad_member_name"  # control characters (terminal escapes) are never copied into an output name
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


def index_samples(path: str | Path) -> Iterator[tuple[str, dict[str, tuple[int, int]]]]:
    """(key, {extension: (data offset, size)}) per sample of an uncompressed tar, from the headers
    alone (the data is seeked over), in tar order; the first member of an extension wins."""
    key, spans = None, {}
    for name, offset, size in iter_member_spans(path):
        parts = split_name(name)
        if parts is None:
            continue
        k, ext = parts
        if k != key:
            if spans:
                yield key, spans
            key, spans = k, {}
        spans.setdefault(ext.lower(), (offset, size))
    if spans:
        yield key, spans


def image_span(spans: dict[str, tuple[int, int]]) -> tuple[int, int] | None:
    """The (offset, size) of a sample's first image member (webdataset's image extensions)."""
    found = [spans[e] for e in IMAGE_EXTS if e in spans]
    return min(found) if found else None


def write_in_key_order(src: str | Path, dst: str | Path) -> int:
    """Copy the uncompressed tar `src` to `dst` with its samples sorted by key, each sample's
    members in their order (a member whose name has no key stays with the sample before it), in
    tic's deterministic headers: img2dataset writes samples as its threads finish, so without this
    the same download gives other tars, other eval and training shards, and other training draws.
    Returns the number of samples."""
    groups: list[tuple[str, list[tuple[str, int, int]]]] = []
    for name, offset, size in iter_member_spans(src):
        parts = split_name(name)
        if groups and (parts is None or parts[0] == groups[-1][0]):
            groups[-1][1].append((name, offset, size))
        else:
            groups.append((parts[0] if parts else "", [(name, offset, size)]))
    groups.sort(key=lambda g: g[0])  # stable: keys are unique in a download's tar
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        writer = TarWriter(fout)
        for _, members in groups:
            for name, offset, size in members:
                writer.add(name, os.pread(fin.fileno(), size, offset))
        writer.close()
    return len(groups)
