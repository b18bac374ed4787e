"""`tic train`: the steps of a benchmark, one training run each, under one compute budget per step.

For each step t of the benchmark (buckets in order), the method (train.mixture) decides the
initial weights (random, or the previous step's checkpoint: a warm start loads weights only, with a
fresh optimizer and a new warmup + cosine schedule) and the data mixture; the step then draws
exactly its budget of samples (C; Oracle T x C, once) in batches, and writes its checkpoint
RUN/checkpoints/step-NN-<name>/. A killed step resumes from RUN/checkpoints/resume/ (weights,
optimizer, optimizer step, next batch, RNG states, counters) and ends with the weights an
uninterrupted run would have (given deterministic kernels: CPU, same thread count).

RUN/log.jsonl: one line per `log_every` optimizer steps (loss, lr, samples/s) and one per finished
step (samples seen, optimizer steps, estimated MACs, draws per bucket, skipped samples).
RUN/run.json: the config, the benchmark's buckets and sizes, and every finished step.
Several processes (torchrun; gloo on CPU, NCCL on GPU) split each global batch; rank 0 writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ticdata.benchmarks import benchmark_from_manifest
from ticdata.errors import UserError
from ticdata.manifest import MANIFEST_JSON, load_manifest_json
from ticdata.storage import write_json_atomic
from train.checkpoint import load_state, load_weights, save_checkpoint
from train.config import RunConfig
from train.data import BatchDataset, StepPlan
from train.losses import clip_loss_fn, distillation, gather
from train.mixture import WARM_START, budget_of, mixture
from train.optim import clamp_logit_scale, lr_at, make_optimizer, set_lr
from train.shards import open_buckets

log = logging.getLogger(__name__)
RESUME = "resume"
DEFAULT_CHECKPOINT_SECONDS = 300.0
# settings a rerun (a resume) may change: they do not change what is trained
RERUN_MAY_CHANGE = {"progress", "workers", "checkpoint_every", "log_every", "threads", "deterministic"}


@dataclass
class Env:
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_env(cfg: RunConfig) -> Env:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    want_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if want_cuda else "gloo")
        rank = dist.get_rank()
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(f"cuda:{local}") if want_cuda else torch.device("cpu")
        if want_cuda:
            torch.cuda.set_device(device)
        return Env(device, rank, world)
    return Env(torch.device("cuda" if want_cuda else "cpu"))


def build_model(cfg: RunConfig, seed: int, device: torch.device):
    """(model, train transform, tokenizer) with random init from `seed`."""
    import open_clip

    from train.tiny import quiet_model_creation, register_configs

    register_configs()
    if open_clip.get_model_config(cfg.model) is None:
        raise UserError(f"model {cfg.model!r}: not an open_clip architecture (see open_clip.list_models()) nor a shipped config")
    torch.manual_seed(seed)
    with quiet_model_creation():
        model, preprocess_train, _ = open_clip.create_model_and_transforms(cfg.model, pretrained=None, precision="fp32", device=device)
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    return model, preprocess_train, open_clip.get_tokenizer(cfg.model)


def macs_per_sample(model, device: torch.device, image_size: int, context: int) -> int:
    """Forward multiply-accumulates of one image-text pair (torch's FLOP counter, 2 FLOPs per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    img = torch.zeros(2, 3, image_size, image_size, device=device)
    txt = torch.zeros(2, context, dtype=torch.long, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(img, txt)
    return int(fc.get_total_flops() // 2 // 2)


def _autocast(cfg: RunConfig, env: Env):
    if cfg.precision == "bf16":
        return torch.autocast(env.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _rng_state(env: Env) -> dict:
    s = {"cpu": torch.get_rng_state()}
    if env.device.type == "cuda":
        s["cuda"] = torch.cuda.get_rng_state(env.device)
    return s


def _set_rng_state(state: dict, env: Env) -> None:
    torch.set_rng_state(state["cpu"])
    if env.device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], env.device)


class Logger:
    def __init__(self, run: Path, env: Env):
        self.path = run / "log.jsonl"
        self.env = env

    def write(self, **rec) -> None:
        if self.env.main:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(rec, sort_keys=True) + "\n")


def _step_folder(run: Path, t: int, name: str) -> Path:
    return run / "checkpoints" / f"step-{t:02d}-{name}"


def train_step(cfg: RunConfig, env: Env, run: Path, model, teacher, transform, tokenizer, plan: StepPlan,
               t: int, name: str, logger: Logger, macs: int, stop_after: int | None = None) -> dict:
    """Train one benchmark step from the model's current weights (or the resume checkpoint)."""
    ddp = model
    if env.world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    opt = make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.beta1, cfg.beta2, cfg.eps)
    total = plan.batches
    start = 0
    counters = {"samples": 0, "skipped": 0, "per_bucket": [0] * len(plan.buckets), "loss_first": None, "seconds": 0.0}
    resume = run / "checkpoints" / RESUME
    if (resume / "state.pt").exists():
        st = load_state(resume)
        if int(st["step_index"]) == t:
            load_weights(model, resume)
            opt.load_state_dict(st["optimizer"])
            start = int(st["next_batch"])
            counters = json.loads(st["counters"])
            _set_rng_state(st["rng"], env)
            log.info("step %s: resuming at batch %d of %d", name, start, total)
    loss_fn = clip_loss_fn(env.rank, env.world)
    ds = BatchDataset(plan, transform, tokenizer, env.rank, env.world)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=None, sampler=range(start, total), num_workers=cfg.workers,
        prefetch_factor=4 if cfg.workers else None, pin_memory=env.device.type == "cuda")
    micro = cfg.accum_freq
    every = cfg.checkpoint_every
    last_ckpt = time.monotonic()
    interval = {"t0": time.monotonic(), "samples": 0, "loss": 0.0, "n": 0}
    model.train()
    bar = None
    if cfg.progress and env.main:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=start, desc=f"step {name}", unit="batch", file=sys.stderr, leave=False,
                   disable=None, mininterval=1.0)  # no bar when stderr is not a terminal (logs stay readable)
    step_t0 = time.monotonic()
    n = start
    for n, (images, tokens, draws, bad) in zip(range(start, total), loader):
        images = images.to(env.device, non_blocking=True)
        tokens = tokens.to(env.device, non_blocking=True)
        lr = lr_at(n, total, cfg.warmup, cfg.lr)
        set_lr(opt, lr)
        opt.zero_grad(set_to_none=True)
        t_feats = None
        if teacher is not None:
            with torch.no_grad(), _autocast(cfg, env):
                ti, tt, ts = teacher(images, tokens)
            t_feats = (gather(ti.float(), False), gather(tt.float(), False), ts.float())

        def loss_of(img, txt, scale):
            loss = loss_fn(img, txt, scale)
            if t_feats is not None:
                kd = distillation(gather(img, True), gather(txt, True), scale, *t_feats, tau=cfg.lwf_temperature)
                loss = loss + cfg.lwf_weight * kd
            return loss

        if micro == 1:
            with _autocast(cfg, env):
                img, txt, scale = ddp(images, tokens)
                loss = loss_of(img.float(), txt.float(), scale.float())
            loss.backward()
        else:
            chunks_i, chunks_t = images.chunk(micro), tokens.chunk(micro)
            with torch.no_grad(), _autocast(cfg, env):
                cached = [ddp(a, b)[:2] for a, b in zip(chunks_i, chunks_t)]
            for j, (a, b) in enumerate(zip(chunks_i, chunks_t)):
                sync = ddp.no_sync() if (env.world > 1 and j < micro - 1) else contextlib.nullcontext()
                with sync:
                    with _autocast(cfg, env):
                        img_j, txt_j, scale = ddp(a, b)
                        img = torch.cat([c[0] for c in cached[:j]] + [img_j] + [c[0] for c in cached[j + 1:]])
                        txt = torch.cat([c[1] for c in cached[:j]] + [txt_j] + [c[1] for c in cached[j + 1:]])
                        loss = loss_of(img.float(), txt.float(), scale.float())
                    loss.backward()
        opt.step()
        clamp_logit_scale(model)
        # counters: the global batch's draws, counted once (every rank knows the whole batch's buckets)
        batch_buckets, _ = plan.batch(n)
        for b, c in zip(*np.unique(batch_buckets, return_counts=True)):
            counters["per_bucket"][int(b)] += int(c)
        counters["samples"] += len(batch_buckets)
        counters["skipped"] += int(bad)
        lv = float(loss.detach())
        if counters["loss_first"] is None:
            counters["loss_first"] = lv
        counters["loss_last"] = lv
        interval["samples"] += len(batch_buckets)
        interval["loss"] += lv
        interval["n"] += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{lv:.3f}")
        if (n + 1) % cfg.log_every == 0 or n + 1 == total:
            dt = time.monotonic() - interval["t0"]
            logger.write(event="interval", step=name, step_index=t, batch=n + 1, batches=total, lr=lr,
                         loss=interval["loss"] / interval["n"], samples_per_s=interval["samples"] / dt if dt > 0 else None,
                         samples=counters["samples"])
            interval = {"t0": time.monotonic(), "samples": 0, "loss": 0.0, "n": 0}
        due = (every and (n + 1) % every == 0) or (not every and time.monotonic() - last_ckpt > DEFAULT_CHECKPOINT_SECONDS)
        if due and n + 1 < total:
            counters["seconds"] += time.monotonic() - step_t0
            step_t0 = time.monotonic()
            state = {"step_index": t, "next_batch": n + 1, "optimizer": opt.state_dict(), "rng": _rng_state(env),
                     "counters": json.dumps(counters)}
            if env.main:
                save_checkpoint(resume, model, cfg.model, {"step": name, "step_index": t, "next_batch": n + 1}, state)
            _barrier(env)
            last_ckpt = time.monotonic()
        if stop_after is not None and n + 1 >= stop_after:
            _barrier(env)
            os.kill(os.getpid(), 9)  # TIC_TRAIN_KILL_AFTER (tests): die as a killed job does, no cleanup
    if bar is not None:
        bar.close()
    counters["seconds"] += time.monotonic() - step_t0
    counters["optimizer_steps"] = total
    factor = 3 + (1 if teacher is not None else 0)  # forward + backward (2x), plus the teacher's forward
    counters["estimated_macs"] = int(counters["samples"]) * macs * factor
    counters["macs_per_sample_forward"] = macs
    return counters


def _barrier(env: Env) -> None:
    if env.world > 1:
        import torch.distributed as dist

        dist.barrier()


def run_training(cfg: RunConfig) -> dict:
    """Every step of the benchmark for cfg.method; returns run.json. The environment variable
    TIC_TRAIN_KILL_AFTER=STEP:BATCH makes the process SIGKILL itself after that batch (tests of resuming)."""
    env = setup_env(cfg)
    kill = os.environ.get("TIC_TRAIN_KILL_AFTER")
    stop_after = tuple(int(x) for x in kill.split(":")) if kill else None
    data = Path(cfg.data)
    doc = load_manifest_json(data)
    bench = benchmark_from_manifest(doc, data / MANIFEST_JSON)
    names = list(doc.get("buckets") or {})
    if not names:
        raise UserError(f"{data}/manifest.json: lists no buckets")
    if cfg.steps:
        unknown = [s for s in cfg.steps if s not in names]
        if unknown:
            raise UserError(f"steps {unknown}: not buckets of {data} ({', '.join(names)})")
    C = cfg.samples_per_step or int(bench.compute.get("samples_per_step", 0))
    if C <= 0:
        raise UserError(f"no compute budget: set samples_per_step (the benchmark {bench.name} has no [compute] samples_per_step)")
    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    buckets = open_buckets(data / "train" / "shards", names, run / "cache" / "index")
    sizes = [b.size for b in buckets]
    logger = Logger(run, env)
    run_doc_path = run / "run.json"
    previous = json.loads(run_doc_path.read_text()) if run_doc_path.exists() else None
    if previous:
        changed = sorted(k for k, v in cfg.to_json().items() if k not in RERUN_MAY_CHANGE and previous["config"].get(k) != v)
        if changed:
            raise UserError(f"{run}: holds a run with another config (differs in {', '.join(changed)}); use another --out")
        previous["config"] = cfg.to_json()
    run_doc = previous or {"config": cfg.to_json(), "data": str(data.resolve()), "benchmark": bench.to_json(),
                           "buckets": dict(zip(names, sizes)), "samples_per_step": C, "steps": {}}
    T = len(names)
    global_batch = cfg.batch_size
    todo = [T - 1] if cfg.method == "oracle" else list(range(T))
    if cfg.steps:
        todo = [t for t in todo if names[t] in cfg.steps]
    prev_folder = None
    for t in range(T):
        folder = _step_folder(run, t, names[t])
        if t not in todo:
            if folder.exists():
                prev_folder = folder
            continue
        if folder.exists():
            prev_folder = folder
            continue
        warm = cfg.method in WARM_START and t > 0 and prev_folder is not None
        if cfg.method in WARM_START and t > 0 and prev_folder is None:
            raise UserError(f"step {names[t]}: {cfg.method} warm-starts from step {names[t - 1]}, whose checkpoint is missing in {run}")
        model, transform, tokenizer = build_model(cfg, cfg.seed, env.device)
        if warm:
            load_weights(model, prev_folder)
        teacher = None
        if cfg.method == "lwf" and warm:
            teacher, _, _ = build_model(cfg, cfg.seed, env.device)
            load_weights(teacher, prev_folder)
            teacher.eval().requires_grad_(False)
        mix = mixture(cfg.method, t, sizes, cfg.buffer or None, cfg.lwf_data)
        budget = budget_of(cfg.method, C, T)
        plan = StepPlan(buckets, mix.weights, mix.limits, budget, global_batch, cfg.seed, t)
        vis = getattr(model.visual, "image_size", 224)
        image_size = vis[0] if isinstance(vis, (tuple, list)) else int(vis)
        macs = macs_per_sample(model, env.device, image_size, model.context_length)
        log.info("step %s (%d/%d): %s, %s samples, weights %s", names[t], t + 1, T, cfg.method, f"{budget:,}",
                 ", ".join(f"{names[i]}={w:.3f}" for i, w in enumerate(mix.weights) if w))
        stop = stop_after[1] if stop_after and stop_after[0] == t else None
        stats = train_step(cfg, env, run, model, teacher, transform, tokenizer, plan, t, names[t], logger, macs, stop)
        if cfg.method == "patching" and warm:
            stats["patched_with"] = str(prev_folder.name)
            base, _, _ = build_model(cfg, cfg.seed, env.device)
            load_weights(base, prev_folder)
            a = cfg.patching_alpha
            with torch.no_grad():
                for (k, p), (_, q) in zip(model.state_dict().items(), base.state_dict().items()):
                    if p.is_floating_point():
                        p.copy_((1 - a) * q + a * p)
        info = {"step": names[t], "step_index": t, "method": cfg.method, "warm_start": warm,
                "weights": list(mix.weights), "limits": list(mix.limits), "budget": budget} | stats
        if env.main:
            save_checkpoint(folder, model, cfg.model, info)
            run_doc["steps"][names[t]] = info
            write_json_atomic(run_doc_path, run_doc)
            import shutil

            shutil.rmtree(run / "checkpoints" / RESUME, ignore_errors=True)
        _barrier(env)
        logger.write(event="step", **info)
        log.info("step %s done: %s samples, %d optimizer steps, loss %.3f -> %.3f, %.1f samples/s", names[t],
                 f"{stats['samples']:,}", stats["optimizer_steps"], stats["loss_first"], stats["loss_last"],
                 stats["samples"] / max(stats["seconds"], 1e-9))
        prev_folder = folder
    if env.main:
        write_json_atomic(run_doc_path, run_doc)
    return run_doc


def format_run_table(doc: dict) -> str:
    lines = [f"{'step':<12} {'samples':>10} {'opt steps':>10} {'GMACs':>12} {'loss first':>11} {'loss last':>10} {'samples/s':>10}"]
    for name, s in doc["steps"].items():
        sps = s["samples"] / s["seconds"] if s.get("seconds") else float("nan")
        lines.append(f"{name:<12} {s['samples']:>10,} {s['optimizer_steps']:>10,} {s['estimated_macs'] / 1e9:>12,.1f} "
                     f"{s['loss_first']:>11.3f} {s['loss_last']:>10.3f} {sps:>10.1f}")
    return "\n".join(lines)
