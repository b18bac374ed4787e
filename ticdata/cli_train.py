"""`tic` verbs of the trainer side: train, eval, report, and demo (the whole pipeline). The
trainer package (`tic_train`) is imported inside the commands, so the data verbs work without it."""

from __future__ import annotations

import argparse
from pathlib import Path

from ticdata.cli_args import count, non_negative, port, positive, share
from ticdata.errors import UserError


_TRAIN_FLAGS = ("data", "out", "method", "samples_per_step", "batch_size", "model", "lr", "warmup", "warmup_first",
                "warmup_later", "weight_decay", "precision", "seed", "workers", "device", "accum_freq", "buffer",
                "buffer_factor", "lwf_weight", "lwf_data", "patching_alpha", "checkpoint_every", "log_every", "threads",
                "report_to", "val_every", "warn_epochs")


def _methods() -> tuple[str, ...] | None:
    """The continual methods, for argparse's choices (None when the trainer is not installed: the
    data verbs still work, and `tic train` then says what is missing)."""
    try:
        from tic_train.methods import METHODS
    except ImportError:
        return None
    return tuple(METHODS)


def cmd_train(args) -> int:
    from tic_train.config import MissingKeys, load_config
    from tic_train.preflight import preflight

    if args.data_dir and args.data and Path(args.data_dir) != Path(args.data):
        raise UserError(f"train: two data folders, {args.data_dir} and --data {args.data}; give one")
    args.data = args.data or args.data_dir
    overrides = {k: getattr(args, k) for k in _TRAIN_FLAGS}
    for flag in ("grad_checkpointing", "deterministic", "val"):
        if getattr(args, flag):
            overrides[flag] = True
    if args.steps:
        overrides["steps"] = args.steps
    overrides["progress"] = not args.quiet
    for item in args.set or []:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        overrides[k.strip().replace("-", "_")] = v.strip()
    try:
        cfg = load_config(args.config, overrides, preset=args.preset, required=("method",))
    except MissingKeys as e:  # argparse's words: the method has no default on the command line
        raise UserError(f"train: {e} (see `tic train --help`)") from None
    preflight(cfg)  # the folders (and TensorBoard) before torch is imported, before OUT is made
    from tic_train.loop import format_run_table, run_training

    doc = run_training(cfg)
    if int(__import__("os").environ.get("RANK", "0")) == 0:
        print(format_run_table(doc))
        print(f"checkpoints: {Path(cfg.out).resolve() / 'checkpoints'}")
    return 0


def cmd_eval(args) -> int:
    from tic_train.documents import load_run_doc

    for run in args.runs or []:
        load_run_doc(Path(run))  # a folder that is not a run is refused before torch is imported
    from tic_train.evaluate import evaluate_run, format_matrix

    static = {}
    for item in args.static or []:
        if "=" not in item:
            raise UserError(f"--static {item!r}: expected NAME=FOLDER (a CLIP_benchmark wds folder)")
        name, path = item.split("=", 1)
        static[name.strip()] = Path(path.strip())
    if args.model or args.pretrained:
        return _eval_pretrained(args)
    if not args.runs:
        raise UserError("eval: give run folders (tic eval RUN...), or an existing model: --data DIR --model ARCH "
                        "--pretrained FILE|TAG --out FOLDER")
    alphas = None
    if args.patching_alpha:
        from tic_train.patching_eval import parse_alphas

        alphas = parse_alphas(args.patching_alpha)
    for run in args.runs:
        m = evaluate_run(Path(run), static, device=args.device, batch=args.batch_size, progress=not args.quiet,
                         patching_alphas=alphas, static_root=Path(args.static_root) if args.static_root else None,
                         columns=args.columns)
        print(format_matrix(m))
        print(f"matrix: {Path(run).resolve() / 'eval' / 'matrix.json'} (every score: {Path(run).resolve() / 'eval' / 'results.csv'})")
    return 0


def _eval_pretrained(args) -> int:
    from tic_train.evaluate import format_matrix
    from tic_train.pretrained_eval import evaluate_pretrained

    missing = [f for f in ("data", "model", "pretrained", "out") if not getattr(args, f)]
    if missing or args.runs:
        raise UserError("eval of an existing model: give --data DIR --model ARCH --pretrained FILE|TAG --out FOLDER "
                        f"and no run folders ({'missing: --' + ', --'.join(missing) if missing else 'run folders given'})")
    m = evaluate_pretrained(Path(args.data), args.model, args.pretrained, Path(args.out), device=args.device,
                            batch=args.batch_size, cache_dir=args.cache_dir)
    m["computed_cells"], m["seconds"] = len(m["cells"]), 0.0
    print(format_matrix(m))
    print(f"matrix: {Path(args.out).resolve() / 'eval' / 'matrix.json'} (beside trained runs: tic report RUN... {args.out})")
    return 0


def cmd_report(args) -> int:
    from tic_train.report import build_report, load_matrices, metrics_table

    path = build_report([Path(r) for r in args.runs], Path(args.out))
    print(metrics_table(load_matrices([Path(r) for r in args.runs])))
    print(f"report: {path.resolve()} (and {path.with_suffix('.html').resolve()})")
    return 0


def cmd_demo(args) -> int:
    from ticdata.demo import DEFAULT_METHODS, run_demo
    from tic_train.mixture import METHODS
    from tic_train.report import load_matrices, metrics_table

    methods = list(METHODS) if args.methods == "all" else [m.strip() for m in (args.methods or ",".join(DEFAULT_METHODS)).split(",") if m.strip()]
    res = run_demo(Path(args.out), methods, port=args.port, pairs=args.pairs_per_step, progress=not args.quiet,
                   samples_per_step=args.samples_per_step)
    print()
    print(metrics_table(load_matrices([Path(r) for r in res["runs"]])))
    print()
    print("timestamp audit of the world (" + res["audit_report"] + "):")
    print("  " + res["audit"].replace("\n", "\n  "))
    print("stage times (s): " + ", ".join(f"{k} {v}" for k, v in res["times"].items()) + f"; total {res['seconds']}")
    print(f"data (curated, downloaded, eval sets): {Path(res['data']).resolve()}")
    print(f"runs: {', '.join(str(Path(r).resolve()) for r in res['runs'])}")
    print(f"report: {Path(res['report']).resolve()}")
    return 0


def add_train(sub, common) -> None:
    """tic train"""
    tp = sub.add_parser(
        "train", parents=[common], help="train a continual method over a benchmark's steps (open_clip models)",
        description="Train every step of the benchmark of DATA (a folder after tic evalsets: DATA/train/shards) with one "
        "continual method under a fixed budget of samples per step; one checkpoint per step in OUT/checkpoints/ "
        "(safetensors + open_clip_config.json), OUT/log.jsonl, OUT/run.json (and OUT/tensorboard/ with --report-to "
        "tensorboard). A killed run resumes where it stopped. "
        "Methods: sequential, cumulative-all, cumulative-exp, cumulative-equal, restart, oracle, lwf, patching "
        "(definitions: README and train/mixture.py). Several processes: torchrun --nproc-per-node N -m ticdata.cli train ...")
    tp.add_argument("--preset", metavar="NAME", help="a shipped run config: the paper's scales (tic-datacomp/medium, "
                    "tic-datacomp/large, tic-datacomp/xlarge, tic-yfcc/medium, tic-redcaps/medium); --config and flags override it")
    tp.add_argument("--config", metavar="RUN.toml", help="a TOML run config; flags override it")
    tp.add_argument("data_dir", nargs="?", metavar="DATA", help="a folder after tic evalsets (as every data verb takes "
                    "its folder; --data DATA works too)")
    tp.add_argument("--data", help=argparse.SUPPRESS)
    tp.add_argument("--out", help="the run folder")
    tp.add_argument("--method", choices=_methods(), metavar="METHOD", help="the continual method (required unless --config "
                    "or --preset sets it): " + ", ".join(_methods() or ()))
    tp.add_argument("--samples-per-step", type=positive, help="the budget C in samples seen per step (default: the benchmark's)")
    tp.add_argument("--batch-size", type=positive, help="global batch size (default 256)")
    tp.add_argument("--model", help="an open_clip architecture or a shipped tiny config (default tic-tiny)")
    tp.add_argument("--lr", type=non_negative, help="peak learning rate (default 5e-4)")
    tp.add_argument("--warmup", type=count, help="warmup optimizer steps of every step (sets both below)")
    tp.add_argument("--warmup-first", type=count, help="warmup of a step trained from random init (default 50)")
    tp.add_argument("--warmup-later", type=count, help="warmup of a warm-started step (default 0, as ml-tic-clip)")
    tp.add_argument("--weight-decay", type=non_negative, help="AdamW weight decay on weight matrices (default 0.2)")
    tp.add_argument("--precision", help="fp32 or bf16 (autocast) (default fp32)")
    tp.add_argument("--seed", type=count, help="seed of the initialisation, the draws and the augmentations (default 0)")
    tp.add_argument("--workers", type=count, help="data loader processes (default 2)")
    tp.add_argument("--device", help="auto, cpu or cuda (default auto)")
    tp.add_argument("--accum-freq", type=positive, help="micro-batches per optimizer step (gradient accumulation, default 1)")
    tp.add_argument("--grad-checkpointing", action="store_true", help="recompute activations in the backward pass")
    tp.add_argument("--buffer", type=count, help="replay buffer size of cumulative-exp/-equal (default: --buffer-factor x |D_t|)")
    tp.add_argument("--buffer-factor", type=non_negative, help="buffer size as a multiple of |D_t| (default 2, the paper's)")
    tp.add_argument("--lwf-weight", type=non_negative, help="LwF distillation weight (default 1)")
    tp.add_argument("--lwf-data", help="LwF's data: sequential (default, the paper's) or a cumulative method")
    tp.add_argument("--patching-alpha", type=share, help="Patching: weight of the fine-tuned model (default 0.5)")
    tp.add_argument("--checkpoint-every", type=positive, help="optimizer steps between resume checkpoints (default: every 5 minutes)")
    tp.add_argument("--log-every", type=positive, help="optimizer steps per log line (default 10)")
    tp.add_argument("--threads", type=positive, help="torch threads (default torch's)")
    tp.add_argument("--steps", help="only these benchmark steps, comma-separated")
    tp.add_argument("--deterministic", action="store_true", help="deterministic kernels (reproducible resumes)")
    tp.add_argument("--report-to", choices=("none", "tensorboard"), help="as open_clip_train's: tensorboard also writes "
                    "loss, lr, samples/s and validation scalars to OUT/tensorboard/ (pip install 'tic[tensorboard]')")
    tp.add_argument("--val", action="store_true", help="score the step's held-out retrieval set (DATA/eval/<step>/retrieval) "
                    "at the end of each step: log.jsonl \"val\" lines; the trained weights are the same as without it")
    tp.add_argument("--val-every", type=count, metavar="N", help="also validate every N samples of a step (implies --val)")
    tp.add_argument("--warn-epochs", type=non_negative, metavar="X", help="warn when a step repeats a bucket more than X "
                    "epochs (default 4: up to ~4 epochs of repeats are nearly as good as new data, Muennighoff et al. 2023); "
                    "run.json records each step's unique samples and epochs per bucket")
    tp.add_argument("--set", action="append", metavar="KEY=VALUE", help="set any config key")
    tp.set_defaults(func=cmd_train)


def add_eval(sub, common) -> None:
    """tic eval"""
    vp = sub.add_parser(
        "eval", parents=[common], help="score every checkpoint of runs on every bucket's held-out sets (and static sets)",
        description="For each checkpoint of each RUN and each bucket's held-out sets (DATA/eval/<bucket>/...): "
        "text-to-image and image-to-text recall@1/5/10, zero-shot top-1/top-5/mean per-class recall; plus static "
        "CLIP_benchmark wds sets. Cells are cached: a rerun computes only what is missing. Writes RUN/eval/matrix.json "
        "(E[i][j] per task, in-domain / backward / forward transfer), RUN/eval/results.csv and results.jsonl (one row per "
        "checkpoint, eval set and metric: CLIP_benchmark's build table plus step, bucket, method) and CLIP_benchmark-shaped "
        "JSON per cell (RUN/eval/cells/<checkpoint>/<set>.<model>.json).")
    vp.add_argument("runs", nargs="*", metavar="RUN", help="run folders of tic train")
    vp.add_argument("--static", action="append", metavar="NAME=FOLDER", help="a static eval set in CLIP_benchmark's wds layout (repeatable)")
    vp.add_argument("--columns", choices=("step", "year"), default="step", help="one eval-matrix column per benchmark step "
                    "(default) or per calendar year, as ml-tic-clip's eval sets are cut")
    vp.add_argument("--static-root", metavar="DIR", help="DataComp's eval folders (wds_<task>_test): every one present "
                    "is scored with DataComp's metric for it (tic_train.static_tasks)")
    vp.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    vp.add_argument("--batch-size", type=positive, default=256, help="images or texts per forward pass (default 256)")
    g = vp.add_argument_group("an existing model, without a run (weights from a file or the local cache only)")
    g.add_argument("--data", help="a curated folder after tic evalsets")
    g.add_argument("--model", help="an open_clip architecture, e.g. ViT-B-32")
    g.add_argument("--pretrained", help="a weights file, or an open_clip pretrained tag already in the cache (e.g. openai)")
    g.add_argument("--out", help="where run.json and eval/matrix.json go (tic report takes it beside runs)")
    g.add_argument("--cache-dir", help="the open_clip / Hugging Face cache to look in (default: theirs)")
    vp.add_argument("--patching-alpha", metavar="A,B,...", help="a Patching run: also score every patched step "
                    "re-interpolated at these alphas (e.g. 0,0.25,0.5,0.75,1) from its saved fine-tuned weights")
    vp.set_defaults(func=cmd_eval)


def add_report(sub, common) -> None:
    """tic report"""
    rpp = sub.add_parser(
        "report", parents=[common], help="Markdown and HTML report with figures from evaluated runs",
        description="From each RUN's eval/matrix.json (tic eval): eval-matrix heatmaps per method, in-domain performance "
        "per step, compute (samples, MACs) against the average dynamic and static score, and the metrics table "
        "(in-domain, backward, forward transfer) in OUT/report.md and OUT/report.html with PNG figures.")
    rpp.add_argument("runs", nargs="+", metavar="RUN", help="evaluated run folders, one per method")
    rpp.add_argument("--out", required=True, help="report folder")
    rpp.set_defaults(func=cmd_report)


def add_demo(sub, common) -> None:
    """tic demo"""
    dm = sub.add_parser(
        "demo", parents=[common], help="the whole pipeline on the synthetic world, ending with the report",
        description="The main job on the embedded default: synthetic drifting world -> served on 127.0.0.1 -> curated into "
        "the demo benchmark -> downloaded -> eval sets -> each method trained (tiny open_clip model, CPU) -> eval -> report. "
        "Reruns resume. Prints the metrics table and the report's path.")
    dm.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    dm.add_argument("--methods", help="comma-separated continual methods, or 'all' (default sequential,cumulative-all,oracle)")
    dm.add_argument("--port", type=port, default=8765, help="port of the image server on 127.0.0.1 (default 8765)")
    dm.add_argument("--pairs-per-step", type=positive, default=3300, help="world pairs per step (default 3300)")
    dm.add_argument("--samples-per-step", type=positive, metavar="N", help="training samples per step (default: the demo "
                    "benchmark's 20,000); fewer for a quicker look")
    dm.set_defaults(func=cmd_demo)
