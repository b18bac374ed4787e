"""One checked loader per JSON document of a run folder: run.json, eval/matrix.json, an eval cell.

A run folder is shared and copied like any dataset, so `tic eval` and `tic report` read it as
untrusted input: the shape each reader relies on is checked first (ticdata.shapes), and names that
become paths (buckets, methods, tasks) are checked as names, so a damaged or hostile file ends in
one line naming it and the key, never in a traceback or a write outside the output folder."""

from __future__ import annotations

import re
from pathlib import Path

from ticdata.benchmarks import check_bucket_name
from ticdata.documents import BENCHMARK_SHAPE
from ticdata.errors import UserError
from ticdata.layout import RunFolder
from ticdata.shapes import COUNT, NUMBER, Opt, read_json_document

from tic_train.methods import METHODS

TASKS = ("retrieval", "classification")
RUN_SHAPE = {
    "config": {"method": str, "model": str},
    "data": str,
    "benchmark": Opt(BENCHMARK_SHAPE),
    "buckets": {str: COUNT},
    "samples_per_step": Opt(COUNT),
    "steps": Opt({str: {"samples": Opt(COUNT), "estimated_macs": Opt(NUMBER), "gpu_hours": Opt(NUMBER)}}),
}
SCORE = (float, None)
MATRIX_SHAPE = {
    "method": str,
    "model": str,
    "run": str,
    "data": str,
    "folding": str,
    "rows": [{"checkpoint": str, "step": COUNT}],
    "columns": [{"step": str, "label": Opt(str)}],
    "column_mode": Opt(str),
    "tasks": {str: {"metric": str, "E": [[SCORE]], "metrics": {"in_domain": SCORE, "backward": SCORE, "forward": SCORE,
                                                                 "final_average": SCORE}, "in_domain_by_step": Opt([SCORE])}},
    "static": Opt({str: {"folder": str, "by_step": [SCORE]}}),
    "static_average": Opt([SCORE]),
    "compute": {"samples": NUMBER, "macs": NUMBER, "gpu_hours": Opt(NUMBER)},
    "cells": dict,
    "patching_alpha": Opt({str: {str: {"E": [[SCORE]], "metrics": {str: SCORE}}}}),
}
CELL_SHAPE = {"metrics": {str: SCORE}, "tic": Opt({"cache_key": Opt(str)})}


def known_method(name: str) -> bool:
    """A trained method, or `frozen-<label>`: an existing model scored without training (tic_train.pretrained_eval)."""
    return name in METHODS or re.fullmatch(r"frozen-[A-Za-z0-9._=+-]{1,80}", name) is not None


def load_run_doc(run: Path) -> dict:
    """RUN/run.json, checked; its bucket names and method are names tic knows how to use."""
    path = RunFolder(Path(run)).run_json
    if not path.exists() and not path.is_symlink():
        raise UserError(f"{run}: no run.json; not a `tic train` run folder")
    remedy = "restore it from a copy, or train again into a new folder (tic train ... --out NEW)"
    doc = read_json_document(path, RUN_SHAPE, remedy)
    if not known_method(doc["config"]["method"]):
        raise UserError(f"{path}: key 'config.method' names no method tic knows ({doc['config']['method'][:40]!r}); {remedy}")
    if not doc["buckets"]:
        raise UserError(f"{path}: key 'buckets' is empty; {remedy}")
    for name in doc["buckets"]:
        check_bucket_name(name, path)
    return doc


def load_matrix(run: Path) -> dict:
    """RUN/eval/matrix.json, checked for what `tic report` reads: method and task names (they name
    figure files), a square E per task with one column per step."""
    path = RunFolder(Path(run)).matrix_json
    if not path.exists() and not path.is_symlink():
        raise UserError(f"{run}: no eval/matrix.json; run `tic eval {run}` first")
    remedy = f"score the run again (tic eval {run})"
    m = read_json_document(path, MATRIX_SHAPE, remedy)
    if not known_method(m["method"]):
        raise UserError(f"{path}: key 'method' names no method tic knows ({m['method'][:40]!r}); {remedy}")
    n, cols = len(dict.fromkeys(c["step"] for c in m["columns"])), len(m["columns"])
    for task, t in m["tasks"].items():
        if task not in TASKS:
            raise UserError(f"{path}: key 'tasks.{task[:40]}' is not a task tic scores ({', '.join(TASKS)}); {remedy}")
        if len(t["E"]) != n or any(len(row) != cols for row in t["E"]):
            raise UserError(f"{path}: key 'tasks.{task}.E' is not {n} x {cols} (a row per step, a cell per column); {remedy}")
    if not m["tasks"] or not n:
        raise UserError(f"{path}: holds no scores (no tasks or no steps); {remedy}")
    return m


def load_cell(path: Path) -> dict | None:
    """A cached eval cell, or None when it is damaged (the cell is then scored again; tic_train.cells)."""
    try:
        return read_json_document(path, CELL_SHAPE)
    except UserError:
        return None
