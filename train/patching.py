"""Patching (Ilharco et al., as TiC-CLIP uses it): after fine-tuning on D_t, the step's weights are
(1 - alpha) x the previous step's + alpha x the fine-tuned ones. The trainer keeps each step's
fine-tuned weights (checkpoint.FINETUNED), so `tic eval --patching-alpha` can score other alphas
from the same run: step t at alpha' = (1 - alpha') x step t-1 as trained + alpha' x fine-tuned t,
one interpolation per step (a full chain at alpha' would need retraining, since fine-tuning t
started from step t-1 at the run's alpha)."""

from __future__ import annotations

from pathlib import Path

import torch

from ticdata.errors import UserError
from tic_train.checkpoint import FINETUNED, WEIGHTS


def interpolate(previous: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """(1 - alpha) x previous + alpha x finetuned for floating tensors; others (counters, masks) from finetuned."""
    if previous.keys() != finetuned.keys():
        raise ValueError("the two state dicts hold different tensors")
    return {k: ((1 - alpha) * previous[k] + alpha * v) if v.is_floating_point() else v for k, v in finetuned.items()}


def patched_weights(step: Path, previous: Path, alpha: float) -> dict[str, torch.Tensor]:
    """Step `step` re-interpolated at `alpha` from its saved fine-tuned weights and `previous`."""
    from safetensors.torch import load_file

    ft, prev = Path(step) / FINETUNED, Path(previous) / WEIGHTS
    for f in (ft, prev):
        if not f.is_file():
            raise UserError(f"{f}: missing; --patching-alpha needs a patching run trained by this version of tic train")
    return interpolate(load_file(str(prev)), load_file(str(ft)), alpha)
