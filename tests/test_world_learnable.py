"""The synthetic world is learnable and it drifts: a tiny CLIP trained from random init on the first
step's pairs retrieves that step's held-out images far above chance, and the same model does much
worse on the last step's held-out pairs (new looks, new backgrounds, new concepts)."""

from __future__ import annotations

import random
import time

import pytest
import torch

from ticdata.synth import world as W
from train import tiny

HELD_OUT = 300
WORLD_SEED = 0
TRAIN = tiny.TrainConfig(steps=200, batch_size=256, lr=2e-3, weight_decay=0.1, warmup=20, seed=0)


def _split(pairs, held_out: int, seed: int):
    idx = list(range(len(pairs)))
    random.Random(seed).shuffle(idx)
    return [pairs[i] for i in idx[held_out:]], [pairs[i] for i in idx[:held_out]]


@pytest.mark.slow
def test_tiny_clip_learns_the_first_step_and_drift_hurts_it_later():
    threads = tiny.fastest_threads(2)
    started = time.monotonic()
    model, preprocess, tokenizer = tiny.create_model(seed=0)
    n_steps = len(W.world(WORLD_SEED).step_names)
    train, held = _split(W.step_pairs(WORLD_SEED, 0), HELD_OUT, seed=1)
    _, held_last = _split(W.step_pairs(WORLD_SEED, n_steps - 1), HELD_OUT, seed=2)
    assert len(train) == W.PAIRS_PER_STEP - HELD_OUT

    x, texts = tiny.render_pairs(train, WORLD_SEED, preprocess)
    assert x.shape == (len(train), 3, 32, 32)
    hx, htexts = tiny.render_pairs(held, WORLD_SEED, preprocess)
    lx, ltexts = tiny.render_pairs(held_last, WORLD_SEED, preprocess)
    rendered = time.monotonic()

    losses = tiny.train_clip(model, x, tokenizer(texts), TRAIN)
    trained = time.monotonic()
    r_first = tiny.recall_at_1(model, hx, tokenizer(htexts))
    r_last = tiny.recall_at_1(model, lx, tokenizer(ltexts))
    chance = 1 / HELD_OUT
    print(
        f"\ntiny CLIP on world seed {WORLD_SEED}, {len(train)} pairs of step 0, {TRAIN.steps} steps x {TRAIN.batch_size} "
        f"({threads} thread(s)): loss {losses[0]:.2f} -> {losses[-1]:.2f}; text-to-image recall@1 on {HELD_OUT} held-out "
        f"pairs: first step {r_first:.3f}, last step {r_last:.3f} (chance {chance:.4f}); "
        f"render {rendered - started:.0f}s, train {trained - rendered:.0f}s"
    )
    assert losses[-1] < 0.5 * losses[0]
    assert r_first >= 10 * chance
    assert r_last <= 0.7 * r_first
    assert torch.isfinite(torch.tensor(losses)).all()
