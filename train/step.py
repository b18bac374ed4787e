"""One training run of one benchmark step: exactly the plan's batches, one optimizer update each.

The step starts from the model's current weights with a fresh optimizer (the learning rate is a
closed-form function of the batch number, tic_train.optim), or, when RUN/checkpoints/resume/ holds
this step, from there: weights, optimizer moments, next batch, RNG states and counters, so that
it ends with the weights an uninterrupted run would have (given deterministic kernels: CPU, same
thread count). That resume checkpoint is written every `checkpoint_every` updates (0: about every
5 minutes). An update may be split into `accum_freq` micro-batches (the loss stays the whole
batch's: features of the other micro-batches are computed without gradients and concatenated), and
LwF adds a distillation term to the previous step's model (the teacher). Every `log_every` updates
a line goes to RUN/log.jsonl (loss, lr, samples/s, the step's and the run's samples), and every
`val_every` samples the model is validated (tic_train.validation) without touching training state.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ticdata.errors import UserError
from ticdata.layout import RunFolder
from tic_train.checkpoint import STATE, load_state, load_weights, save_checkpoint
from tic_train.config import RunConfig
from tic_train.data import BatchDataset, StepPlan
from tic_train.env import Env, autocast, barrier, rng_state, set_rng_state
from tic_train.jsonlog import JsonlLog
from tic_train.losses import clip_loss_fn, distillation, gather
from tic_train.optim import clamp_logit_scale, lr_at, make_optimizer, set_lr
from tic_train.validation import Validator, due, validate

log = logging.getLogger(__name__)
DEFAULT_CHECKPOINT_SECONDS = 300.0


@dataclass
class StepJob:
    """What one step trains: the model (and LwF's teacher, or None), the data plan, where it writes."""

    cfg: RunConfig
    env: Env
    run: Path
    model: torch.nn.Module
    teacher: torch.nn.Module | None
    transform: Callable
    tokenizer: Callable
    plan: StepPlan
    t: int  # the step's index
    name: str  # the step's bucket name
    log: JsonlLog
    macs: int  # forward multiply-accumulates per sample
    warmup: int = 0  # optimizer steps of linear warmup (cfg.warmup_first, or warmup_later when warm-started)
    samples_before: int = 0  # samples the run trained in its earlier steps (the x axis of TensorBoard's scalars)
    validator: Validator | None = None  # scores the model every cfg.val_every samples (main process only)

    @property
    def resume_folder(self) -> Path:
        return resume_folder(self.run)

    @property
    def data(self) -> str:
        """The fingerprints of the buckets the step draws from (a resume state from other data is not used)."""
        return ",".join(b.fingerprint for b in self.plan.buckets)


def resume_folder(run: Path) -> Path:
    return RunFolder(run).resume


def train_step(job: StepJob) -> dict:
    """Train one benchmark step; returns its counters (samples, per bucket, losses, MACs, ...)."""
    cfg, env, plan, total = job.cfg, job.env, job.plan, job.plan.batches
    ddp = job.model
    if env.world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(job.model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    opt = make_optimizer(job.model, cfg.lr, cfg.weight_decay, cfg.beta1, cfg.beta2, cfg.eps)
    start, counters = _resume(job, opt)
    loss_fn = clip_loss_fn(env.rank, env.world)
    loader = _loader(job, start)
    tally = _Tally(counters)
    job.model.train()
    bar = _progress_bar(job, start)
    for n, (images, tokens, _draws, bad) in zip(range(start, total), loader):
        lr = lr_at(n, total, job.warmup, cfg.lr)
        loss = _update(job, ddp, opt, loss_fn, images.to(env.device, non_blocking=True), tokens.to(env.device, non_blocking=True), lr)
        lv = float(loss.detach())
        before = counters["samples"]
        tally.add(plan.batch(n)[0], bad, lv)  # the global batch's draws, counted once (every rank knows them)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{lv:.3f}")
        if (n + 1) % cfg.log_every == 0 or n + 1 == total:
            job.log.write(event="interval", step=job.name, step_index=job.t, batch=n + 1, batches=total, lr=lr,
                          samples=counters["samples"], global_samples=job.samples_before + counters["samples"],
                          **tally.take_interval())
        if job.validator is not None and env.main and n + 1 < total and due(cfg.val_every, before, counters["samples"]):
            tally.pause(validate(job.validator, job.model, job.log, step=job.name, step_index=job.t, samples=counters["samples"],
                                 global_samples=job.samples_before + counters["samples"], at=f"batch {n + 1}"))
        if n + 1 < total and tally.checkpoint_due(cfg.checkpoint_every, n + 1):
            _save_resume(job, opt, n + 1, tally)
    if bar is not None:
        bar.close()
    tally.add_seconds()
    counters["optimizer_steps"] = total
    factor = 3 + (1 if job.teacher is not None else 0)  # forward + backward (2x), plus the teacher's forward
    counters["estimated_macs"] = int(counters["samples"]) * job.macs * factor
    counters["macs_per_sample_forward"] = job.macs
    return counters


def _resume(job: StepJob, opt) -> tuple[int, dict]:
    """(first batch, counters): from the resume checkpoint when it holds this step, else a fresh start."""
    folder = job.resume_folder
    if (folder / STATE).exists():
        st = load_state(folder)
        try:
            same_step = int(st["step_index"]) == job.t
            if same_step and st.get("data", job.data) != job.data:  # a state saved before tic kept it: same data assumed
                log.warning("step %s: the resume state in %s was saved on other data; the step starts from its beginning",
                            job.name, folder)
                same_step = False
            if same_step:
                load_weights(job.model, folder)
                opt.load_state_dict(st["optimizer"])
                start, counters = int(st["next_batch"]), json.loads(st["counters"])
                set_rng_state(st["rng"], job.env)
        except Exception as e:  # noqa: BLE001 - a state of another shape: KeyError, ValueError, RuntimeError, ...
            raise UserError(f"{folder}: a resume state tic cannot use ({type(e).__name__}: {str(e)[:100]}); delete {folder} "
                            "to restart the step from its beginning") from None
        if same_step:
            log.info("step %s: resuming at batch %d of %d", job.name, start, job.plan.batches)
            return start, counters
    return 0, {"samples": 0, "skipped": 0, "per_bucket": [0] * len(job.plan.buckets), "loss_first": None, "seconds": 0.0}


def _loader(job: StepJob, start: int) -> torch.utils.data.DataLoader:
    """Batches `start`.. of the plan, this rank's share of each, decoded in `workers` processes."""
    cfg, env = job.cfg, job.env
    ds = BatchDataset(job.plan, job.transform, job.tokenizer, env.rank, env.world)
    return torch.utils.data.DataLoader(
        ds, batch_size=None, sampler=range(start, job.plan.batches), num_workers=cfg.workers,
        prefetch_factor=4 if cfg.workers else None, pin_memory=env.device.type == "cuda")


def _progress_bar(job: StepJob, start: int):
    """A bar on a terminal; in a log file one line every TIC_PROGRESS_SECONDS (30 s) and at the step's end."""
    if not (job.cfg.progress and job.env.main):
        return None
    from ticdata.progress import progress

    return progress(job.plan.batches, initial=start, desc=f"step {job.name}", unit="batch")


def _update(job: StepJob, ddp, opt, loss_fn, images: torch.Tensor, tokens: torch.Tensor, lr: float) -> torch.Tensor:
    """One optimizer update on this rank's share of a global batch; returns the batch's loss."""
    set_lr(opt, lr)
    opt.zero_grad(set_to_none=True)
    loss_of = _loss_of(job, loss_fn, _teacher_features(job, images, tokens))
    if job.cfg.accum_freq == 1:
        with autocast(job.cfg, job.env):
            img, txt, scale = ddp(images, tokens)
            loss = loss_of(img.float(), txt.float(), scale.float())
        loss.backward()
    else:
        loss = _accumulate(job, ddp, loss_of, images, tokens)
    opt.step()
    clamp_logit_scale(job.model)
    return loss


def _teacher_features(job: StepJob, images: torch.Tensor, tokens: torch.Tensor):
    """LwF: the teacher's (image, text, scale) on the global batch, or None without a teacher."""
    if job.teacher is None:
        return None
    with torch.no_grad(), autocast(job.cfg, job.env):
        ti, tt, ts = job.teacher(images, tokens)
    return gather(ti.float(), False), gather(tt.float(), False), ts.float()


def _loss_of(job: StepJob, loss_fn, t_feats) -> Callable:
    """The loss of (image features, text features, scale): CLIP's, plus LwF's distillation term."""
    cfg = job.cfg

    def loss_of(img, txt, scale):
        loss = loss_fn(img, txt, scale)
        if t_feats is not None:
            kd = distillation(gather(img, True), gather(txt, True), scale, *t_feats, tau=cfg.lwf_temperature)
            loss = loss + cfg.lwf_weight * kd
        return loss

    return loss_of


def _accumulate(job: StepJob, ddp, loss_of: Callable, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Gradients of the whole batch's loss in micro-batches: each one's features with gradients,
    the others' cached without, so the loss is the full batch's (open_clip's accumulation)."""
    micro = job.cfg.accum_freq
    chunks_i, chunks_t = images.chunk(micro), tokens.chunk(micro)
    with torch.no_grad(), autocast(job.cfg, job.env):
        cached = [ddp(a, b)[:2] for a, b in zip(chunks_i, chunks_t)]
    for j, (a, b) in enumerate(zip(chunks_i, chunks_t)):
        sync = ddp.no_sync() if (job.env.world > 1 and j < micro - 1) else contextlib.nullcontext()
        with sync:
            with autocast(job.cfg, job.env):
                img_j, txt_j, scale = ddp(a, b)
                img = torch.cat([c[0] for c in cached[:j]] + [img_j] + [c[0] for c in cached[j + 1:]])
                txt = torch.cat([c[1] for c in cached[:j]] + [txt_j] + [c[1] for c in cached[j + 1:]])
                loss = loss_of(img.float(), txt.float(), scale.float())
            loss.backward()
    return loss


class _Tally:
    """The step's counters (saved in the resume state, returned as the step's stats), the current
    log interval, and the clocks: seconds trained and time since the last resume checkpoint."""

    def __init__(self, counters: dict):
        self.counters = counters
        self.last_checkpoint = self.since = time.monotonic()
        self._new_interval()

    def _new_interval(self) -> None:
        self.t0, self.samples, self.loss, self.n = time.monotonic(), 0, 0.0, 0

    def add(self, batch_buckets: np.ndarray, bad, loss: float) -> None:
        c = self.counters
        for b, k in zip(*np.unique(batch_buckets, return_counts=True)):
            c["per_bucket"][int(b)] += int(k)
        c["samples"] += len(batch_buckets)
        c["skipped"] += int(bad)
        if c["loss_first"] is None:
            c["loss_first"] = loss
        c["loss_last"] = loss
        self.samples += len(batch_buckets)
        self.loss += loss
        self.n += 1

    def take_interval(self) -> dict:
        """The interval's mean loss and samples/s; a new interval starts."""
        dt = time.monotonic() - self.t0
        rec = {"loss": self.loss / self.n, "samples_per_s": self.samples / dt if dt > 0 else None}
        self._new_interval()
        return rec

    def pause(self, seconds: float) -> None:
        """Time spent on something else (validation) is neither training time nor interval time."""
        self.t0 += seconds
        self.since += seconds

    def checkpoint_due(self, every: int, done: int) -> bool:
        if every:
            return done % every == 0
        return time.monotonic() - self.last_checkpoint > DEFAULT_CHECKPOINT_SECONDS

    def add_seconds(self) -> None:
        now = time.monotonic()
        self.counters["seconds"] += now - self.since
        self.since = now


def _save_resume(job: StepJob, opt, next_batch: int, tally: _Tally) -> None:
    """The resume checkpoint: weights, and optimizer, next batch, RNG states and counters in state.pt."""
    tally.add_seconds()
    state = {"step_index": job.t, "data": job.data, "next_batch": next_batch, "optimizer": opt.state_dict(), "rng": rng_state(job.env),
             "counters": json.dumps(tally.counters)}
    if job.env.main:
        save_checkpoint(job.resume_folder, job.model, job.cfg.model, {"step": job.name, "step_index": job.t, "next_batch": next_batch},
                        state)
    barrier(job.env)
    tally.last_checkpoint = time.monotonic()
