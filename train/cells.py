"""The cached eval cells of `tic eval`: one CLIP_benchmark-shaped JSON per (model, step, eval set),
named so a person can find it:

    RUN/eval/cells/<checkpoint>/<set>.<model>.json        e.g. cells/step-01-2017-2018/dyn-2019-retrieval.tic-tiny.json
    RUN/eval/patching/alpha=<a>/<checkpoint>/<set>.<model>.json
    OUT/eval/cells/pretrained/<set>.<model>.json          (tic eval --pretrained)

The fingerprints of what was scored (the checkpoint's weights, the eval set's shards) are kept
inside, as `tic.cache_key`: a cell is read back only when its key is the current one, so a
retrained checkpoint or a rebuilt eval set is scored again. Cells of earlier versions, named by that
fingerprint (`<set>.<16 hex>-<16 hex>.json`), are not read; each is removed when its cell is written
under the new name.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

from ticdata.storage import write_json_atomic
from tic_train.documents import load_cell

_OLD_NAME = re.compile(r"\.[0-9a-f]{16}-[0-9a-f]{16}\.json")


def cell_path(folder: Path, key: str, model: str) -> Path:
    """The cell of eval set `key` scored by `model` in `folder` (one folder per checkpoint)."""
    return Path(folder) / f"{key}.{model}.json"


def read_cell(path: Path, cache_key: str) -> dict | None:
    """The cached cell when it is whole and was scored from what `cache_key` fingerprints, else None."""
    cell = load_cell(path) if path.exists() else None
    if cell is None or (cell.get("tic") or {}).get("cache_key") != cache_key:
        return None
    return cell


def write_cell(path: Path, key: str, cell: dict, cache_key: str) -> dict:
    """Write the cell with its cache key inside; remove the same set's cell of an earlier version."""
    cell["tic"] = dict(cell.get("tic") or {}, cache_key=cache_key)
    write_json_atomic(path, cell)
    for old in path.parent.glob(f"{glob.escape(Path(key).name)}.*.json"):
        if old != path and _OLD_NAME.fullmatch(old.name[len(Path(key).name):]):
            old.unlink(missing_ok=True)
    return cell
