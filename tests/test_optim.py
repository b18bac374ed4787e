"""TiC-CLIP's optimizer settings and the closed-form schedule a warm start restarts."""

from __future__ import annotations

import math

import torch

from tic_train.optim import LOGIT_SCALE_MAX, clamp_logit_scale, lr_at, make_optimizer, set_lr
from tic_train.tiny import create_model


def _model():
    m = create_model(seed=0)
    return m[0] if isinstance(m, tuple) else m


def test_weight_decay_spares_gains_biases_and_logit_scale():
    model = _model()
    opt = make_optimizer(model, lr=1e-3)
    keep, decay = opt.param_groups
    assert (keep["weight_decay"], decay["weight_decay"]) == (0.0, 0.2)
    assert opt.defaults["betas"] == (0.9, 0.98) and opt.defaults["eps"] == 1e-6
    names = {id(p): n for n, p in model.named_parameters()}
    kept = {names[id(p)] for p in keep["params"]}
    assert "logit_scale" in kept
    decayed = {names[id(p)] for p in decay["params"]}
    assert all(p.ndim >= 2 for p in decay["params"])  # matrices: weights, embeddings, projections
    assert not any(n.endswith(".bias") or "ln" in n or "logit_scale" in n for n in decayed)
    assert {"text_projection", "visual.proj", "positional_embedding"} <= decayed
    assert any(n.endswith(".bias") for n in kept) and any("ln" in n for n in kept)
    assert len(keep["params"]) + len(decay["params"]) == len(list(model.parameters()))


def test_schedule_is_warmup_then_cosine_and_a_new_optimizer_starts_empty():
    lr, total, warm = 1e-3, 100, 10
    assert math.isclose(lr_at(0, total, warm, lr), lr / 10)
    assert math.isclose(lr_at(9, total, warm, lr), lr)
    assert math.isclose(lr_at(55, total, warm, lr), lr / 2)
    assert lr_at(99, total, warm, lr) < 1e-6 and lr_at(150, total, warm, lr) == 0.0
    model = _model()
    opt = make_optimizer(model, lr)
    model.logit_scale.grad = torch.ones_like(model.logit_scale)
    for p in model.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    set_lr(opt, lr_at(0, total, warm, lr))
    opt.step()
    assert len(opt.state) > 0
    fresh = make_optimizer(model, lr)  # a warm start: weights kept, optimizer and schedule reset
    assert len(fresh.state) == 0
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    clamp_logit_scale(model)
    assert math.isclose(model.logit_scale.item(), LOGIT_SCALE_MAX, rel_tol=1e-6)
