"""Checkpoints: one per benchmark step, and the in-step state that lets a killed step resume exactly.

A checkpoint folder holds
- `open_clip_model.safetensors`: the weights, loadable by
  `open_clip.create_model_and_transforms(arch, pretrained=".../open_clip_model.safetensors")`;
- `open_clip_config.json`: {"model_cfg", "preprocess_cfg"} as on the Hugging Face hub, plus the
  architecture name and the step it closes;
- `finetuned.safetensors` (Patching only): the step's fine-tuned weights before the interpolation;
- `state.pt` (in-step checkpoints only): optimizer moments, optimizer step, the next batch, RNG
  states, the step's counters; tensors, numbers and strings only, read with
  `torch.load(weights_only=True)`.
Folders are written under a temporary name and renamed, so a checkpoint is whole or absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ticdata.errors import UserError

from ticdata.storage import atomic_dir

WEIGHTS = "open_clip_model.safetensors"
CONFIG = "open_clip_config.json"
STATE = "state.pt"
FINETUNED = "finetuned.safetensors"  # Patching: the fine-tuned weights before the interpolation


def _model_config(arch: str) -> dict:
    import open_clip

    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise ValueError(f"unknown open_clip architecture {arch!r}")
    return cfg


def save_checkpoint(folder: Path, model: torch.nn.Module, arch: str, info: dict, state: dict | None = None,
                    finetuned: dict | None = None) -> None:
    """The step folder, whole or absent; `finetuned` (Patching) is the step's weights before the
    interpolation, kept as FINETUNED so another alpha can be scored without retraining."""
    from safetensors.torch import save_file

    module = getattr(model, "module", model)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    visual = getattr(module, "visual", None)
    pre = {
        "image_size": _model_config(arch)["vision_cfg"].get("image_size", 224),
        "mean": list(getattr(visual, "image_mean", None) or (0.48145466, 0.4578275, 0.40821073)),
        "std": list(getattr(visual, "image_std", None) or (0.26862954, 0.26130258, 0.27577711)),
    }
    with atomic_dir(Path(folder)) as tmp:
        save_file(tensors, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(json.dumps({"architecture": arch, "model_cfg": _model_config(arch), "preprocess_cfg": pre,
                                              "tic": info}, indent=2, sort_keys=True))
        if state is not None:
            torch.save(state, tmp / STATE)
        if finetuned is not None:
            save_file(finetuned, str(tmp / FINETUNED))


def load_weights(model: torch.nn.Module, folder: Path) -> None:
    from safetensors.torch import load_file

    sd = load_file(str(Path(folder) / WEIGHTS))
    getattr(model, "module", model).load_state_dict(sd)


def load_state(folder: Path) -> dict:
    """The in-step state, read with weights_only=True (tensors, numbers and strings only). A file that
    does not load that way is refused as it is: never retried with the unsafe option."""
    path = Path(folder) / STATE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise UserError(f"{path}: not a resume state tic can read safely ({type(e).__name__}); delete "
                        f"{Path(folder)} to restart the step from its beginning") from None
