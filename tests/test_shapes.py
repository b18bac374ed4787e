"""ticdata.shapes: the checker every document loader uses names the exact key that is wrong, and
reading a document never ends in anything but one UserError naming the file."""

from __future__ import annotations

import math
import os

import pytest

from ticdata.errors import UserError
from ticdata.shapes import COUNT, NUMBER, Opt, mismatch, read_json_document

SHAPE = {"name": str, "steps": [{"name": str, "years": [int]}], "sizes": {str: COUNT}, "lr": Opt(NUMBER),
         "score": (float, None)}
GOOD = {"name": "x", "steps": [{"name": "a", "years": [2014]}], "sizes": {"0.tar": 3}, "score": None}


@pytest.mark.parametrize("change, key", [
    (lambda d: d.pop("name"), "name"),
    (lambda d: d["steps"][0].update(years=[2014, "2015"]), "steps[0].years[1]"),
    (lambda d: d["steps"].append("x"), "steps[1]"),
    (lambda d: d["sizes"].update({"1.tar": -1}), "sizes.1.tar"),
    (lambda d: d["sizes"].update({"1.tar": True}), "sizes.1.tar"),  # a bool is not a count
    (lambda d: d.update(lr=math.nan), "lr"),
    (lambda d: d.update(lr=math.inf), "lr"),
    (lambda d: d.update(score="high"), "score"),
])
def test_the_wrong_key_is_named(change, key):
    doc = {k: (v.copy() if isinstance(v, dict) else [dict(s, years=list(s["years"])) for s in v] if k == "steps" else v)
           for k, v in GOOD.items()}
    assert mismatch(doc, SHAPE) is None
    change(doc)
    bad = mismatch(doc, SHAPE)
    assert bad is not None and bad[0] == key, bad


def test_optional_keys_may_be_absent_and_extra_keys_are_allowed():
    assert mismatch(GOOD | {"extra": [1, 2]}, SHAPE) is None
    assert mismatch(GOOD | {"lr": 5e-4}, SHAPE) is None and mismatch(GOOD | {"score": 3}, SHAPE) is None


def test_reading_a_document_fails_in_one_line_naming_the_file(tmp_path):
    cases = {
        "missing.json": None,
        "empty.json": b"",
        "cut.json": b'{"name": "x", "ste',
        "latin1.json": b'{"name": "caf\xe9"}',
        "deep.json": b"[" * 100_000 + b"]" * 100_000,
        "shape.json": b'{"name": 3}',
    }
    for name, data in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(UserError) as e:
            read_json_document(tmp_path / name, {"name": str}, "make it again")
        assert str(e.value).startswith(str(tmp_path / name)) and "make it again" in str(e.value) and "\n" not in str(e.value)
    os.mkfifo(tmp_path / "fifo.json")
    with pytest.raises(UserError, match="not a regular file"):
        read_json_document(tmp_path / "fifo.json")
    assert read_json_document(tmp_path / "shape.json") == {"name": 3}  # no shape asked for: any JSON
