"""The figures of `tic report` and the words they use.

Every heatmap of one task shares one colour scale across methods (`shared_limits`), so that a colour
means the same score in every method's figure. A row whose step has no checkpoint (Oracle before its
one run after the last step; the steps a run left out with `steps = [...]`) is masked and drawn
hatched grey with "not trained", never as a score of zero. Axes and titles are in words
(`metric_label`, `TASK_LABELS`), not metric keys; `COMPUTE_CAPTION` and `heatmap_caption` are the
captions the report prints under the figures, where the axes are defined.

Compute is counted per step here too (`per_step_compute`, see tic_train.report): Oracle's is the cost
of retraining it from scratch on D_1..D_t at every step."""

from __future__ import annotations

import math
import re
from pathlib import Path

from ticdata.storage import save_figure_atomic
from tic_train.matrix import column_labels, step_names

TASK_LABELS = {"retrieval": "Retrieval", "classification": "Zero-shot classification"}
TRANSFER_LABELS = {"in_domain": "in-domain", "backward": "backward transfer", "forward": "forward transfer",
                   "final_average": "final average"}
ROW_AXIS = "training step (model after step i)"
COLUMN_AXIS = {"step": "evaluation set (held-out data of step j)", "year": "evaluation set (calendar year)"}
NOT_TRAINED = "not trained"
MISSING_COLOUR = "#d9d9d9"
_NAMED = {"acc1": "Top-1 accuracy", "acc5": "Top-5 accuracy", "mean_per_class_recall": "Mean per-class recall"}
_RECALL = {"image_": "text to image", "text_": "image to text", "": "mean of both directions"}


def metric_label(key: str) -> str:
    """A metric key in words: acc1 -> "Top-1 accuracy", image_retrieval_recall@1 -> "Recall@1 (text to image)",
    retrieval_recall@1 (tic's primary retrieval metric) -> "Recall@1 (mean of both directions)"."""
    if key in _NAMED:
        return _NAMED[key]
    m = re.fullmatch(r"(image_|text_|)retrieval_recall@(\d+)", key)
    if m:
        return f"Recall@{m.group(2)} ({_RECALL[m.group(1)]})"
    return key.replace("_", " ")


def task_label(task: str) -> str:
    return TASK_LABELS.get(task, task)


def per_step_compute(m: dict) -> tuple[float, float]:
    """(samples, MACs) to have an up-to-date model after every step (see tic_train.report)."""
    samples, macs = m["compute"]["samples"], m["compute"]["macs"]
    if m["method"] == "oracle":
        T = len(step_names(m))
        return samples * (T + 1) / 2, macs * (T + 1) / 2
    return samples, macs


def dynamic_average(m: dict) -> float | None:
    vals = [t["metrics"]["final_average"] for t in m["tasks"].values() if t["metrics"]["final_average"] is not None]
    return sum(vals) / len(vals) if vals else None


def untrained_rows(m: dict) -> list[int]:
    """Rows of the matrix whose step has no checkpoint: the steps the method did not train."""
    trained = {r["step"] for r in m["rows"]}
    return [i for i in range(len(step_names(m))) if i not in trained]


def shared_limits(ms: list[dict]) -> dict[str, tuple[float, float]]:
    """Per task, the (vmin, vmax) every method's heatmap of that task uses: the lowest and highest score
    of any trained row of any method ((0, 1) when there is none; widened when all scores are equal)."""
    out = {}
    skip = [set(untrained_rows(m)) for m in ms]
    for task in dict.fromkeys(t for m in ms for t in m["tasks"]):
        vals = [float(v) for m, untrained in zip(ms, skip) if task in m["tasks"] for i, row in enumerate(m["tasks"][task]["E"])
                if i not in untrained for v in row if v is not None and math.isfinite(v)]
        lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
        if hi - lo < 1e-9:
            pad = max(abs(hi) * 0.05, 0.01)
            lo, hi = lo - pad, hi + pad
        out[task] = (lo, hi)
    return out


def heatmap_caption(limits: dict[str, tuple[float, float]], column_mode: str | None) -> str:
    cols = "one calendar year (its held-out rows)" if column_mode == "year" else "training step j (its held-out rows)"
    scale = "; ".join(f"{task_label(t).lower()}: {lo:.3f} to {hi:.3f}" for t, (lo, hi) in limits.items())
    return (f"**Figure.** Rows: the model after training step i; columns: the evaluation set of {cols}; colour and "
            f"number: the task's primary metric (named in each title). All methods' heatmaps of one task share one colour "
            f"scale ({scale}), so a colour is the same score in every figure. Hatched grey rows marked '{NOT_TRAINED}' are "
            "steps without a checkpoint (Oracle trains once, after the last step): no score, not a score of zero; a grey "
            "cell marked '-' in a trained row was not scored.")


def compute_caption(has_static: bool) -> str:
    text = ("**Figure.** One point per method. x axis: the compute to have an up-to-date model after every step, in TMACs "
            "(10^12 multiply-accumulates, estimated from run.json; Oracle: retrained from scratch on all data so far at "
            "every step). y axis: the average dynamic score, the mean over the tasks of each task's final average, that is "
            "the final model's primary metric (retrieval: Recall@1, mean of text to image and image to text; "
            "classification: top-1 accuracy) averaged over the evaluation sets of every step. A method without a final "
            "model (a run that left out the last step) has no point.")
    if has_static:
        text += (" Right panel, y axis: the average static score, the final model's primary metric averaged over the "
                 "static evaluation sets.")
    return text


def has_static(ms: list[dict]) -> bool:
    return any(v is not None for m in ms for v in m.get("static_average", []))


def heatmap_figure(m: dict, task: str, limits: tuple[float, float]):
    """The eval matrix of one method and task (a matplotlib Figure, not saved): untrained rows masked and
    hatched, the colour scale `limits` (vmin, vmax)."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    t = m["tasks"][task]
    raw = np.array([[np.nan if v is None else v for v in row] for row in t["E"]], dtype=float)
    skip = untrained_rows(m)
    mask = ~np.isfinite(raw)
    mask[skip, :] = True
    E = np.ma.array(raw, mask=mask)
    names, labels = step_names(m), column_labels(m)
    norm = Normalize(*limits)
    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 3.0, 1.0 * len(names) + 2.0))
    im = ax.imshow(E, cmap=plt.get_cmap("viridis").with_extremes(bad=MISSING_COLOUR), norm=norm)
    for i in range(len(names)):
        if i in skip:
            ax.add_patch(Rectangle((-0.5, i - 0.5), len(labels), 1, facecolor=MISSING_COLOUR, edgecolor="#9a9a9a", hatch="//", lw=0))
            ax.text((len(labels) - 1) / 2, i, NOT_TRAINED, ha="center", va="center", fontsize=9, color="#333333",
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.9))
            continue
        for j in range(len(labels)):
            if E.mask[i, j]:
                ax.text(j, i, "-", ha="center", va="center", color="#555555", fontsize=9)
            else:
                v = float(E[i, j])
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if norm(v) < 0.6 else "k", fontsize=9)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel(COLUMN_AXIS.get(m.get("column_mode") or "step", COLUMN_AXIS["step"]))
    ax.set_ylabel(ROW_AXIS)
    ax.set_title(f"{m['method']}: {task_label(task)}\n{metric_label(t['metric'])}", fontsize=10)
    bar = fig.colorbar(im, ax=ax, fraction=0.046)
    bar.set_label(f"{metric_label(t['metric'])} (scale shared by all methods)", fontsize=8)
    fig.tight_layout()
    return fig


def save_heatmap(m: dict, task: str, limits: tuple[float, float], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = heatmap_figure(m, task, limits)
    save_figure_atomic(fig, path, dpi=110)
    plt.close(fig)


def in_domain(ms: list[dict], path: Path) -> None:
    """Per task, E[i][i] at each step for every method."""
    import matplotlib.pyplot as plt

    tasks = list(ms[0]["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 3.9))
    axes = axes if len(tasks) > 1 else [axes]
    names = step_names(ms[0])
    for ax, task in zip(axes, tasks):
        for m in ms:
            t = m["tasks"][task]
            diag = t.get("in_domain_by_step") or [row[i] for i, row in enumerate(t["E"])]
            xs = [i for i in range(len(names)) if diag[i] is not None]
            ax.plot(xs, [diag[i] for i in xs], marker="o", label=m["method"])
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_title(f"{task_label(task)}: in-domain score", fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylabel(metric_label(ms[0]["tasks"][task]["metric"]), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)
    plt.close(fig)


def compute(ms: list[dict], path: Path) -> None:
    """The TiC-CLIP paper's main comparison: compute against the average dynamic (and static) score."""
    import matplotlib.pyplot as plt

    panels = [("average dynamic score", dynamic_average)]
    if has_static(ms):
        panels.append(("average static score", lambda m: (m.get("static_average") or [None])[-1]))
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
        ax.set_xlabel("compute for a model after every step (TMACs, estimated)")
        ax.set_ylabel(f"{title} of the final model")
        ax.set_title(f"compute against {title}", fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle("Oracle: retrained from scratch on all data at every step (axes: see the caption)", fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)
    plt.close(fig)


def patching_alpha(m: dict, alphas: list[str], path: Path) -> None:
    """Patching's transfer metrics against alpha, one panel per task."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(m["tasks"]), figsize=(5.2 * len(m["tasks"]), 3.9))
    axes = axes if len(m["tasks"]) > 1 else [axes]
    for ax, task in zip(axes, m["tasks"]):
        for key in ("in_domain", "backward", "final_average"):
            ys = [m["patching_alpha"][a][task]["metrics"][key] for a in alphas]
            ax.plot([float(a) for a in alphas], [float("nan") if y is None else y for y in ys], marker="o", label=TRANSFER_LABELS[key])
        ax.set_xlabel("alpha (weight of the fine-tuned model)")
        ax.set_ylabel(metric_label(m["tasks"][task]["metric"]))
        ax.set_title(task_label(task), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)
    plt.close(fig)


YEAR_AXIS = "first-seen year (the year the manifest dates the row)"
SURVIVAL_AXIS = "survival (share of attempted rows downloaded)"


def survival_points(surv: dict) -> list[dict]:
    """One point per bucket and first-seen year with a rate (`ticdata.survival.survival`'s years): bucket,
    year, survival, low, high, and x, the year moved a little sideways where several buckets share it
    (month buckets), so that no point hides another."""
    pts = [{"bucket": b, "year": int(y), "survival": r["survival"], "low": r["low"], "high": r["high"]}
           for b, rec in surv["buckets"].items() for y, r in rec["years"].items() if r["survival"] is not None]
    for year in {p["year"] for p in pts}:
        same = [p for p in pts if p["year"] == year]
        step = min(0.6 / len(same), 0.15)
        for k, p in enumerate(same):
            p["x"] = year + (k - (len(same) - 1) / 2) * step
    return pts


def survival_figure(surv: dict):
    """Link rot (a matplotlib Figure, not saved, and the points it plots): survival per first-seen year
    with its 95% Wilson interval as error bars, one colour per bucket."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    pts = survival_points(surv)
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for bucket in dict.fromkeys(p["bucket"] for p in pts):
        own = [p for p in pts if p["bucket"] == bucket]
        ys = [p["survival"] for p in own]
        # max(0, ...): at 0% or 100% the interval's rounding can fall a hair on the wrong side of the rate
        err = [[max(0.0, y - p["low"]) for y, p in zip(ys, own)], [max(0.0, p["high"] - y) for y, p in zip(ys, own)]]
        ax.errorbar([p["x"] for p in own], ys, yerr=err, fmt="o", capsize=3, label=bucket)
    ax.set_ylim(0, 1.02)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(YEAR_AXIS)
    ax.set_ylabel(SURVIVAL_AXIS)
    ax.set_title("Link rot: survival by first-seen year (bars: 95% Wilson interval)", fontsize=10)
    ax.grid(alpha=0.3)
    if pts:
        ax.legend(title="bucket", fontsize=8, title_fontsize=8, ncol=max(1, len(surv["buckets"]) // 8))
    fig.tight_layout()
    return fig, pts


def survival(surv: dict, path: Path) -> list[dict]:
    """Save `survival_figure` at `path`; return its points."""
    import matplotlib.pyplot as plt

    fig, pts = survival_figure(surv)
    save_figure_atomic(fig, path, dpi=110)
    plt.close(fig)
    return pts
