"""The sections of `tic report` about the training data behind the scores: link rot and data repetition.

Why a module of its own: tic_train.report lays out the eval matrices, these sections read two other
documents, each optional: the data folder's manifest.json (`download.survival`, written by `tic
download`, see ticdata.survival) and each run's run.json (`steps.<step>.data_use`, written by `tic
train`, see tic_train.data_use). A score means little without them: an old bucket that lost half its
images to link rot, or a step that drew its budget from a small bucket ten times over, trains on other
data than the published benchmark. A folder that was never downloaded (resharded, or downloaded
before survival was recorded), a data folder that is gone, or a run trained before data_use existed
gives no section: the report states only what the documents hold.

Both documents are read before anything is written (`read_survival`, `read_data_use`) and checked
against the shape these sections rely on, so a damaged one ends the report with one line naming the
file and the key.
"""

from __future__ import annotations

from pathlib import Path

from ticdata.documents import load_manifest_doc, manifest_remedy
from ticdata.htmlreport import cell, table
from ticdata.layout import CuratedFolder, RunFolder
from ticdata.objstore import location
from ticdata.shapes import COUNT, NUMBER, Opt, check_shape
from tic_train import report_figures as figs
from tic_train.matrix import step_names

SHARE = (float, None)
RATE = {"attempted": COUNT, "survived": COUNT, "survival": SHARE, "low": SHARE, "high": SHARE}
SURVIVAL_SHAPE = {
    "buckets": {str: RATE | {"lost": Opt({str: COUNT}), "years": {str: RATE}}},
    "official": Opt({str: {"listed": COUNT, "in_pool": COUNT, "downloaded": COUNT, "lost": int, "kept": SHARE}}),
}
DATA_USE_SHAPE = {
    "unique": COUNT, "draws": COUNT, "max_epochs": NUMBER, "warning": Opt((str, None)),
    "buckets": {str: {"draws": COUNT, "unique": Opt(COUNT), "available": Opt(COUNT), "epochs": NUMBER}},
}


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def _interval(r: dict) -> str:
    return "-" if r["low"] is None or r["high"] is None else f"[{r['low']:.1%}, {r['high']:.1%}]"


def _lost(b: dict) -> str:
    return ", ".join(f"{cell(s)} {n:,}" for s, n in (b.get("lost") or {}).items()) or "-"


def read_survival(data: str) -> dict | None:
    """The data folder's `download.survival` (checked), or None when there is none to show: the folder
    or its manifest.json is gone, it was never downloaded, or downloaded before survival was kept."""
    path = CuratedFolder(location(data)).manifest_json
    if not path.exists():
        return None
    surv = (load_manifest_doc(location(data)).get("download") or {}).get("survival")
    if not surv or not surv.get("buckets"):
        return None
    return check_shape(surv, SURVIVAL_SHAPE, f"{path} (download.survival)", manifest_remedy(data))


def read_data_use(ms: list[dict], runs: list[Path]) -> list[dict]:
    """Every (run, step) record of data repetition (checked; `runs`: the run folders of `ms`), in step
    order then run order: method, step and the record; empty when no run has one."""
    order = {s: i for i, s in enumerate(step_names(ms[0]))}
    out = []
    for k, (m, run) in enumerate(zip(ms, runs)):
        path = RunFolder(Path(run)).run_json
        for step, info in m["run_doc"].get("steps", {}).items():
            if isinstance(info, dict) and info.get("data_use") is not None:
                use = check_shape(info["data_use"], DATA_USE_SHAPE, f"{path} (steps.{step}.data_use)",
                                  "train the run again into a new folder (tic train ... --out NEW)")
                out.append({"method": m["method"], "step": step, "use": use, "order": (order.get(step, len(order)), k)})
    return sorted(out, key=lambda r: r["order"])


def survival_section(surv: dict | None, data: str, out: Path) -> list[str]:
    """Link rot per bucket and first-seen year, the official lists when there are some, and survival.png."""
    if surv is None:
        return []
    buckets = surv["buckets"]
    rows = [[cell(name), f"{b['attempted']:,}", f"{b['survived']:,}", _pct(b["survival"]), _interval(b), _lost(b)]
            for name, b in buckets.items()]
    years = [[cell(y), cell(name), f"{r['attempted']:,}", f"{r['survived']:,}", _pct(r["survival"]), _interval(r)]
             for name, b in buckets.items() for y, r in b["years"].items()]
    md = ["## Link rot: survival per bucket", "",
          f"What `tic download` got of each bucket of `{data}` (manifest.json, download.survival): survival is the "
          "share of the attempted rows (status success, failed_to_download, failed_to_resize or refused; rows never "
          "fetched are not counted) that were downloaded, with its 95% Wilson score interval.", "",
          *table(["bucket", "attempted", "survived", "survival", "95% interval", "lost (by status)"], rows), "",
          "The same per first-seen year, the year the manifest dates a row (and so its bucket):", "",
          *table(["year", "bucket", "attempted", "survived", "survival", "95% interval"], years), ""]
    md += _official(surv.get("official") or {})
    figs.survival(surv, out / "survival.png")
    return md + ["![survival](survival.png)", "", SURVIVAL_CAPTION, ""]


SURVIVAL_CAPTION = (
    "**Figure.** One point per bucket and first-seen year. x axis: the first-seen year, the year the manifest dates "
    "a row (points of buckets that share a year are set a little apart); y axis: survival, the share of that year's "
    "attempted rows that were downloaded, from 0 to 1; bars: the 95% Wilson score interval; colour: the bucket. "
    "Old buckets usually lose more (the web forgets old pages), so a regenerated benchmark's early steps are smaller "
    "than the published ones; and the survivors are not a random sample but lean toward long-lived sites. Where the "
    "folder came from official uid lists, the official lists table gives the published size beside what was kept.")


def _official(official: dict) -> list[str]:
    """Per official uid list the folder was imported from: listed, found in the pool, downloaded, lost, kept."""
    if not official:
        return []
    rows = [[cell(name), f"{o['listed']:,}", f"{o['in_pool']:,}", f"{o['downloaded']:,}", f"{o['lost']:,}", _pct(o["kept"])]
            for name, o in official.items()]
    return ["Against the official uid lists (lost: listed but not downloaded, because not in the pool or not fetched):", "",
            *table(["official list", "listed", "in the pool", "downloaded", "lost", "kept"], rows), ""]


def _most_repeated(use: dict) -> tuple[str, str]:
    """(max epochs, its bucket) of one record; the first bucket on a tie, '-' without draws."""
    if not use["buckets"]:
        return "-", "-"
    name = max(use["buckets"], key=lambda k: use["buckets"][k]["epochs"])
    return f"{use['max_epochs']:.2f}", cell(name)


def repetition_section(uses: list[dict]) -> list[str]:
    """Per step and method: samples drawn, unique samples, the most repeated bucket's epochs, and the
    warnings' text; no section when no run recorded data use."""
    if not uses:
        return []
    rows = [[cell(u["step"]), cell(u["method"]), f"{u['use']['draws']:,}", f"{u['use']['unique']:,}", *_most_repeated(u["use"]),
             "yes" if u["use"].get("warning") else "no"] for u in uses]
    md = ["## Data repetition per step", "",
          "Every step draws its fixed budget of samples whatever its data's size, so a small bucket (link rot, a small "
          "replay share) is repeated. From each run's run.json (steps.<step>.data_use): samples drawn, the distinct "
          "samples among them, and the most repeated bucket's epochs (its draws over the samples the step could use "
          "from it). Grouped by step, so methods trained on one step sit together.", "",
          *table(["step", "method", "samples drawn", "unique samples", "max epochs", "on bucket", "warning"], rows), ""]
    warned = [u for u in uses if u["use"].get("warning")]
    if warned:
        md += ["Warnings:", ""] + [f"- {cell(u['method'])}: {cell(u['use']['warning'])}" for u in warned] + [""]
    return md
