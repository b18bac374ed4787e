"""Which optional extra provides a module, so a verb run without it says what to install in one line.

The base install (`pip install tic`) runs the data verbs that need only Polars, pyarrow and Ray:
curate, uids, audit (without its figures), synth pool, benchmarks. The rest need an extra:
`tic[images]` (download, evalsets, the synthetic image world; reshard needs none), `tic[train]` (train, eval,
report), `tic[plots]` (audit's figures), `tic[tensorboard]`.
"""

from __future__ import annotations

# top-level module -> (distribution, extra)
EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("torch", "train"),
    "torchvision": ("torchvision", "train"),
    "open_clip": ("open_clip_torch", "train"),
    "matplotlib": ("matplotlib", "plots"),
    "img2dataset": ("img2dataset", "images"),
    "webdataset": ("webdataset", "images"),
    "PIL": ("pillow", "images"),
    "tensorboard": ("tensorboard", "tensorboard"),
}


def install_hint(module: str) -> str:
    """The pip line of the extra that brings `module` (a top-level name in EXTRAS)."""
    return f"pip install 'tic[{EXTRAS[module.split('.')[0]][1]}]'"


def missing_extra(err: ImportError) -> str | None:
    """One line naming the missing module and the extra that brings it, or None when the module is
    not one of an extra's (then it is a broken install, not a missing extra)."""
    name = (getattr(err, "name", None) or "").split(".")[0]
    if name not in EXTRAS:
        return None
    dist, extra = EXTRAS[name]
    return f"this needs {dist} ({name} is not installed), from tic's '{extra}' extra: {install_hint(name)}"


# what each verb imports beyond the base install, checked before it starts (a verb that failed in
# its tasks after planning would leave a half-made round behind)
NEEDS: dict[str, tuple[str, ...]] = {
    "download": ("img2dataset", "PIL"),
    "evalsets": ("PIL",),
    "serve-images": ("PIL",),
    "synth world": ("PIL",),
    "demo": ("img2dataset", "PIL", "torch", "open_clip", "matplotlib"),
    "train": ("torch", "open_clip"),
    "eval": ("torch", "open_clip"),
    "report": ("matplotlib",),
}


def require(verb: str) -> None:
    """Raise ModuleNotFoundError for the first module `verb` needs (NEEDS) that is not installed,
    before any work; found, nothing is imported (a refusal of a wrong folder stays fast)."""
    from importlib.util import find_spec

    for module in NEEDS.get(verb, ()):
        if find_spec(module) is None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)
