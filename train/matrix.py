"""The eval matrix of a run (RUN/eval/matrix.json) from its scored cells: E per task (rows: the
model after step i; columns: the eval set of step j), its transfer metrics, the static scores per
checkpoint and the run's compute; and its text form for the terminal."""

from __future__ import annotations

from pathlib import Path

from tic_train.transfer import in_domain_by_step, transfer_metrics, transfer_metrics_by_column

PRIMARY = {"retrieval": "retrieval_recall@1", "classification": "acc1"}


def step_matrix(run: Path, doc: dict, ckpts: list[Path], sets: list, cells: dict,
                year_columns: list[tuple[str, int]] | None = None, cell_paths: dict | None = None) -> dict:
    """matrix.json: E[i][j] = the model after step i on the eval set of column j, a benchmark step,
    or with `year_columns` ((step, year) pairs) one calendar year of a step's held-out rows;
    `cells` names each cell's file (`cell_paths`: (checkpoint, set) -> path)."""
    buckets = list(doc["buckets"])
    steps = {c.name: int(c.name.split("-")[1]) for c in ckpts}
    n = len(buckets)
    cols = year_columns or [(b, None) for b in buckets]
    column_step = [buckets.index(b) for b, _ in cols]
    tasks = {}
    for kind in ("retrieval", "classification"):
        metric = PRIMARY[kind]
        E: list[list[float | None]] = [[None] * len(cols) for _ in range(n)]
        for c, i in steps.items():
            for j, (b, y) in enumerate(cols):
                cell = cells.get((c, f"dyn-{b}-{kind}" + ("" if y is None else f"@{y}")))
                if cell is not None and i < n:
                    E[i][j] = cell["metrics"].get(metric)
        by_column = None if year_columns is None else column_step
        tasks[kind] = {"metric": metric, "E": E,
                       "metrics": transfer_metrics(E) if by_column is None else transfer_metrics_by_column(E, by_column),
                       "in_domain_by_step": in_domain_by_step(E, by_column)}
    static = {}
    for es in sets:
        if es.bucket is None:
            metric = es.metric or PRIMARY[es.kind]
            static[es.key[len("static-"):]] = {"metric": metric, "task": es.kind, "folder": str(es.folder),
                                               "by_step": [cells[(c.name, es.key)]["metrics"].get(metric) if (c.name, es.key) in cells else None
                                                           for c in sorted(ckpts)]}
    steps_doc = doc.get("steps", {})
    compute = {"samples": sum(s.get("samples", 0) for s in steps_doc.values()),
               "macs": sum(s.get("estimated_macs", 0) for s in steps_doc.values()),
               "by_step": {k: {"samples": v.get("samples"), "macs": v.get("estimated_macs"), "gpu_hours": v.get("gpu_hours")}
                           for k, v in steps_doc.items()}}
    if any(v.get("gpu_hours") is not None for v in steps_doc.values()):
        compute["gpu_hours"] = sum(v.get("gpu_hours") or 0.0 for v in steps_doc.values())
    bench = doc.get("benchmark", {})
    return {
        "run": str(run.resolve()),
        "method": doc["config"]["method"],
        "model": doc["config"]["model"],
        "data": doc["data"],
        "rows": [{"checkpoint": c, "step": i} for c, i in steps.items()],
        "columns": ([{"step": b, "years": next((s["years"] for s in bench.get("steps", []) if s["name"] == b), None)} for b in buckets]
                    if year_columns is None else [{"step": b, "year": y, "label": str(y)} for b, y in year_columns]),
        "column_mode": "step" if year_columns is None else "year",
        "folding": (f"columns are the steps of benchmark {bench.get('name')!r} ({bench.get('granularity', 'year')} buckets); the "
                    "eval set of a step is the held-out rows of every year the step holds" if year_columns is None else
                    f"columns are calendar years (ml-tic-clip's eval sets): the held-out rows of each year of the steps of "
                    f"benchmark {bench.get('name')!r}; in-domain means a step's model on its own years"),
        "tasks": tasks,
        "static": static,
        "static_average": _static_average(static, len(ckpts)),
        "compute": compute,
        "cells": {f"{c}/{k}": _relative(run, (cell_paths or {}).get((c, k))) for (c, k) in sorted(cells)},
    }


def _relative(run: Path, path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return str(Path(path).relative_to(run))
    except ValueError:
        return str(path)


def _static_average(static: dict, rows: int) -> list[float | None]:
    out = []
    for r in range(rows):
        vals = [v["by_step"][r] for v in static.values() if v["by_step"][r] is not None]
        out.append(sum(vals) / len(vals) if vals else None)
    return out


def step_names(m: dict) -> list[str]:
    """The rows of a matrix: its steps in order (the columns' steps, once each)."""
    return list(dict.fromkeys(c["step"] for c in m["columns"]))


def column_labels(m: dict) -> list[str]:
    return [c.get("label", c["step"]) for c in m["columns"]]


def format_matrix(m: dict) -> str:
    lines = [f"{m['method']}: {m['run']}"]
    names = step_names(m)
    for kind, t in m["tasks"].items():
        what = "calendar year" if m.get("column_mode") == "year" else "eval set of step"
        lines.append(f"  {kind} ({t['metric']}), rows = model after step, columns = {what}: " + " ".join(column_labels(m)))
        for i, row in enumerate(t["E"]):
            if any(v is not None for v in row):
                lines.append("    " + f"{names[i]:<12}" + " ".join("   -  " if v is None else f"{v:6.3f}" for v in row))
        mt = t["metrics"]
        lines.append("    " + ", ".join(f"{k} {'-' if v is None else f'{v:.3f}'}" for k, v in mt.items()))
    lines.append(f"  cells computed now: {m['computed_cells']} ({m['seconds']} s)")
    return "\n".join(lines)
