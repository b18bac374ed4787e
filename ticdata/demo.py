"""`tic demo`: the main job end to end on the embedded default, the synthetic drifting world.

world -> served on 127.0.0.1 -> curated into the demo benchmark's 5 steps -> downloaded with
img2dataset -> held-out eval sets, decontaminated training shards -> the timestamp audit (its
headline printed at the end) -> each method trained with a
tiny open_clip model on CPU (the benchmark's budget per step) -> every checkpoint scored on every
step's eval sets -> the report. Every stage resumes: a rerun redoes only what is missing (a method's
run trained on an older world is trained again).

OUT/world, OUT/world-curated, OUT/audit/audit.md, OUT/runs/<method>, OUT/report/report.md (and .html, *.png).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from ticdata.errors import UserError

log = logging.getLogger(__name__)
DEFAULT_METHODS = ("sequential", "cumulative-all", "oracle")


def _world(out: Path, base_url: str, pairs: int) -> None:
    import json

    from ticdata.synth import world as W

    meta = out / "world" / "_world.json"
    if meta.exists():
        w = json.loads(meta.read_text())
        # a world made by an older tic with another URL scheme is made again (its URLs would not resolve),
        # and one without today's link-rot curve too (the demo shows old buckets losing more)
        same_scheme = w.get("url_scheme") == W.url_scheme()
        rot = w.get("link_rot") or {}
        same_rot = rot.get("on") is True and [rot.get(k) for k in ("now", "base", "per_year", "cap")] == [
            W.ROT_NOW, W.ROT_BASE, W.ROT_PER_YEAR, W.ROT_CAP]
        if w.get("pairs_per_step") == pairs and w.get("base_url") == base_url and same_scheme and same_rot:
            return
    W.make_world(out / "world", base_url=base_url, pairs_per_step=pairs, overwrite=True)


def train_again_if_stale(cfg) -> dict:
    """`tic train` of one of the demo's own runs; a run trained on an older world (the world was made
    again since: other pairs, another link-rot curve) is removed and trained again, not refused."""
    from tic_train.loop import TrainedOnOtherData, run_training

    try:
        return run_training(cfg)
    except TrainedOnOtherData as e:
        log.info("demo: %s; training it again", e)
        shutil.rmtree(cfg.out)
        return run_training(cfg)


def run_demo(out: Path, methods: list[str], port: int = 8765, pairs: int = 3300, batch_size: int = 128,
             workers: int = 2, progress: bool = True, samples_per_step: int | None = None) -> dict:
    """Every stage, resumable; `samples_per_step` overrides the benchmark's budget (a quicker demo)."""
    from ticdata.curate import CurateConfig, curate, finished, make_plan
    from ticdata.download import DownloadConfig, download
    from ticdata.evalsets import EvalConfig, build_evalsets
    from ticdata.executor import RayExecutor
    from ticdata.fetch import FetchPolicy
    from ticdata.serve import ImageServer

    from tic_train.mixture import METHODS

    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise UserError(f"--methods: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(METHODS)} or 'all'")
    started = time.monotonic()
    times: dict[str, float] = {}

    def lap(name: str, t0: float) -> None:
        times[name] = round(time.monotonic() - t0, 1)
        log.info("demo: %s done in %.1fs", name, times[name])

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "world-curated"
    try:
        server = ImageServer(port=port).start()
    except OSError as e:
        raise UserError(f"port {port} on 127.0.0.1 is taken ({e.strerror}); pass --port with a free one")
    try:
        t0 = time.monotonic()
        _world(out, server.url, pairs)
        lap("world", t0)
        with RayExecutor() as ex:
            t0 = time.monotonic()
            cfg = CurateConfig(inputs=(str(out / "world"),), out=data, benchmark="demo", overwrite=True, progress=progress)
            plan = make_plan(cfg)
            if finished(cfg, plan) is None:
                curate(cfg, ex, plan)
            lap("curate", t0)
            t0 = time.monotonic()
            download(DownloadConfig(dir=data, image_size=64, samples_per_shard=1000, timeout=3.0, progress=progress,
                                    policy=FetchPolicy(allow_private_hosts=True)), ex)
            lap("download", t0)
            t0 = time.monotonic()
            build_evalsets(EvalConfig(dir=data, samples_per_shard=1000, progress=progress), ex)
            lap("evalsets", t0)
            t0 = time.monotonic()
            from ticdata.audit import headline, run_audit
            from ticdata.audit_report import write_report

            audit = run_audit(data, out / "audit", ex, progress=progress, overwrite=True)
            write_report(audit, out / "audit")
            lap("audit", t0)
    finally:
        server.stop()
    from tic_train.config import load_config
    from tic_train.evaluate import evaluate_run
    from tic_train.report import build_report

    runs = []
    for method in methods:
        t0 = time.monotonic()
        overrides = dict(data=str(data), out=str(out / "runs" / method), method=method, batch_size=batch_size,
                         workers=workers, progress=progress)
        if samples_per_step is not None:
            overrides["samples_per_step"] = samples_per_step
        train_again_if_stale(load_config(None, overrides))
        lap(f"train {method}", t0)
        runs.append(out / "runs" / method)
    t0 = time.monotonic()
    for run in runs:
        evaluate_run(run, progress=progress)
    lap("eval", t0)
    t0 = time.monotonic()
    report = build_report(runs, out / "report")
    lap("report", t0)
    return {"report": str(report), "data": str(data), "runs": [str(r) for r in runs], "seconds": round(time.monotonic() - started, 1), "times": times,
            "audit": headline(audit), "audit_report": str(out / "audit" / "audit.md")}
