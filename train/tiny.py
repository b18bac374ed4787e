"""The shipped tiny open_clip architecture `tic-tiny` (train/model_configs/tic-tiny.json: embed 64,
a 2-layer ViT at 32 px with 8 px patches, a 2-layer text tower, ~3.4M parameters), for CPU runs.

- `register_configs()`: make `tic-tiny` known to open_clip (the trainer, the evaluator and the
  scripts that run open_clip's or CLIP_benchmark's own command lines call it first).
- `quiet_model_creation()`: build a model without open_clip's "no pretrained weights" warning.
- `create_model(seed)`: a randomly initialised tic-tiny (the trainer's init for the same seed).

No weights are downloaded: models start from random init.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import torch

MODEL_NAME = "tic-tiny"
CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"


def register_configs() -> None:
    """Make `tic-tiny` known to open_clip (idempotent)."""
    import open_clip

    if MODEL_NAME not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_DIR)


@contextmanager
def quiet_model_creation():
    """Silence the root logger below ERROR while open_clip builds a model: it warns that no
    pretrained weights were loaded, which for random init (and for tic's own checkpoints) is noise."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def create_model(seed: int = 0, name: str = MODEL_NAME):
    """(model, eval preprocess, tokenizer) of a randomly initialised tiny CLIP, fp32 on the CPU."""
    import open_clip

    register_configs()
    torch.manual_seed(seed)
    with quiet_model_creation():
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None, precision="fp32", device="cpu")
    return model, preprocess, open_clip.get_tokenizer(name)
