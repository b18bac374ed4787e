"""`tic train`: the steps of a benchmark, one training run each, under one compute budget per step.

For each step t of the benchmark (buckets in order), the method's rules (tic_train.methods) decide
the initial weights (random, or the previous step's checkpoint: a warm start loads weights only,
with a fresh optimizer and a new warmup + cosine schedule), a teacher (LwF), a final interpolation
(Patching), and the data mixture (tic_train.mixture); the step then draws exactly its budget of
samples (C; Oracle T x C, once) in batches (tic_train.step, which also resumes a killed step), and
writes its checkpoint RUN/checkpoints/step-NN-<name>/.

RUN/log.jsonl: one line per `log_every` optimizer steps (loss, lr, samples/s) and one per finished
step (samples seen, optimizer steps, estimated MACs, draws per bucket, skipped samples, and `data_use`: unique
samples and epochs per bucket, with a warning past `warn_epochs`, tic_train.data_use); with
`val`/`val_every`, validation lines (tic_train.validation: the step's held-out retrieval set, at the
end of each step on the step's final model, and every `val_every` samples); with `report_to =
"tensorboard"`, the same scalars in RUN/tensorboard/ (tic_train.jsonlog).
RUN/run.json: the config, the benchmark's buckets, their sizes and fingerprints (a rerun on other data
is refused, not resumed: tic_train.shards.Bucket.fingerprint), and every finished step.
Several processes (torchrun; gloo on CPU, NCCL on GPU) split each global batch; rank 0 writes.
A run refused before it trained anything (tic_train.preflight's checks, a damaged training shard, an
unknown model) leaves no run folder behind when it made that folder.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch

from ticdata.errors import UserError
from ticdata.layout import CuratedFolder, RunFolder
from ticdata.storage import check_output_folder, write_json_atomic
from tic_train.checkpoint import load_weights, save_checkpoint
from tic_train.config import RunConfig, check
from tic_train.documents import load_run_doc
from tic_train.data import StepPlan
from tic_train.data_use import available, data_use, format_data_use
from tic_train.env import Env, barrier, setup_env
from tic_train.jsonlog import JsonlLog
from tic_train.methods import Method, method
from tic_train.mixture import mixture
from tic_train.patching import interpolate
from tic_train.preflight import preflight
from tic_train.shards import Bucket, open_buckets
from tic_train.step import StepJob, resume_folder, train_step
from tic_train.validation import Validator, validate

log = logging.getLogger(__name__)
# settings a rerun (a resume) may change: they do not change what is trained
# (and `steps`, which steps this call trains: a run may be trained a step per job)
RERUN_MAY_CHANGE = {"progress", "workers", "checkpoint_every", "log_every", "threads", "deterministic", "report_to", "val",
                    "val_every", "warn_epochs", "steps"}
TENSORBOARD_DIR = "tensorboard"  # RUN/tensorboard/: open_clip_train's name for its event files


def build_model(cfg: RunConfig, seed: int, device: torch.device):
    """(model, train transform, tokenizer) with random init from `seed`."""
    import open_clip

    from tic_train.tiny import quiet_model_creation, register_configs

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


def _step_folder(run: Path, t: int, name: str) -> Path:
    return RunFolder(run).step_checkpoint(t, name)


class TrainedOnOtherData(UserError):
    """The run folder's finished steps were trained on other samples than the data folder holds now."""


def _run_doc(cfg: RunConfig, run: Path, fresh: dict) -> dict:
    """run.json: the folder's own when it holds this run (a rerun resumes it), else `fresh`."""
    path = RunFolder(run).run_json
    if not path.exists():
        return fresh
    previous = load_run_doc(run)
    _check_same_data(run, previous, fresh)
    # a key the run's config lacks (a setting added since the run was made) held its default then
    before = RunConfig().to_json() | previous["config"]
    changed = sorted(k for k, v in cfg.to_json().items() if k not in RERUN_MAY_CHANGE and before.get(k) != v)
    if changed:
        raise UserError(f"{run}: holds a run with another config (differs in {', '.join(changed)}); use another --out")
    previous["config"] = cfg.to_json()
    previous["data_fingerprint"] = fresh["data_fingerprint"]
    previous["buckets"] = fresh["buckets"]  # a bucket no finished step drew from may have changed
    return previous


def _check_same_data(run: Path, previous: dict, fresh: dict) -> None:
    """A resume continues on the samples its finished steps drew: each bucket they drew from must
    have the fingerprint (or, for a run made before tic kept them, the size) run.json recorded.
    Buckets no finished step drew from may have changed (another download round of a later year)."""
    then = previous.get("data_fingerprint")
    key, was, now = ("fingerprint", then, fresh["data_fingerprint"]) if then else ("samples", previous["buckets"], fresh["buckets"])
    names = list(fresh["buckets"])
    drawn = set()
    for s in previous["steps"].values():
        per = s.get("per_bucket")
        drawn |= set(names) if per is None else {n for n, d in zip(names, per) if d}
    moved = [n for n in names if n in drawn and was.get(n) != now.get(n)]
    if moved:
        n = moved[0]
        sizes = f"{previous['buckets'].get(n, 0):,} samples then, {fresh['buckets'][n]:,} now"
        raise TrainedOnOtherData(
            f"{run}: its finished steps were trained on other data: bucket {n} ({key} differs; {sizes})"
            f"{f' and {len(moved) - 1} more bucket(s)' if len(moved) > 1 else ''}; train into another --out, or delete "
            f"{run} to train again on {previous.get('data', 'the data folder')}")


def run_training(cfg: RunConfig) -> dict:
    """Every step of the benchmark for cfg.method; returns run.json."""
    check(cfg)  # a config built in code gets the same one-line errors as one loaded from TOML or flags
    bench, names, C = preflight(cfg)  # the folders and TensorBoard, before anything is made
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {cfg.device!r}: torch sees no CUDA device here; use --device cpu (or auto)")
    env = setup_env(cfg)
    run = Path(cfg.out)
    made = not run.exists()
    check_output_folder(run)
    try:
        return _train_steps(cfg, env, bench, names, C)
    except UserError:
        if made and env.main and not RunFolder(run).checkpoints.exists() and not RunFolder(run).run_json.exists():
            shutil.rmtree(run, ignore_errors=True)  # refused before anything was trained: no empty run folder left
        raise


def _train_steps(cfg: RunConfig, env: Env, bench, names: list[str], C: int) -> dict:
    rules = method(cfg.method)
    data, run = Path(cfg.data), Path(cfg.out)
    folder = RunFolder(run)
    buckets = open_buckets(CuratedFolder(data).train_shards, names, folder.index_cache())
    sizes = [b.size for b in buckets]
    run_doc = _run_doc(cfg, run, {"config": cfg.to_json(), "data": str(data.resolve()), "benchmark": bench.to_json(),
                                  "buckets": dict(zip(names, sizes)), "samples_per_step": C, "steps": {},
                                  "data_fingerprint": {b.name: b.fingerprint for b in buckets}})
    jlog = JsonlLog(folder.log_jsonl, env.main, run / TENSORBOARD_DIR if cfg.tensorboard else None)
    T = len(names)
    todo = [t for t in rules.steps_to_train(T) if not cfg.steps or names[t] in cfg.steps]
    prev_folder = None
    try:
        for t in range(T):
            folder = _step_folder(run, t, names[t])
            if folder.exists():
                prev_folder = folder
                continue
            if t not in todo:
                continue
            warm = rules.warm_start and t > 0
            if warm and prev_folder is None:
                raise UserError(f"step {names[t]}: {cfg.method} warm-starts from step {names[t - 1]}, whose checkpoint is missing in {run}")
            before = sum(int(s.get("samples", 0)) for k, s in run_doc["steps"].items() if k != names[t])
            model, info, finetuned = _train_one(cfg, env, rules, run, buckets, t, names[t], C, prev_folder if warm else None,
                                                jlog, before)
            if env.main:
                save_checkpoint(folder, model, cfg.model, info, finetuned=finetuned)
                run_doc["steps"][names[t]] = info
                write_json_atomic(RunFolder(run).run_json, run_doc)
                shutil.rmtree(resume_folder(run), ignore_errors=True)
            barrier(env)
            jlog.write(event="step", global_samples=before + info["samples"], **info)
            log.info("step %s done: %s samples, %d optimizer steps, loss %.3f -> %.3f, %.1f samples/s", names[t],
                     f"{info['samples']:,}", info["optimizer_steps"], info["loss_first"], info["loss_last"],
                     info["samples"] / max(info["seconds"], 1e-9))
            prev_folder = folder
    finally:
        jlog.close()
    if env.main:
        write_json_atomic(RunFolder(run).run_json, run_doc)
    return run_doc


def _train_one(cfg: RunConfig, env: Env, rules: Method, run: Path, buckets: list[Bucket], t: int, name: str, C: int,
               warm_from: Path | None, jlog: JsonlLog, before: int = 0) -> tuple[torch.nn.Module, dict, dict | None]:
    """Step t's model (random init, or warm-started from `warm_from`) trained on the method's data
    (with LwF's teacher, then Patching's interpolation), validated at its end when asked (the model
    the checkpoint holds); returns it and the step's info. `before`: samples of the run's other steps."""
    T = len(buckets)
    model, transform, tokenizer = build_model(cfg, cfg.seed, env.device)
    if warm_from is not None:
        load_weights(model, warm_from)
    teacher = None
    if rules.teacher and warm_from is not None:
        teacher, _, _ = build_model(cfg, cfg.seed, env.device)
        load_weights(teacher, warm_from)
        teacher.eval().requires_grad_(False)
    mix = mixture(cfg.method, t, [b.size for b in buckets], cfg.buffer or None, cfg.lwf_data, cfg.buffer_factor)
    budget = rules.budget(C, T)
    plan = StepPlan(buckets, mix.weights, mix.limits, budget, cfg.batch_size, cfg.seed, t)
    vis = getattr(model.visual, "image_size", 224)
    image_size = vis[0] if isinstance(vis, (tuple, list)) else int(vis)
    macs = macs_per_sample(model, env.device, image_size, model.context_length)
    log.info("step %s (%d/%d): %s, %s samples, weights %s", name, t + 1, T, cfg.method, f"{budget:,}",
             ", ".join(f"{buckets[i].name}={w:.3f}" for i, w in enumerate(mix.weights) if w))
    expected = _expect(cfg, buckets, name, mix, budget)
    validator = Validator(Path(cfg.data), name, env.device, tokenizer) if cfg.validates and env.main else None
    stats = train_step(StepJob(cfg, env, run, model, teacher, transform, tokenizer, plan, t, name, jlog, macs,
                               warmup=cfg.warmup_for(warm_from is not None), samples_before=before, validator=validator))
    finetuned = None
    if rules.patching and warm_from is not None:
        stats["patched_with"] = str(warm_from.name)
        stats["patching_alpha"] = cfg.patching_alpha
        module = getattr(model, "module", model)
        finetuned = {k: v.detach().to("cpu").clone().contiguous() for k, v in module.state_dict().items()}
        _interpolate(cfg, env, model, warm_from)
    if validator is not None:
        validate(validator, model, jlog, step=name, step_index=t, samples=stats["samples"],
                 global_samples=before + stats["samples"], at="end")
    info = {"step": name, "step_index": t, "method": cfg.method, "warm_start": warm_from is not None,
            "weights": list(mix.weights), "limits": list(mix.limits), "budget": budget,
            "device": env.device.type, "processes": env.world} | stats
    info["data_use"] = _data_use(cfg, buckets, name, mix.limits, stats["per_bucket"])
    if info["data_use"]["warning"] and info["data_use"]["warning"] != expected:  # said already when it was as expected
        log.warning("%s", info["data_use"]["warning"])
    if env.device.type == "cuda":  # accelerator time: wall seconds of the step x processes (one GPU each)
        info["gpu_hours"] = round(stats["seconds"] * env.world / 3600, 6)
    return model, info, finetuned


def _expect(cfg: RunConfig, buckets: list[Bucket], name: str, mix, budget: int) -> str | None:
    """Before the step spends its compute: the data use its weights x budget imply, and the warning
    (returned) when that already repeats a bucket more than cfg.warn_epochs times."""
    use = _data_use(cfg, buckets, name, mix.limits, [round(w * budget) for w in mix.weights])
    log.info("step %s expects (weights x budget) %s", name, format_data_use(use))
    if use["warning"]:
        log.warning("%s (expected before training)", use["warning"])
    return use["warning"]


def _data_use(cfg: RunConfig, buckets: list[Bucket], name: str, limits, draws: list[int]) -> dict:
    """tic_train.data_use's record of step `name` drawing `draws` samples per bucket."""
    sizes = [b.size for b in buckets]
    return data_use(name, [b.name for b in buckets], available(sizes, list(limits)), sizes, draws, cfg.warn_epochs)


def _interpolate(cfg: RunConfig, env: Env, model: torch.nn.Module, previous: Path) -> None:
    """Patching: the weights become (1 - alpha) x previous + alpha x fine-tuned (floating tensors)."""
    base, _, _ = build_model(cfg, cfg.seed, env.device)
    load_weights(base, previous)
    with torch.no_grad():
        patched = interpolate(base.state_dict(), model.state_dict(), cfg.patching_alpha)
        for k, p in model.state_dict().items():
            p.copy_(patched[k])


def format_run_table(doc: dict) -> str:
    """One row per finished step, with its unique samples and most repeated bucket's epochs ('-' for
    a step trained before tic recorded them), then the steps' repetition warnings."""
    lines = [(f"{'step':<12} {'samples':>10} {'opt steps':>10} {'GMACs':>12} {'loss first':>11} {'loss last':>10} "
              f"{'samples/s':>10} {'unique':>10} {'max epochs':>10}")]
    warnings = []
    for name, s in doc["steps"].items():
        sps = s["samples"] / s["seconds"] if s.get("seconds") else float("nan")
        use = s.get("data_use")
        unique, epochs = (f"{use['unique']:,}", f"{use['max_epochs']:.2f}") if use else ("-", "-")
        lines.append(f"{name:<12} {s['samples']:>10,} {s['optimizer_steps']:>10,} {s['estimated_macs'] / 1e9:>12,.1f} "
                     f"{s['loss_first']:>11.3f} {s['loss_last']:>10.3f} {sps:>10.1f} {unique:>10} {epochs:>10}")
        if use and use.get("warning"):
            warnings.append(f"warning: {use['warning']}")
    return "\n".join(lines + warnings)
