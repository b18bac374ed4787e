"""What `tic train` checks before anything heavy is imported (torch, open_clip) and before its run
folder is made: the data folder (a curation with a manifest, the steps asked for, a compute budget,
training shards per bucket, and the held-out retrieval sets when validation is on), the run folder
(apart from the data, not a file, creatable), and TensorBoard when `report_to` asks for it. A refused
run therefore leaves no empty run folder behind and fails in about a second, not after torch loads.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ticdata.benchmarks import Benchmark, benchmark_from_manifest
from ticdata.errors import UserError
from ticdata.layout import CuratedFolder, check_apart
from ticdata.manifest import load_manifest_json
from tic_train.config import RunConfig
from tic_train.jsonlog import TENSORBOARD_EXTRA
from tic_train.shards import bucket_folders


def budget_and_steps(cfg: RunConfig, data: Path) -> tuple[Benchmark, list[str], int]:
    """(benchmark, step names, C) of the data folder, the run's steps checked against it."""
    doc = load_manifest_json(data)
    bench = benchmark_from_manifest(doc, CuratedFolder(data).manifest_json)
    names = list(doc.get("buckets") or {})
    if not names:
        raise UserError(f"{data}/manifest.json: lists no buckets")
    unknown = [s for s in cfg.steps if s not in names]
    if unknown:
        raise UserError(f"steps {unknown}: not buckets of {data} ({', '.join(names)})")
    C = cfg.samples_per_step or int(bench.compute.get("samples_per_step", 0))
    if C <= 0:
        raise UserError(f"no compute budget: set samples_per_step (the benchmark {bench.name} has no [compute] samples_per_step)")
    return bench, names, C


def check_tensorboard() -> None:
    """TensorBoard is importable (torch.utils.tensorboard needs the `tensorboard` package)."""
    try:
        found = importlib.util.find_spec("tensorboard") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UserError(f"--report-to tensorboard: the tensorboard package is not installed; {TENSORBOARD_EXTRA}")


def check_out_path(out: Path, flag: str = "--out") -> None:
    """The run folder can be made or used, checked without making it: not a file, and the nearest
    existing folder on its path is a folder this process may write in."""
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise UserError(f"{flag} {out}: a file is in the way, not a folder; choose another folder")
        where = out
    else:
        where = out.parent
        while not where.exists() and where != where.parent:
            where = where.parent
        if not where.is_dir():
            raise UserError(f"{flag} {out}: {where} is a file, not a folder; choose another folder")
    if not os.access(where, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {out}: cannot write the output folder here ({where} is not writable); choose another folder")


def preflight(cfg: RunConfig) -> tuple[Benchmark, list[str], int]:
    """Every check of a run that needs no model and writes nothing; returns budget_and_steps()."""
    data, run = Path(cfg.data), Path(cfg.out)
    if cfg.tensorboard:
        check_tensorboard()
    if not data.is_dir():
        raise UserError(f"--data {data}: {'not a folder' if data.exists() else 'no such folder'}; give a folder after tic evalsets")
    bench, names, C = budget_and_steps(cfg, data)
    todo = [n for n in names if not cfg.steps or n in cfg.steps]
    bucket_folders(CuratedFolder(data).train_shards, names)
    if cfg.validates:
        for n in todo:
            folder = CuratedFolder(data).eval_set(n, "retrieval")
            if not (folder / "test" / "nshards.txt").is_file():
                raise UserError(f"{folder}: missing; validation (--val, --val-every) scores each step's held-out retrieval "
                                f"set: run `tic evalsets {data}` first")
    check_apart(run, {"data folder": data})
    check_out_path(run)
    return bench, names, C
