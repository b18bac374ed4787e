"""RUN/eval/results.csv and RUN/eval/results.jsonl: every score of `tic eval` as one row per
(checkpoint, eval set, metric), the long form of CLIP_benchmark's `build` table (its columns model,
pretrained, dataset, task, then the metric and its value) with tic's own columns beside them:

    method       the run's continual method (frozen-<label> for an existing model)
    model        the open_clip architecture          pretrained   the weights file scored
    checkpoint   step-NN-<bucket>, or "pretrained"   step, step_index   the step the model was trained through
    dataset      wds/<set key>, as in the cell       task         zeroshot_retrieval | zeroshot_classification
    bucket       the eval set's step (empty: static)  year         its calendar year (`--columns year`), else empty
    metric       the cell's metric name              value        its value, exactly the cell's (empty: none)

Rows come in the order of the checkpoints (steps), then the eval sets, then the metrics by name, so
two evaluations of the same run give the same files. Patching's alpha curve is matrix.json's only.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ticdata.layout import RunFolder
from ticdata.storage import write_bytes_atomic

COLUMNS = ("method", "model", "pretrained", "checkpoint", "step", "step_index", "dataset", "task", "bucket", "year",
           "metric", "value")
TASK_NAME = {"retrieval": "zeroshot_retrieval", "classification": "zeroshot_classification"}


def checkpoint_steps(ckpts: list[Path]) -> list[tuple[str, str | None, int | None]]:
    """(checkpoint, step, step index) of step folders named step-NN-<bucket>."""
    out = []
    for c in ckpts:
        _, index, name = c.name.split("-", 2)
        out.append((c.name, name, int(index)))
    return out


def result_rows(method: str, ckpts: list[Path] | list[tuple[str, str | None, int | None]], sets: list, cells: dict) -> list[dict]:
    """One row per (checkpoint, eval set, metric) of the scored cells ((checkpoint name, set key) -> cell)."""
    steps = checkpoint_steps(ckpts) if ckpts and isinstance(ckpts[0], Path) else list(ckpts)
    rows = []
    for name, step, index in steps:
        for es in sets:
            cell = cells.get((name, es.key))
            if cell is None:
                continue
            year = es.key.rsplit("@", 1)[1] if "@" in es.key else None
            for metric, value in sorted(cell["metrics"].items()):
                rows.append({"method": method, "model": cell.get("model"), "pretrained": cell.get("pretrained"),
                             "checkpoint": name, "step": step, "step_index": index,
                             "dataset": cell.get("dataset", f"wds/{es.key}"), "task": cell.get("task", TASK_NAME[es.kind]),
                             "bucket": es.bucket, "year": None if year is None else int(year), "metric": metric, "value": value})
    return rows


def write_results(run: Path, rows: list[dict]) -> tuple[Path, Path]:
    """RUN/eval/results.csv (an empty field for a missing value) and RUN/eval/results.jsonl (null)."""
    folder = RunFolder(Path(run)).eval_dir
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r[k] is None else r[k]) for k in COLUMNS})
    paths = folder / "results.csv", folder / "results.jsonl"
    write_bytes_atomic(paths[0], text.getvalue().encode())
    write_bytes_atomic(paths[1], "".join(json.dumps({k: r[k] for k in COLUMNS}) + "\n" for r in rows).encode())
    return paths
