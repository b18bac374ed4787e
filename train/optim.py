"""The optimizer and learning-rate schedule of every training step (TiC-CLIP's settings).

AdamW with beta2 0.98 and eps 1e-6; weight decay (0.2 by default) on weight matrices only: gains,
biases, norms and `logit_scale` (every parameter with fewer than 2 dimensions, as open_clip's
trainer decides) get none. The learning rate is a closed-form function of the optimizer step:
linear warmup to `lr` over `warmup` steps, then cosine decay to 0 at `total` steps, so a resumed
step needs no scheduler state and a warm-started step begins a new warmup. After each update
`logit_scale` is clamped to [0, ln 100], as open_clip does.
"""

from __future__ import annotations

import math

import torch

LOGIT_SCALE_MAX = math.log(100.0)


def no_decay(name: str, param: torch.nn.Parameter) -> bool:
    """Gains, biases, norms and the temperature: parameters weight decay must not shrink."""
    return param.ndim < 2 or "logit_scale" in name or name.endswith(".bias") or ".ln" in name or "bn" in name


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, keep = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (keep if no_decay(name, p) else decay).append(p)
    return [{"params": keep, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float = 0.2, beta1: float = 0.9,
                   beta2: float = 0.98, eps: float = 1e-6) -> torch.optim.AdamW:
    """A fresh AdamW (warm start and restart alike begin with empty moments)."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(beta1, beta2), eps=eps)


def lr_at(step: int, total: int, warmup: int, lr: float) -> float:
    """The learning rate of optimizer step `step` (0-based) of a `total`-step run."""
    if step < warmup:
        return lr * (step + 1) / warmup
    span = max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, span) / span)) * lr


def set_lr(optimizer: torch.optim.Optimizer, value: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = value


@torch.no_grad()
def clamp_logit_scale(model: torch.nn.Module) -> None:
    scale = getattr(model, "logit_scale", None)
    if scale is not None:
        scale.clamp_(0, LOGIT_SCALE_MAX)
