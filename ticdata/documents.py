"""One checked loader per JSON document of a curated folder: manifest.json, sizes.json,
evalsets.json, reshard.json. Each declares the shape its readers rely on (ticdata.shapes) and what
to do when the file is damaged; a verb calls the loader, never `json.loads`, on these files."""

from __future__ import annotations

from pathlib import Path

from ticdata.benchmarks import DEFINITION_SHAPE
from ticdata.errors import UserError
from ticdata.objstore import location
from ticdata.layout import CuratedFolder
from ticdata.shapes import COUNT, Opt, read_json_document

BENCHMARK_SHAPE = DEFINITION_SHAPE | {"steps": Opt([{"name": str, "years": [int]}])}
MANIFEST_SHAPE = {
    "benchmark": Opt(BENCHMARK_SHAPE),
    "buckets": Opt({str: {"rows": Opt(COUNT), "years": Opt([int]), "months": Opt(list), "step": Opt(str),
                          "splits": Opt({str: COUNT})}}),
    "columns": Opt({str: str}),
    "download": Opt({"rounds": Opt(COUNT), "parameters": Opt(dict), "buckets": Opt({str: dict})}),
    "evalsets": Opt(dict),
}
SIZES_SHAPE = {str: COUNT}
EVALSETS_SHAPE = {"buckets": {str: dict}}
RESHARD_SHAPE = {"buckets": Opt({str: dict}), "ledger": Opt(dict)}


def manifest_remedy(folder: Path) -> str:
    return f"restore it from a copy, or curate again (tic curate ... --out {folder} --overwrite)"


def load_manifest_doc(folder: Path) -> dict:
    """FOLDER/manifest.json, checked; a folder without one is not a finished curation."""
    path = CuratedFolder(location(folder)).manifest_json
    if not path.exists() and not path.is_symlink():
        raise UserError(f"{folder}: no manifest.json; the folder is not a finished curation (run `tic curate ... --out {folder}`)")
    return read_json_document(path, MANIFEST_SHAPE, manifest_remedy(folder))


def load_sizes(path: Path) -> dict[str, int]:
    """A bucket's sizes.json ({tar name: samples}); every name a plain file name of that folder."""
    sizes = read_json_document(path, SIZES_SHAPE, "re-create the bucket's shards (tic download, tic reshard)")
    for name in sizes:
        if not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
            raise UserError(f"{path}: key {name[:60]!r} is not a tar file name of this folder; re-create the bucket's shards")
    return sizes


def load_evalsets_doc(path: Path) -> dict:
    return read_json_document(path, EVALSETS_SHAPE, "build the eval sets again (tic evalsets DIR --overwrite)")


def load_reshard_doc(path: Path) -> dict:
    return read_json_document(path, RESHARD_SHAPE, "reshard again (tic reshard ... --overwrite)")
