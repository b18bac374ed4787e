"""`tic eval RUN --patching-alpha 0,0.25,...`: the alpha curve of a Patching run, scored without
retraining. For every alpha and every patched step (steps after the first), the step's weights are
re-interpolated from its saved fine-tuned weights (tic_train.patching) and scored on every dynamic
eval set; the first step is not patched and keeps its row. Cells are cached like the run's own
(RUN/eval/patching/alpha=<a>/<checkpoint>/<set>.<model>.json, fingerprints inside: tic_train.cells), and matrix.json gains
`patching_alpha`: per alpha and task, E and its transfer metrics."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch

from ticdata.errors import UserError
from ticdata.layout import RunFolder
from tic_train.cells import cell_path, read_cell, write_cell
from tic_train.checkpoint import FINETUNED
from tic_train.patching import patched_weights
from tic_train.transfer import transfer_metrics

log = logging.getLogger(__name__)


def parse_alphas(text: str) -> list[float]:
    """"0,0.25,0.5" -> [0.0, 0.25, 0.5]; each in [0, 1]."""
    try:
        alphas = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--patching-alpha {text!r}: expected numbers between 0 and 1, comma-separated") from None
    if not alphas or any(not 0.0 <= a <= 1.0 for a in alphas):
        raise UserError(f"--patching-alpha {text!r}: expected numbers between 0 and 1, comma-separated")
    return sorted(set(alphas))


def _fingerprint(*files: Path) -> str:
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def score_alphas(run: Path, ckpts: list[Path], sets: list, buckets: list[str], cells: dict, alphas: list[float],
                 dev: torch.device, batch: int, pixels_cache: dict) -> dict:
    """{alpha: {task: {"E", "metrics"}}} for a Patching run (see the module docstring)."""
    from tic_train.evaluate import checkpoint_architecture, evaluate_set, load_model, _preprocess_all
    from tic_train.matrix import PRIMARY

    patched = [(i, c) for i, c in enumerate(ckpts) if (c / FINETUNED).is_file() and i > 0]
    if not patched:
        raise UserError(f"{run}: no step holds {FINETUNED}; --patching-alpha needs a `--method patching` run trained "
                        "by this version of tic train")
    steps = {c.name: int(c.name.split("-")[1]) for c in ckpts}
    dyn = [es for es in sets if es.bucket is not None]
    out: dict = {}
    for alpha in alphas:
        scored: dict[tuple[str, str], dict] = {}
        for i, ckpt in patched:
            previous = ckpts[i - 1]
            folder = RunFolder(run).eval_dir / "patching" / f"alpha={alpha:g}" / ckpt.name
            fp = _fingerprint(ckpt / FINETUNED, previous / "open_clip_model.safetensors")
            arch = checkpoint_architecture(ckpt)
            model = preprocess = tokenizer = None
            for es in dyn:
                path = cell_path(folder, es.key, arch)
                cell = read_cell(path, f"{fp}-{es.fingerprint}")
                if cell is None:
                    if model is None:
                        model, preprocess, tokenizer, _ = load_model(ckpt, dev)
                        model.load_state_dict({k: v.to(dev) for k, v in patched_weights(ckpt, previous, alpha).items()})
                    sig = (es.key, repr(preprocess))
                    if sig not in pixels_cache:
                        pixels_cache[sig] = _preprocess_all(es, preprocess)
                    cell = {"metrics": evaluate_set(model, tokenizer, pixels_cache[sig], es, dev, batch),
                            "tic": {"checkpoint": ckpt.name, "alpha": alpha, "previous": previous.name, "eval_set": es.key}}
                    write_cell(path, es.key, cell, f"{fp}-{es.fingerprint}")
                scored[(ckpt.name, es.key)] = cell
        tasks = {}
        for kind, metric in PRIMARY.items():
            E: list[list[float | None]] = [[None] * len(buckets) for _ in buckets]
            for c, i in steps.items():
                for j, b in enumerate(buckets):
                    cell = scored.get((c, f"dyn-{b}-{kind}")) or cells.get((c, f"dyn-{b}-{kind}"))
                    if cell is not None and i < len(buckets):
                        E[i][j] = cell["metrics"].get(metric)
            tasks[kind] = {"metric": metric, "E": E, "metrics": transfer_metrics(E)}
        out[f"{alpha:g}"] = tasks
        log.info("patching alpha %g: scored", alpha)
    return out
