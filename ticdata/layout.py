"""Every path of a curated folder and of a training run, named once.

A curated folder (what `tic curate` writes and the later verbs add to):

    DIR/manifest/year=YYYY/part-*.parquet     the manifest (Hive-partitioned by year)
    DIR/manifest.json                         counts, buckets, ledger, what each verb added
    DIR/shards/<bucket>/NNNNNNNN.tar          images (tic download / tic reshard --out DIR)
    DIR/shards/<bucket>/sizes.json            samples per tar, as open_clip reads it
    DIR/reshard.json                          what tic reshard wrote (a reshard's OUT)
    DIR/eval/<bucket>/<retrieval|classification>/   held-out sets (tic evalsets)
    DIR/eval/evalsets.json
    DIR/train/shards/<bucket>/                training shards without held-out rows
    DIR/.tic/<verb>/                          a running job's state (plan, completions, work)
    DIR/.tic/<verb>.done.json                 the mark of a finished job (its plan fingerprint)

A run folder (tic train, tic eval):

    RUN/run.json, RUN/log.jsonl
    RUN/checkpoints/step-NN-<bucket>/         one checkpoint per benchmark step
    RUN/checkpoints/resume/                   the in-step state of an unfinished step
    RUN/cache/index/<bucket>/                 tar indexes for random access
    RUN/eval/matrix.json, RUN/eval/cells/<checkpoint>/*.json

Bucket names come from benchmark definitions, manifest.json and uid file names, all of which a
user can edit: every path below a bucket is built by `bucket_dir`, which checks the name with
`ticdata.benchmarks.check_bucket_name`, so no bucket can name a path outside its folder.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ticdata.benchmarks import check_bucket_name
from ticdata.errors import UserError
from ticdata.objstore import location

MANIFEST_DIR = "manifest"
MANIFEST_JSON = "manifest.json"
SHARDS_DIR = "shards"
SIZES_JSON = "sizes.json"
RESHARD_JSON = "reshard.json"
EVAL_DIR = "eval"
EVALSETS_JSON = "evalsets.json"
TRAIN_DIR = "train"
STATE_DIR = ".tic"
SHARD_DIGITS = 8
STEP_FOLDER = re.compile(r"step-(\d{2,})-[A-Za-z0-9][A-Za-z0-9._=+-]{0,99}")


def shard_name(shard: int) -> str:
    """`00000012.tar`: the name of a bucket's shard number `shard`."""
    return f"{shard:0{SHARD_DIGITS}d}.tar"


def bucket_dir(root: Path, bucket: str) -> Path:
    """root/<bucket>, once the name is checked (no separators, no '..', no absolute path)."""
    return Path(root) / check_bucket_name(bucket)


def check_apart(out: Path, inputs: dict[str, Path], flag: str = "--out") -> None:
    """An output folder equal to, inside or containing an input folder is refused before anything
    is touched: a verb never deletes or rewrites its input. `inputs` names each input's role."""
    o = Path(os.path.realpath(out))
    for role, p in inputs.items():
        i = Path(os.path.realpath(p))
        if o == i or o.is_relative_to(i) or i.is_relative_to(o):
            how = "is" if o == i else "is inside" if o.is_relative_to(i) else "contains"
            raise UserError(f"{flag} {out}: {how} the {role} {p}; choose a folder apart from the inputs (they are never changed)")


def state_dir(out: Path, verb: str) -> Path:
    """OUT/.tic/<verb>: a job's plan, completion markers and intermediate files."""
    return location(out) / STATE_DIR / verb


def done_mark(out: Path, verb: str) -> Path:
    """OUT/.tic/<verb>.done.json: written last by a finished job."""
    return location(out) / STATE_DIR / f"{verb}.done.json"


@dataclass(frozen=True)
class ShardsFolder:
    """Per-bucket webdataset shards under `root` (DIR/shards, DIR/train/shards, OUT/shards)."""

    root: Path

    def bucket(self, name: str) -> Path:
        return bucket_dir(self.root, name)

    def sizes_json(self, name: str) -> Path:
        return self.bucket(name) / SIZES_JSON

    def tar(self, name: str, shard: int) -> Path:
        return self.bucket(name) / shard_name(shard)


@dataclass(frozen=True)
class CuratedFolder:
    """The paths of one curated folder."""

    root: Path

    @property
    def manifest_dir(self) -> Path:
        return self.root / MANIFEST_DIR

    @property
    def manifest_json(self) -> Path:
        return self.root / MANIFEST_JSON

    def year_dir(self, year: int) -> Path:
        return self.manifest_dir / f"year={year}"

    def manifest_files(self) -> list[Path]:
        return sorted(self.manifest_dir.glob("year=*/*.parquet"))

    @property
    def shards(self) -> ShardsFolder:
        return ShardsFolder(self.root / SHARDS_DIR)

    @property
    def reshard_json(self) -> Path:
        return self.root / RESHARD_JSON

    @property
    def eval_dir(self) -> Path:
        return self.root / EVAL_DIR

    def eval_set(self, bucket: str, kind: str) -> Path:
        return bucket_dir(self.eval_dir, bucket) / kind

    @property
    def evalsets_json(self) -> Path:
        return self.eval_dir / EVALSETS_JSON

    @property
    def train_dir(self) -> Path:
        """DIR/train: the reshard of the training rows (its own reshard.json and job state)."""
        return self.root / TRAIN_DIR

    @property
    def train_shards(self) -> ShardsFolder:
        return ShardsFolder(self.train_dir / SHARDS_DIR)

    def state(self, verb: str) -> Path:
        return state_dir(self.root, verb)


@dataclass(frozen=True)
class RunFolder:
    """The paths of one training run."""

    root: Path

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def log_jsonl(self) -> Path:
        return self.root / "log.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def step_checkpoint(self, index: int, bucket: str) -> Path:
        return self.checkpoints / f"step-{index:02d}-{check_bucket_name(bucket)}"

    def step_checkpoints(self) -> list[Path]:
        """The step folders `tic train` writes (step-NN-<bucket>), in step order; anything else
        under checkpoints/ (a stray file, `resume`, a hand-made `step-x`) is not one."""
        return sorted(p for p in self.checkpoints.glob("step-*") if STEP_FOLDER.fullmatch(p.name) and p.is_dir())

    @property
    def resume(self) -> Path:
        return self.checkpoints / "resume"

    def index_cache(self, bucket: str | None = None) -> Path:
        root = self.root / "cache" / "index"
        return root if bucket is None else bucket_dir(root, bucket)

    @property
    def eval_dir(self) -> Path:
        return self.root / EVAL_DIR

    @property
    def matrix_json(self) -> Path:
        return self.eval_dir / "matrix.json"

    def cells(self, checkpoint: str) -> Path:
        return self.eval_dir / "cells" / checkpoint


def part_year(path: Path) -> int:
    """The year of a manifest file, from its Hive folder (manifest/year=YYYY/part.parquet)."""
    return int(Path(path).parent.name.split("=", 1)[1])
