"""Static evaluation as DataComp scores it: its 38 tasks (ticdata/data/datacomp_tasks.json, from
DataComp's tasklist.yml) each with its main metric: mean per-class recall for Caltech-101, FGVC
Aircraft, Flowers-102 and Oxford Pets, mean recall@1 for Flickr and MSCOCO retrieval, top-1
elsewhere. `tic eval --static-root DIR` scores every task whose CLIP_benchmark wds folder is under
DIR (named as DataComp's downloader names them, wds_<task with - for />_test); tasks whose metric
needs data tic does not read (WinoGAViL's Jaccard score, iWildCam's macro F1, the worst-group
accuracies of FMoW, Dollar Street and GeoDE) are listed as skipped, with the reason."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ticdata.errors import UserError

# DataComp's metric name -> the name of the same number in tic's cells (tic_train.metrics)
TIC_METRIC = {"acc1": "acc1", "mean_per_class_recall": "mean_per_class_recall", "mean_recall@1": "retrieval_recall@1"}


def datacomp_tasks() -> dict[str, dict]:
    return json.loads(resources.files("ticdata.data").joinpath("datacomp_tasks.json").read_text())["tasks"]


def task_of(name: str) -> str | None:
    """The DataComp task a static set's name denotes ("vtab/pets", "vtab-pets", "wds_vtab-pets_test"), or None."""
    tasks = datacomp_tasks()
    for key, t in tasks.items():
        if name in (key, key.replace("/", "-"), t["folder"]):
            return key
    return None


def metric_of(name: str) -> str | None:
    """tic's metric for a static set named like a DataComp task; None for any other name (tic's default)."""
    key = task_of(name)
    return None if key is None else TIC_METRIC.get(datacomp_tasks()[key]["metric"])


def static_sets_under(root: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """({set name: folder} for every DataComp task under `root` tic can score, {task: why skipped})."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--static-root {root}: not a folder")
    found, skipped = {}, {}
    for key, t in datacomp_tasks().items():
        folder = root / t["folder"]
        if not folder.is_dir():
            continue
        if t["metric"] not in TIC_METRIC:
            skipped[key] = f"DataComp scores it by {t['metric']}, which needs data tic does not read"
            continue
        found[key.replace("/", "-")] = folder
    if not found and not skipped:
        raise UserError(f"--static-root {root}: holds none of DataComp's task folders (e.g. {datacomp_tasks()['imagenet1k']['folder']})")
    return found, skipped
