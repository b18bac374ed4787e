"""A tiny open_clip model on the synthetic world, in memory: the helpers that show, on a CPU in a
minute, that the world is learnable and that it drifts.

- `create_model(seed)`: the `tic-tiny` config (train/model_configs/tic-tiny.json: embed 64, a
  2-layer ViT at 32 px with 8 px patches, a 2-layer text tower, ~3.4M parameters), random init.
- `render_pairs(pairs, world_seed, preprocess)`: the world's JPEGs (as the server sends them),
  decoded and passed through the model's eval preprocessing (resize to 32 px, normalise).
- `train_clip(...)`: ClipLoss + AdamW, the learning rate a closed-form function of the step.
- `recall_at_1(...)`: text-to-image recall@1 within a held-out set.

No weights or data are downloaded: the model starts from random init and the images are rendered.
"""

from __future__ import annotations

import io
import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

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


def render_pairs(pairs: Sequence[tuple[int, int, int]], world_seed: int, preprocess: Callable, size: int = 64) -> tuple[torch.Tensor, list[str]]:
    """Images (N, 3, H, W) after `preprocess` and captions of the world's pairs (year, concept, instance)."""
    from PIL import Image

    from ticdata.synth.world import caption, render

    images, texts = [], []
    for year, concept, instance in pairs:
        with Image.open(io.BytesIO(render(world_seed, year, concept, instance, size))) as im:
            images.append(preprocess(im.convert("RGB")))
        texts.append(caption(world_seed, year, concept, instance))
    return torch.stack(images), texts


def fastest_threads(max_threads: int = 2) -> int:
    """Set and return the torch thread count (1..max_threads) that runs a tiny-model-sized matmul
    fastest here. On a machine where another process keeps a core busy, OpenMP's extra thread
    makes small ops ~10x slower rather than faster; this notices and falls back."""
    import time

    a, b = torch.randn(4096, 64), torch.randn(64, 256)
    best, best_t = 1, float("inf")
    for n in range(1, max(1, max_threads) + 1):
        torch.set_num_threads(n)
        a @ b  # warm up the pool
        t0 = time.perf_counter()
        for _ in range(30):
            a @ b
        dt = time.perf_counter() - t0
        if dt < best_t * 0.9:  # a second thread must pay for itself
            best, best_t = n, dt
    torch.set_num_threads(best)
    return best


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 600
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 30
    seed: int = 0


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to zero."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train_clip(model, images: torch.Tensor, tokens: torch.Tensor, cfg: TrainConfig = TrainConfig()) -> list[float]:
    """Train in place on (images, tokens) with shuffled batches; returns the loss of every step."""
    import open_clip

    if len(images) != len(tokens):
        raise ValueError(f"{len(images)} images but {len(tokens)} captions")
    loss_fn = open_clip.ClipLoss()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(images)
    bs = min(cfg.batch_size, n)
    order = torch.randperm(n, generator=gen)
    at = 0
    losses = []
    model.train()
    for step in range(cfg.steps):
        if at + bs > n:
            order, at = torch.randperm(n, generator=gen), 0
        idx = order[at : at + bs]
        at += bs
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        img_f, txt_f, scale = model(images[idx], tokens[idx])
        loss = loss_fn(img_f, txt_f, scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def encode(model, images: torch.Tensor, tokens: torch.Tensor, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised image and text embeddings."""
    model.eval()
    img = torch.cat([model.encode_image(images[i : i + batch]) for i in range(0, len(images), batch)])
    txt = torch.cat([model.encode_text(tokens[i : i + batch]) for i in range(0, len(tokens), batch)])
    return F.normalize(img, dim=-1), F.normalize(txt, dim=-1)


@torch.no_grad()
def recall_at_1(model, images: torch.Tensor, tokens: torch.Tensor) -> float:
    """Text-to-image recall@1: the share of captions whose own image ranks first among all images."""
    img, txt = encode(model, images, tokens)
    top = (txt @ img.T).argmax(dim=1)
    return float((top == torch.arange(len(txt))).float().mean())
