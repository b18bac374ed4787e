"""The synthetic world is learnable and it drifts, shown with the product's own trainer and
evaluator: `tic train` (sequential, its first step only) takes a tiny CLIP from random init on the
first bucket's training pairs of the shared world folder, and `tic eval` then finds it retrieving
that bucket's held-out pairs far above chance, and the last bucket's much worse (new looks, new
backgrounds, new concepts)."""

from __future__ import annotations

import json

import pytest

from tic_train.config import load_config
from tic_train.evaluate import evaluate_run
from tic_train.loop import run_training

FIRST, LAST = "2014-2016", "2021-2022"


@pytest.mark.slow
def test_tiny_clip_learns_the_first_step_and_drift_hurts_it_later(world_folder, tmp_path):
    run = tmp_path / "run"
    # 6,400 samples (100 updates of 64) over the first bucket's ~300 training pairs; 1 thread and 1 loader
    # worker, so the result is the same on every run of the test
    cfg = load_config(None, dict(data=str(world_folder), out=str(run), method="sequential", steps=(FIRST,), samples_per_step=6400,
                                 batch_size=64, lr=2e-3, warmup=10, weight_decay=0.1, workers=1, threads=1, progress=False))
    step = run_training(cfg)["steps"][FIRST]
    m = evaluate_run(run, device="cpu", progress=False)
    columns = [c["step"] for c in m["columns"]]
    first, last = columns.index(FIRST), columns.index(LAST)
    retrieval = m["tasks"]["retrieval"]["E"][first]  # the first step's model on every step's held-out retrieval set
    classification = m["tasks"]["classification"]["E"][first]
    assert all(v is None for row in m["tasks"]["retrieval"]["E"][1:] for v in row)  # no other step was trained
    cell = next((run / "eval" / "cells" / f"step-00-{FIRST}").glob(f"dyn-{FIRST}-retrieval.*.json"))
    held_out = json.loads(cell.read_text())["tic"]["samples"]
    chance = 1 / held_out
    print(f"\ntiny CLIP, tic train on {FIRST} ({step['samples']:,} samples, {step['optimizer_steps']} updates, "
          f"{step['seconds']:.0f} s): loss {step['loss_first']:.2f} -> {step['loss_last']:.2f}; recall@1 on {held_out} held-out "
          f"pairs: first step {retrieval[first]:.3f}, last step {retrieval[last]:.3f} (chance {chance:.3f}); zero-shot top-1 "
          f"{classification[first]:.3f} -> {classification[last]:.3f}")
    assert held_out >= 48  # a set large enough for recall@1 to mean something
    assert step["loss_last"] < 0.5 * step["loss_first"]
    assert retrieval[first] >= 10 * chance  # learnable: far above chance on unseen pairs of the same step
    assert retrieval[last] <= 0.7 * retrieval[first]  # drift: the same model is much worse on the last step
    assert classification[last] < classification[first]
