"""Checked reading of the JSON documents in tic's folders: one line naming the file and the key.

Why: curated folders, run folders and eval sets are copied, hand-edited, half-deleted and shared,
so a document a verb reads is untrusted input. A damaged one must end the verb with one line that
names the file, the key and what to do, before anything is written, never with a traceback from
deep inside (`'NoneType' object has no attribute 'get'`).

A shape is a small literal: `str`, `int`, `float` (an int is a float too), `bool`, `dict`, `list`,
`None`, `COUNT` (an int >= 0), `NUMBER` (a finite float), `ANY`; `[shape]` is a list of that shape;
`{"key": shape, ...}` an object with those keys (others allowed; `Opt(shape)` marks a key that may
be absent); `{str: shape}` an object whose every value has that shape; a tuple is any one of its
shapes. Each document kind declares the shape its readers need (ticdata.documents, tic_train.documents).
"""

from __future__ import annotations

import json
import math
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ticdata.errors import UserError

MAX_DOCUMENT_BYTES = 256 << 20  # far above any document tic writes; a bigger one is not one of them
COUNT = "a count (an integer >= 0)"
NUMBER = "a finite number"
ANY = "anything"


@dataclass(frozen=True)
class Opt:
    """An object key that may be absent (when present, its value has `shape`)."""

    shape: Any


def describe(shape) -> str:
    if isinstance(shape, str):
        return shape
    if shape is None:
        return "null"
    if isinstance(shape, type):
        return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
                dict: "an object", list: "a list"}.get(shape, shape.__name__)
    if isinstance(shape, list):
        plural = {str: "strings", int: "integers", float: "numbers", bool: "booleans", dict: "objects", list: "lists",
                  COUNT: "counts (integers >= 0)", NUMBER: "finite numbers"}
        inner = shape[0]
        return f"a list of {plural[inner]}" if _hashable(inner) and inner in plural else f"a list whose items are each {describe(inner)}"
    if isinstance(shape, tuple):
        return " or ".join(describe(s) for s in shape)
    if isinstance(shape, dict):
        if list(shape) == [str]:
            return f"an object whose values are each {describe(shape[str])}"
        return "an object with " + ", ".join(k for k, v in shape.items() if not isinstance(v, Opt))
    return repr(shape)


def _hashable(x) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


def _found(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fits_scalar(value, shape) -> bool:
    if shape == ANY:
        return True
    if shape == COUNT:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if shape == NUMBER:
        return _is_number(value) and math.isfinite(value)
    if shape is None:
        return value is None
    if shape is float:
        return _is_number(value)
    if shape is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(shape, type) and isinstance(value, shape)


def mismatch(value, shape, key: str = "") -> tuple[str, str] | None:
    """(the dotted key, what is wrong there) where `value` does not have `shape`; None if it does."""
    if isinstance(shape, tuple):
        if any(mismatch(value, s, key) is None for s in shape):
            return None
        return key, f"should be {describe(shape)}, found {_found(value)}"
    if isinstance(shape, list):
        if not isinstance(value, list):
            return key, f"should be {describe(shape)}, found {_found(value)}"
        for i, item in enumerate(value):
            bad = mismatch(item, shape[0], f"{key}[{i}]")
            if bad:
                return bad
        return None
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return key, f"should be {describe(shape)}, found {_found(value)}"
        if list(shape) == [str]:
            for k, v in value.items():
                bad = mismatch(v, shape[str], f"{key}.{k}" if key else k)
                if bad:
                    return bad
            return None
        for k, sub in shape.items():
            here = f"{key}.{k}" if key else k
            if k not in value:
                if isinstance(sub, Opt):
                    continue
                return here, "is missing"
            bad = mismatch(value[k], sub.shape if isinstance(sub, Opt) else sub, here)
            if bad:
                return bad
        return None
    if _fits_scalar(value, shape):
        return None
    return key, f"should be {describe(shape)}, found {_found(value)}"


def check_shape(doc, shape, path: Path | str, remedy: str):
    """`doc` itself when it has `shape`; else a UserError naming the file and the key."""
    bad = mismatch(doc, shape)
    if bad:
        key, problem = bad
        where = f"key {key!r} {problem}" if key else f"the document {problem}"
        raise UserError(f"{path}: {where}; {remedy}")
    return doc


def read_json_document(path: Path | str, shape=ANY, remedy: str = "re-create it") -> Any:
    """The JSON document at `path`, checked against `shape`. Missing, not a regular file, too big,
    not UTF-8, not JSON, nested too deep or of the wrong shape: one UserError naming the file."""
    from ticdata.objstore import location

    path = location(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UserError(f"{path}: missing; {remedy}") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror}); {remedy}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{path}: not a regular file; {remedy}")
    if st.st_size > MAX_DOCUMENT_BYTES:
        raise UserError(f"{path}: {st.st_size:,} bytes, more than any document tic writes; {remedy}")
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror}); {remedy}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}); the file is damaged; {remedy}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        what = "empty" if not text.strip() else f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        raise UserError(f"{path}: {what}; the file is damaged or truncated; {remedy}") from None
    except RecursionError:
        raise UserError(f"{path}: nested too deeply to be a document tic wrote; {remedy}") from None
    return check_shape(doc, shape, path, remedy)
