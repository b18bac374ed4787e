"""`tic report RUN... --out DIR`: the eval matrices of several runs as Markdown, HTML and PNG figures.

Figures: per method and task, the eval-matrix heatmap (rows: the model after step i; columns: the
eval set of step j); per task, in-domain performance E[i][i] at each step for every method; and the
TiC-CLIP paper's main comparison, compute against the average dynamic score (and the average
static score when static sets were evaluated), one point per method.

Compute is counted two ways. "run" is what the run trained: samples seen and estimated MACs (from
run.json). "per step" is what it costs to have an up-to-date model after every step: the run's own
compute for every method that produces one checkpoint per step, and for Oracle, which trains once
on all data, the cost of retraining it from scratch on D_1..D_t at every step with t x C samples:
sum over t of t x C samples, (T + 1) / 2 times its run (MACs scaled alike). The report says so.
"""

from __future__ import annotations

import math
from pathlib import Path

from ticdata.errors import UserError
from ticdata.htmlreport import markdown_to_html
from ticdata.layout import check_apart
from ticdata.storage import check_output_folder, save_figure_atomic, write_text_atomic
from tic_train.documents import load_matrix, load_run_doc
from tic_train.matrix import column_labels, step_names

METRIC_HELP = {
    "in_domain": "mean of E[i][i]: each step's model on its own step's eval set",
    "backward": "mean of E[i][j], j < i: how much of the past each model keeps",
    "forward": "mean of E[i][j], j > i: how each model does on data that comes later",
    "final_average": "mean of the last row: the final model on every step's eval set",
}


def load_matrices(runs: list[Path]) -> list[dict]:
    """The checked matrix and run.json of every run; refused when the runs are not comparable
    (two runs of one method, or runs of different benchmarks: other steps or another data folder)."""
    out = []
    for run in runs:
        m = load_matrix(Path(run))
        m["run_doc"] = load_run_doc(Path(run))
        out.append(m)
    methods = [m["method"] for m in out]
    if len(set(methods)) != len(methods):
        raise UserError(f"two runs of the same method ({', '.join(methods)}); report one run per method")
    first = out[0]
    for run, m in zip(runs[1:], out[1:]):
        steps, first_steps = column_labels(m), column_labels(first)
        if steps != first_steps or m["data"] != first["data"] or m.get("column_mode") != first.get("column_mode"):
            raise UserError(f"{run}: not comparable with {runs[0]}: steps {', '.join(steps)} of {m['data']} against "
                            f"{', '.join(first_steps)} of {first['data']}; report runs of one benchmark and data folder together")
    return out


def per_step_compute(m: dict) -> tuple[float, float]:
    """(samples, MACs) to have an up-to-date model after every step (see the module docstring)."""
    samples, macs = m["compute"]["samples"], m["compute"]["macs"]
    if m["method"] == "oracle":
        T = len(step_names(m))
        return samples * (T + 1) / 2, macs * (T + 1) / 2
    return samples, macs


def dynamic_average(m: dict) -> float | None:
    vals = [t["metrics"]["final_average"] for t in m["tasks"].values() if t["metrics"]["final_average"] is not None]
    return sum(vals) / len(vals) if vals else None


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _heatmap(m: dict, task: str, path: Path) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    t = m["tasks"][task]
    E = np.array([[np.nan if v is None else v for v in row] for row in t["E"]], dtype=float)
    names, labels = step_names(m), column_labels(m)
    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 2.2, 1.0 * len(names) + 1.6))
    im = ax.imshow(E, cmap="viridis", vmin=0, vmax=max(1e-9, np.nanmax(E)) if np.isfinite(E).any() else 1)
    for i in range(len(names)):
        for j in range(len(labels)):
            if np.isfinite(E[i, j]):
                ax.text(j, i, f"{E[i, j]:.2f}", ha="center", va="center", color="w" if E[i, j] < np.nanmax(E) * 0.6 else "k", fontsize=9)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("calendar year" if m.get("column_mode") == "year" else "eval set of step j")
    ax.set_ylabel("model after step i")
    ax.set_title(f"{m['method']}: {task} ({t['metric']})")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)
    plt.close(fig)


def _in_domain(ms: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    tasks = list(ms[0]["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 3.8))
    axes = axes if len(tasks) > 1 else [axes]
    names = step_names(ms[0])
    for ax, task in zip(axes, tasks):
        for m in ms:
            t = m["tasks"][task]
            diag = t.get("in_domain_by_step") or [row[i] for i, row in enumerate(t["E"])]
            xs = [i for i in range(len(names)) if diag[i] is not None]
            ax.plot(xs, [diag[i] for i in xs], marker="o", label=m["method"])
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_title(f"in-domain {task} ({ms[0]['tasks'][task]['metric']})")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)
    plt.close(fig)


def _compute(ms: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    has_static = any(v is not None for m in ms for v in m.get("static_average", []))
    panels = [("average dynamic score (final model)", dynamic_average)]
    if has_static:
        panels.append(("average static score (final model)", lambda m: m["static_average"][-1]))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 4.0))
    axes = axes if len(panels) > 1 else [axes]
    for ax, (title, score) in zip(axes, panels):
        for m in ms:
            x = per_step_compute(m)[1] / 1e12
            y = score(m)
            if y is None:
                continue
            ax.scatter([x], [y], s=60)
            ax.annotate(m["method"], (x, y), textcoords="offset points", xytext=(6, 4), fontsize=9)
        ax.margins(x=0.2, y=0.12)
        ax.set_xlabel("compute for a model after every step (TMACs, est.)")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
    fig.suptitle("compute vs score (Oracle: retrained on all data at every step)", fontsize=10)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)
    plt.close(fig)


def build_report(runs: list[Path], out: Path) -> Path:
    """Write OUT/report.md, OUT/report.html and the figures; return the Markdown path."""
    import matplotlib

    matplotlib.use("Agg")
    ms = load_matrices([Path(r) for r in runs])
    out = Path(out)
    check_apart(out, {f"run folder {i + 1}": Path(r) for i, r in enumerate(runs)})
    check_output_folder(out)
    figures: list[tuple[str, str]] = []
    for m in ms:
        for task in m["tasks"]:
            name = f"heatmap-{m['method']}-{task}.png"
            _heatmap(m, task, out / name)
            figures.append((f"{m['method']}, {task}", name))
    _in_domain(ms, out / "in-domain.png")
    _compute(ms, out / "compute.png")
    table = metrics_table(ms)
    md = ["# tic report", "", f"Runs: {len(ms)} methods on {ms[0]['data']}.", "", ms[0]["folding"] + ".", "",
          "## Metrics", "", table, "",
          "Each task's number is its primary metric (retrieval: mean of text-to-image and image-to-text recall@1; "
          "classification: zero-shot top-1). E[i][j] is the model after step i on the eval set of step j.", ""]
    md += [f"- **{k}**: {v}." for k, v in METRIC_HELP.items()]
    md += ["- **compute**: samples seen and estimated MACs; 'per step' counts what an up-to-date model after every step costs "
           "(Oracle: retrained from scratch on all data so far at every step, sum of t x C samples).", "",
           "## Compute against score", "", "![compute](compute.png)", "",
           "## In-domain performance per step", "", "![in-domain](in-domain.png)", "", "## Eval matrices", ""]
    for title, name in figures:
        md += [f"### {title}", "", f"![{title}]({name})", ""]
    md += _patching_section(ms, out)
    md += ["## Inputs", ""]
    for m in ms:
        md.append(f"- {m['method']}: run `{m['run']}` (model {m['model']}; {len(m['rows'])} checkpoints: "
                  + ", ".join(r["checkpoint"] for r in m["rows"]) + f"); matrix `{m['run']}/eval/matrix.json`; "
                  f"{len(m['cells'])} cells under `{m['run']}/eval/cells/`")
    md.append(f"- data: `{ms[0]['data']}` (eval sets in `eval/<bucket>/{{retrieval,classification}}`, training shards in `train/shards`)")
    for m in ms[:1]:
        for name, s in m.get("static", {}).items():
            md.append(f"- static set {name}: `{s['folder']}` (metric {s['metric']})")
        for name, why in m.get("static_skipped", {}).items():
            md.append(f"- static task {name}: skipped ({why})")
    write_text_atomic(out / "report.md", "\n".join(md) + "\n")
    write_text_atomic(out / "report.html", markdown_to_html(md, "tic report"))
    return out / "report.md"


def metrics_table(ms: list[dict]) -> str:
    tasks = list(ms[0]["tasks"])
    head = ["method", "samples (run)", "samples (per step)", "TMACs (per step)"]
    for t in tasks:
        head += [f"{t} ID", f"{t} BWT", f"{t} FWT", f"{t} final"]
    head.append("static avg")
    gpu = any(m["compute"].get("gpu_hours") is not None for m in ms)
    if gpu:
        head.insert(4, "GPU-h (run)")
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in ms:
        s, macs = per_step_compute(m)
        cells = [m["method"], f"{m['compute']['samples']:,}", f"{s:,.0f}", f"{macs / 1e12:,.2f}"]
        if gpu:
            cells.append("-" if m["compute"].get("gpu_hours") is None else f"{m['compute']['gpu_hours']:,.2f}")
        for t in tasks:
            mt = m["tasks"][t]["metrics"]
            cells += [_fmt(mt["in_domain"]), _fmt(mt["backward"]), _fmt(mt["forward"]), _fmt(mt["final_average"])]
        sa = m.get("static_average") or [None]
        cells.append(_fmt(sa[-1]))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _patching_section(ms: list[dict], out: Path) -> list[str]:
    """Patching's alpha curve (`tic eval --patching-alpha`): a table per task and one figure."""
    curves = [m for m in ms if m.get("patching_alpha")]
    if not curves:
        return []
    import matplotlib.pyplot as plt

    m = curves[0]
    alphas = sorted(m["patching_alpha"], key=float)
    lines = ["## Patching: the alpha curve", "",
             f"Each patched step re-interpolated at alpha (weight of the fine-tuned model) from its saved fine-tuned "
             f"weights; the run itself used alpha {m['run_doc']['config'].get('patching_alpha')}.", ""]
    fig, axes = plt.subplots(1, len(m["tasks"]), figsize=(5.2 * len(m["tasks"]), 3.8))
    axes = axes if len(m["tasks"]) > 1 else [axes]
    for ax, task in zip(axes, m["tasks"]):
        lines += [f"| alpha | {task} ID | {task} BWT | {task} FWT | {task} final |", "|---|---|---|---|---|"]
        for a in alphas:
            mt = m["patching_alpha"][a][task]["metrics"]
            lines.append(f"| {a} | {_fmt(mt['in_domain'])} | {_fmt(mt['backward'])} | {_fmt(mt['forward'])} | {_fmt(mt['final_average'])} |")
        lines.append("")
        for key in ("in_domain", "backward", "final_average"):
            ys = [m["patching_alpha"][a][task]["metrics"][key] for a in alphas]
            ax.plot([float(a) for a in alphas], [float("nan") if y is None else y for y in ys], marker="o", label=key)
        ax.set_xlabel("alpha (weight of the fine-tuned model)")
        ax.set_title(task)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, out / "patching-alpha.png", dpi=110)
    plt.close(fig)
    return lines + ["![patching alpha](patching-alpha.png)", ""]
