"""A small synthetic world taken through the whole data pipeline, for the trainer's tests:
world -> served on 127.0.0.1 -> curated into the demo benchmark's 5 buckets -> downloaded ->
eval sets and training shards (DIR/train/shards).

The test session builds it once (the `world_folder` fixture of conftest.py, WORLD_PAIRS pairs per
step, WORLD_RETRIEVAL held-out retrieval pairs per bucket: enough for the learnability test's
claim, ~300 training pairs and 64 held-out pairs in each bucket); tests read it and never write to
it (runs go to their own folders)."""

from __future__ import annotations

from pathlib import Path

from ticdata.curate import CurateConfig, curate
from ticdata.download import DownloadConfig, download
from ticdata.evalsets import EvalConfig, build_evalsets
from ticdata.executor import InlineExecutor
from ticdata.fetch import FetchPolicy
from ticdata.serve import ImageServer
from ticdata.synth.world import make_world

WORLD_PAIRS = 400
WORLD_RETRIEVAL = 64


def build_world_folder(root: Path, pairs_per_step: int = 160, retrieval: int = 16) -> Path:
    with ImageServer() as server:
        make_world(root / "world", base_url=server.url, pairs_per_step=pairs_per_step, fail_share=0.0, link_rot=False)
        out = root / "cur"
        curate(CurateConfig(inputs=(str(root / "world"),), out=out, benchmark="demo", progress=False), InlineExecutor())
        download(DownloadConfig(dir=out, image_size=64, samples_per_shard=64, threads=8, timeout=3.0, progress=False,
                                policy=FetchPolicy(allow_private_hosts=True)), InlineExecutor())
    build_evalsets(EvalConfig(dir=out, retrieval=retrieval, per_class=2, samples_per_shard=64, progress=False), InlineExecutor())
    return out


SMALL_STEPS = ("2014-2016", "2017-2018")


def build_small_run(root: Path) -> tuple[Path, Path]:
    """(curated folder, run folder): 40 pairs per step, 8 retrieval pairs per bucket, and a tic-tiny
    run of two steps of 32 samples, evaluated. About 20 s on two cores."""
    from tic_train.config import load_config
    from tic_train.evaluate import evaluate_run
    from tic_train.loop import run_training

    cur = build_world_folder(root, pairs_per_step=40, retrieval=8)
    run = root / "run"
    cfg = load_config(None, {"data": str(cur), "out": str(run), "samples_per_step": 32, "batch_size": 16, "workers": 0,
                             "warmup": 1, "steps": ",".join(SMALL_STEPS), "progress": False, "device": "cpu"})
    run_training(cfg)
    evaluate_run(run, device="cpu", progress=False)
    return cur, run


def copy_small_run(src: tuple[Path, Path], dst: Path) -> tuple[Path, Path]:
    """A private copy of `small_run` under dst whose run.json and matrix.json point at the copy's data."""
    import json
    import shutil

    cur, run = dst / "cur", dst / "run"
    shutil.copytree(src[0], cur, symlinks=True)
    shutil.copytree(src[1], run, symlinks=True)
    for doc_path in (run / "run.json", run / "eval" / "matrix.json"):
        doc = json.loads(doc_path.read_text())
        doc["data"] = str(cur)
        doc_path.write_text(json.dumps(doc, indent=2))
    return cur, run
