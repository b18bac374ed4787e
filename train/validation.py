"""Validation during `tic train` (`--val`, `--val-every N`): the model being trained scored on the
current step's held-out retrieval set (DATA/eval/<bucket>/retrieval, `tic evalsets`) with the
functions of `tic eval` (tic_train.evaluate), so the end-of-step numbers are the ones `tic eval`
gives that step's checkpoint. The scores go to RUN/log.jsonl as `"event": "val"` lines (and to
TensorBoard when it is on).

Validation leaves training exactly as it would be without it: it runs under no_grad in eval mode
(the mode is restored), on a fork of torch's RNG (the CPU generator and the device's are restored),
in the main process only, and its time is not counted as training time; so a run's weights are
bit-identical with validation on or off.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from ticdata.layout import CuratedFolder

log = logging.getLogger(__name__)
VAL_BATCH = 256  # images or texts per forward pass: `tic eval`'s default, so its numbers are reproduced


class Validator:
    """Scores a model on one bucket's held-out retrieval set; the set is read once, lazily."""

    def __init__(self, data: Path, bucket: str, device: torch.device, tokenizer, batch: int = VAL_BATCH):
        self.folder = CuratedFolder(Path(data)).eval_set(bucket, "retrieval")
        self.bucket, self.device, self.tokenizer, self.batch = bucket, device, tokenizer, batch
        self.key = f"dyn-{bucket}-retrieval"
        self._set = None
        self._preprocess = None

    def _load(self, module) -> None:
        from open_clip.transform import PreprocessCfg, image_transform_v2

        from tic_train.evaluate import read_wds_set

        self._set = read_wds_set(self.folder, self.key, self.bucket)
        # open_clip's validation transform, as create_model_and_transforms builds it for `tic eval`
        self._preprocess = image_transform_v2(PreprocessCfg(**module.visual.preprocess_cfg), is_train=False)

    def score(self, model: torch.nn.Module) -> tuple[dict, float]:
        """(metrics, seconds) of the model on the set; the model's mode and torch's RNG unchanged."""
        from tic_train.evaluate import encode_set_images, score_images

        t0 = time.monotonic()
        module = getattr(model, "module", model)
        if self._set is None:
            self._load(module)
        was_training = module.training
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            module.eval()
            try:
                img = encode_set_images(module, self._set, self._preprocess, self.device, self.batch)
                metrics = score_images(module, self.tokenizer, img, self._set, self.device, self.batch)
            finally:
                module.train(was_training)
        return metrics, time.monotonic() - t0


def due(every: int, before: int, after: int) -> bool:
    """A multiple of `every` samples was reached by the batch that took the step from `before` to `after`."""
    return every > 0 and after // every > before // every


def validate(validator: Validator, model, jlog, *, step: str, step_index: int, samples: int, global_samples: int,
             at: str) -> float:
    """Score, log (log.jsonl "val" line and TensorBoard), return the seconds it took."""
    metrics, seconds = validator.score(model)
    jlog.write(event="val", at=at, step=step, step_index=step_index, set=validator.key, samples=samples,
               global_samples=global_samples, metrics=metrics, seconds=round(seconds, 3))
    log.info("step %s: validation at %s samples (%s): retrieval recall@1 %.3f", step, f"{samples:,}", at,
             metrics.get("retrieval_recall@1", float("nan")))
    return seconds
