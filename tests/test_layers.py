"""The house's layers, read from the code's imports (every import, function-level ones included).

The table follows DESIGN.md "Layers, bottom up": a module never imports a module of a higher layer;
the data side (all of ticdata but the CLI and the demo) never imports the trainer; the trainer and
the lower layers never import a verb; no module passes 400 lines. A new module needs a row here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# layer of every ticdata module, bottom up (DESIGN.md "Layers, bottom up")
LAYERS: dict[str, int] = {
    # 1 bytes on disk, no policy
    "ticdata": 1,  # the package itself: __version__ only
    "ticdata.data": 1,  # shipped JSON tables
    "ticdata.storage": 1,
    "ticdata.objstore": 1,
    "ticdata.tars": 1,
    "ticdata.wds": 1,
    "ticdata.ledger": 1,
    "ticdata.mix": 1,
    "ticdata.errors": 1,
    "ticdata.shapes": 1,
    "ticdata.extras": 1,
    # 2 shared rules, formats and runtime
    "ticdata.layout": 2,
    "ticdata.documents": 2,
    "ticdata.benchmarks": 2,
    "ticdata.definitions": 2,  # shipped benchmark definitions (folder benchmarks/)
    "ticdata.columns": 2,
    "ticdata.snapshots": 2,
    "ticdata.executor": 2,
    "ticdata.job": 2,
    "ticdata.manifest": 2,
    "ticdata.uidlists": 2,
    "ticdata.tic_pickles": 2,
    "ticdata.htmlreport": 2,
    "ticdata.progress": 2,
    "ticdata.survival": 2,
    "ticdata.survival_domains": 2,
    # 3 pure steps over rows
    "ticdata.sources": 3,
    "ticdata.recover": 3,
    "ticdata.dedupe": 3,
    "ticdata.phash": 3,
    "ticdata.classes": 3,
    "ticdata.urldates": 3,
    "ticdata.fetch": 3,
    # 4 one module (or small package) per verb
    "ticdata.curate": 4,
    "ticdata.curate_tasks": 4,
    "ticdata.download": 4,
    "ticdata.reshard": 4,
    "ticdata.evalsets": 4,
    "ticdata.evalselect": 4,
    "ticdata.audit": 4,
    "ticdata.uidsplits": 4,
    "ticdata.uidexport": 4,
    "ticdata.uidimport_tasks": 4,
    "ticdata.official_dating": 4,
    "ticdata.synth": 4,
    "ticdata.serve": 4,
    # 5 the trainer (train/, installed as tic_train): reads only layers 1-2 of ticdata
    "tic_train": 5,
    # 6 thin front ends
    "ticdata.cli": 6,
    "ticdata.demo": 6,
}
# sub-modules that take their family's layer without a row of their own
PREFIXES: dict[str, int] = {
    "ticdata.sources.": 3,
    "ticdata.synth.": 4,
    "ticdata.reshard_": 4,
    "ticdata.evalsets_": 4,
    "ticdata.audit_": 4,
    "ticdata.curate_": 4,
    "ticdata.download_": 4,
    "tic_train.": 5,
    "ticdata.cli_": 6,
}
TRAIN = 5
VERB = 4
FRONT = 6
MAX_LINES = 400
PACKAGES = ("ticdata", "train", "tic_train")  # the trainer's folder is train/, its package tic_train


def _canonical(name: str) -> str:
    """The trainer under one name, whether spelled `train` (the folder) or `tic_train` (installed)."""
    head, _, rest = name.partition(".")
    if head == "train":
        return "tic_train" + ("." + rest if rest else "")
    return name


def layer_of(module: str) -> int | None:
    module = _canonical(module)
    if module in LAYERS:
        return LAYERS[module]
    for prefix, layer in PREFIXES.items():
        if module.startswith(prefix):
            return layer
    return None


def is_verb(module: str) -> bool:
    return layer_of(module) == VERB


def _files() -> dict[str, Path]:
    """Module name (canonical) -> file, for every .py under ticdata/ and the trainer's folder."""
    out = {}
    for top in PACKAGES:
        root = REPO / top
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[_canonical(".".join(parts))] = path
    return out


FILES = _files()


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module of a `from X import ...`, relative forms included."""
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, canonical module) of every project import in the file, at any depth."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path.name == "__init__.py", node)
            names = []
            for alias in node.names:
                sub = _canonical(f"{base}.{alias.name}")
                # `from ticdata import fetch` imports the module ticdata.fetch
                names.append(sub if sub in FILES else base)
        else:
            continue
        for name in dict.fromkeys(_canonical(n) for n in names):  # once per module and statement
            if name.split(".")[0] in ("ticdata", "tic_train"):
                found.append((node.lineno, name))
    return found


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(REPO)}:{line}"


IMPORTS = {m: imports_of(m, p) for m, p in FILES.items()}


def test_the_scan_sees_the_code():
    assert {"ticdata.curate", "ticdata.cli", "ticdata.storage", "tic_train.loop"} <= set(FILES)
    assert ("ticdata.curate", "ticdata.curate_tasks") in {(m, i) for m, lst in IMPORTS.items() for _, i in lst}
    assert is_verb("ticdata.synth.world") and is_verb("ticdata.reshard_plan") and not is_verb("ticdata.wds")
    assert layer_of("train.loop") == layer_of("tic_train.loop") == TRAIN


def test_every_module_has_a_layer():
    missing = sorted(
        {f"{FILES[m].relative_to(REPO)} (module {m})" for m in FILES if layer_of(m) is None}
        | {f"{_where(FILES[m], line)} imports {i}" for m, lst in IMPORTS.items() for line, i in lst if layer_of(i) is None}
    )
    assert not missing, "add these modules to LAYERS (or PREFIXES) in tests/test_layers.py:\n" + "\n".join(missing)


def test_no_module_imports_a_higher_layer():
    bad = []
    for m, lst in IMPORTS.items():
        own = layer_of(m)
        for line, i in lst:
            theirs = layer_of(i)
            if own is not None and theirs is not None and theirs > own:
                bad.append(f"{_where(FILES[m], line)}: {m} (layer {own}) imports {i} (layer {theirs})")
    assert not bad, "imports that climb a layer:\n" + "\n".join(bad)


def test_the_data_side_never_imports_the_trainer():
    bad = [
        f"{_where(FILES[m], line)}: {m} imports {i} (the trainer)"
        for m, lst in IMPORTS.items()
        if m.startswith("ticdata") and layer_of(m) != FRONT
        for line, i in lst
        if i.split(".")[0] == "tic_train"
    ]
    assert not bad, "data-side modules importing train/tic_train:\n" + "\n".join(bad)


def test_the_trainer_and_lower_layers_never_import_a_verb():
    bad = []
    for m, lst in IMPORTS.items():
        own = layer_of(m)
        if own is None or not (own < VERB or own == TRAIN):
            continue
        for line, i in lst:
            if is_verb(i):
                bad.append(f"{_where(FILES[m], line)}: {m} (layer {own}) imports the verb module {i}")
            elif own == TRAIN and i.startswith("ticdata") and layer_of(i) == 3:
                bad.append(f"{_where(FILES[m], line)}: {m} imports {i} (layer {layer_of(i)}; the trainer reads layers 1-2)")
    assert not bad, "verb modules (or steps) imported from below:\n" + "\n".join(bad)


@pytest.mark.parametrize("module", sorted(FILES))
def test_no_module_passes_400_lines(module):
    path = FILES[module]
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(REPO)} has {n} lines (at most {MAX_LINES}): split it by responsibility"
