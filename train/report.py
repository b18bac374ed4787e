"""`tic report RUN... --out DIR`: the eval matrices of several runs as Markdown, HTML and PNG figures.

Figures: per method and task, the eval-matrix heatmap (rows: the model after step i; columns: the
eval set of step j); per task, in-domain performance E[i][i] at each step for every method; and the
TiC-CLIP paper's main comparison, compute against the average dynamic score (and the average
static score when static sets were evaluated), one point per method. The figures are drawn by
tic_train.report_figures (one colour scale per task across methods, untrained rows marked, axes in
words); each figure's caption in the report defines its axes. report.md is Markdown whose tables are
pipe tables after a blank line; report.html is the same text through ticdata.htmlreport.

Compute is counted two ways. "run" is what the run trained: samples seen and estimated MACs (from
run.json). "per step" is what it costs to have an up-to-date model after every step: the run's own
compute for every method that produces one checkpoint per step, and for Oracle, which trains once
on all data, the cost of retraining it from scratch on D_1..D_t at every step with t x C samples:
sum over t of t x C samples, (T + 1) / 2 times its run (MACs scaled alike). The report says so.

What the scores were trained on, when the documents record it (tic_train.report_data): the data
folder's link rot per bucket and first-seen year, and each step's data repetition.
"""

from __future__ import annotations

import math
from pathlib import Path

from ticdata.errors import UserError
from ticdata.htmlreport import cell, markdown_to_html, table
from ticdata.layout import check_apart
from ticdata.storage import check_output_folder, write_text_atomic
from tic_train import report_data
from tic_train import report_figures as figs
from tic_train.documents import load_matrix, load_run_doc
from tic_train.matrix import column_labels
from tic_train.report_figures import dynamic_average, per_step_compute  # noqa: F401 (this module's names before the split)

METRIC_HELP = {
    "in_domain": "mean of E[i][i]: each step's model on its own step's eval set",
    "backward": "mean of E[i][j], j < i: how much of the past each model keeps",
    "forward": "mean of E[i][j], j > i: how each model does on data that comes later",
    "final_average": "mean of the last row: the final model on every step's eval set",
}


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


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


def build_report(runs: list[Path], out: Path) -> Path:
    """Write OUT/report.md, OUT/report.html and the figures; return the Markdown path."""
    import matplotlib

    matplotlib.use("Agg")
    ms = load_matrices([Path(r) for r in runs])
    surv, uses = report_data.read_survival(ms[0]["data"]), report_data.read_data_use(ms, runs)  # checked before any write
    out = Path(out)
    check_apart(out, {f"run folder {i + 1}": Path(r) for i, r in enumerate(runs)})
    check_output_folder(out)
    limits = figs.shared_limits(ms)
    figures: list[tuple[str, str]] = []
    for m in ms:
        for task in m["tasks"]:
            name = f"heatmap-{m['method']}-{task}.png"
            figs.save_heatmap(m, task, limits[task], out / name)
            figures.append((f"{m['method']}, {figs.task_label(task).lower()}", name))
    figs.in_domain(ms, out / "in-domain.png")
    figs.compute(ms, out / "compute.png")
    md = ["# tic report", "", f"Runs: {len(ms)} methods on `{ms[0]['data']}`.", "", ms[0]["folding"] + ".", "",
          "## Metrics", "", metrics_table(ms), "",
          "Each task's number is its primary metric (retrieval: Recall@1, the mean of text to image and image to text; "
          "classification: zero-shot top-1 accuracy). E[i][j] is the model after step i on the eval set of step j; "
          "'-': no score (the method has no model for it).", ""]
    md += [f"- **{k}**: {v}." for k, v in METRIC_HELP.items()]
    md += ["- **compute**: samples seen and estimated MACs; 'per step' counts what an up-to-date model after every step costs "
           "(Oracle: retrained from scratch on all data so far at every step, sum of t x C samples).", "",
           "## Compute against score", "", "![compute](compute.png)", "", figs.compute_caption(figs.has_static(ms)), "",
           "## In-domain performance per step", "", "![in-domain](in-domain.png)", "",
           "**Figure.** x axis: the training step; y axis: E[i][i], the model after step i on its own step's evaluation "
           "set, in the task's primary metric; one line per method, no point where a method has no model.", "",
           "## Eval matrices", "", figs.heatmap_caption(limits, ms[0].get("column_mode")), ""]
    for title, name in figures:
        md += [f"### {title}", "", f"![{title}]({name})", ""]
    md += _patching_section(ms, out)
    md += report_data.survival_section(surv, ms[0]["data"], out)
    md += report_data.repetition_section(uses)
    md += ["## Inputs", ""]
    for m in ms:
        md.append(f"- {m['method']}: run `{m['run']}` (model {cell(m['model'])}; {len(m['rows'])} checkpoints: "
                  + ", ".join(r["checkpoint"] for r in m["rows"]) + f"); matrix `{m['run']}/eval/matrix.json`; "
                  f"{len(m['cells'])} cells under `{m['run']}/eval/cells/`")
    md.append(f"- data: `{ms[0]['data']}` (eval sets in `eval/<bucket>/{{retrieval,classification}}`, training shards in `train/shards`)")
    for m in ms[:1]:
        for name, s in m.get("static", {}).items():
            md.append(f"- static set {cell(name)}: `{s['folder']}` (metric {cell(s['metric'])})")
        for name, why in m.get("static_skipped", {}).items():
            md.append(f"- static task {cell(name)}: skipped ({cell(why)})")
    write_text_atomic(out / "report.md", "\n".join(md) + "\n")
    write_text_atomic(out / "report.html", markdown_to_html(md, "tic report"))
    return out / "report.md"


def metrics_table(ms: list[dict]) -> str:
    """The metrics of every run as one Markdown table: a header row, then one row per method."""
    tasks = list(ms[0]["tasks"])
    head = ["method", "samples (run)", "samples (per step)", "TMACs (per step)"]
    for t in tasks:
        head += [f"{t} ID", f"{t} BWT", f"{t} FWT", f"{t} final"]
    head.append("static avg")
    gpu = any(m["compute"].get("gpu_hours") is not None for m in ms)
    if gpu:
        head.insert(4, "GPU-h (run)")
    rows = []
    for m in ms:
        s, macs = per_step_compute(m)
        cells = [cell(m["method"]), f"{m['compute']['samples']:,}", f"{s:,.0f}", f"{macs / 1e12:,.2f}"]
        if gpu:
            cells.append("-" if m["compute"].get("gpu_hours") is None else f"{m['compute']['gpu_hours']:,.2f}")
        for t in tasks:
            mt = m["tasks"][t]["metrics"]
            cells += [_fmt(mt["in_domain"]), _fmt(mt["backward"]), _fmt(mt["forward"]), _fmt(mt["final_average"])]
        sa = m.get("static_average") or [None]
        cells.append(_fmt(sa[-1]))
        rows.append(cells)
    return "\n".join(table(head, rows))


def _patching_section(ms: list[dict], out: Path) -> list[str]:
    """Patching's alpha curve (`tic eval --patching-alpha`): a table per task and one figure."""
    curves = [m for m in ms if m.get("patching_alpha")]
    if not curves:
        return []
    m = curves[0]
    alphas = sorted(m["patching_alpha"], key=float)
    lines = ["## Patching: the alpha curve", "",
             f"Each patched step re-interpolated at alpha (weight of the fine-tuned model) from its saved fine-tuned "
             f"weights; the run itself used alpha {cell(m['run_doc']['config'].get('patching_alpha'))}.", ""]
    for task in m["tasks"]:
        rows = [[cell(a)] + [_fmt(m["patching_alpha"][a][task]["metrics"][k]) for k in ("in_domain", "backward", "forward", "final_average")]
                for a in alphas]
        lines += table(["alpha", f"{task} ID", f"{task} BWT", f"{task} FWT", f"{task} final"], rows) + [""]
    figs.patching_alpha(m, alphas, out / "patching-alpha.png")
    return lines + ["![patching alpha](patching-alpha.png)", "",
                    "**Figure.** x axis: alpha, the weight of the fine-tuned model; y axis: the task's primary metric, "
                    "one line per transfer metric.", ""]
