"""The stages of `tic evalsets` that run per manifest file, per range or per unit, as the driver
starts them (the tasks themselves: `evalsets_join`, `evalsets_pool`, `evalsets_tasks`,
`evalsets_mark`). The driver passes paths and small tables, and keeps the tasks' stats: names,
counts and the rows a selection may pick, never a manifest row."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ticdata.evalsets_join import UnitSpec, find_repeats, join_range, map_hashes, map_manifest, prepare_unit
from ticdata.evalsets_mark import mark_file, reset_file
from ticdata.evalsets_pool import merge_counts, sum_counts, tally_unit
from ticdata.evalsets_tasks import flag_unit
from ticdata.executor import Task

RANGE_ROWS = 4_000_000  # manifest rows per uid range (and per key range): what a join or repeats task holds
COUNT_GROUP = 256  # manifest files whose counts one task sums


def range_count(files: list[Path]) -> int:
    """How many uid ranges the manifest's rows are cut into (row counts from the files' footers)."""
    import pyarrow.parquet as pq

    rows = sum(pq.read_metadata(f).num_rows for f in files)
    return max(1, math.ceil(rows / RANGE_ROWS))


@dataclass
class Units:
    """The per-file work: one unit per manifest file (index = the file's), then one per range
    holding hashes of uids no manifest row has; the join's image counts per bucket."""

    specs: list[UnitSpec]
    files: int
    images: dict
    repeat_files: list[str]

    @property
    def manifest_units(self) -> list[UnitSpec]:
        return self.specs[: self.files]


def map_files(job, executor, files: list[Path], hash_outs: list[str], ranges: int, label_column: str | None) -> dict:
    """Stage map: manifest uids and hash rows cut by uid range; the label column's values."""
    work = job.path("map")
    tasks = [Task(f"map-m{i:06d}", map_manifest, (str(p), ranges, label_column, str(work / f"m-{i:06d}.arrow")), str(p),
                  outputs=(work / f"m-{i:06d}.arrow",)) for i, p in enumerate(files)]
    tasks += [Task(f"map-h{i:06d}", map_hashes, (h, ranges, str(work / f"h-{i:06d}.arrow")), h, outputs=(work / f"h-{i:06d}.arrow",))
              for i, h in enumerate(hash_outs)]
    stats = job.stage(executor, "map", tasks)
    values = sorted({v for t in tasks if t.key.startswith("map-m") for v in stats[t.key]["values"]})
    return {"manifest": [t.args[-1] for t in tasks if t.key.startswith("map-m")],
            "hashes": [t.args[-1] for t in tasks if t.key.startswith("map-h")], "values": values}


def build_units(job, executor, files: list[Path], maps: dict, ranges: int, imported: str) -> Units:
    """Stages join, units and repeats: each manifest file's images, and which of its rows repeat an
    image or a caption of their bucket."""
    state = job.state
    joins = [str(state / "join" / f"join-{r:05d}.arrow") for r in range(ranges)]
    jt = [Task(f"join-{r:05d}", join_range, (r, maps["manifest"], maps["hashes"], joins[r]), f"uid range {r}",
               outputs=(Path(joins[r]),)) for r in range(ranges)]
    joined = job.stage(executor, "join", jt)
    images: dict = {}
    for t in jt:
        for b, n in joined[t.key]["images"].items():
            images[b] = images.get(b, 0) + n
    every = tuple(joins)  # one tuple shared by the units: the driver holds O(files + ranges)
    specs = [UnitSpec(i, str(p), every, i, str(state)) for i, p in enumerate(files)]
    for r, t in enumerate(jt):
        if joined[t.key]["orphans"]:
            specs.append(UnitSpec(len(specs), None, (joins[r],), len(files), str(state)))
    ut = [Task(f"unit-{u.index:06d}", prepare_unit, (u, imported, ranges), u.manifest or f"uid range {u.joins[0]}",
               outputs=(Path(u.path("images")),) + ((Path(u.path("keys", "arrow")),) if u.manifest else ())) for u in specs]
    job.stage(executor, "units", ut)
    keys = [u.path("keys", "arrow") for u in specs[: len(files)]]
    repeats = [str(state / "repeats" / f"repeats-{q:05d}.arrow") for q in range(ranges)]
    job.stage(executor, "repeats", [Task(f"repeats-{q:05d}", find_repeats, (q, keys, len(files), repeats[q]), f"key range {q}",
                                         outputs=(Path(repeats[q]),)) for q in range(ranges)])
    return Units(specs, len(files), images, repeats)


def tally(job, executor, units: Units, imported: str, params, vocab) -> dict:
    """Stages tally and sums: per manifest file the selection's counts and its candidate pool; the
    counts summed by groups of files, then here (`evalsets_pool.merge_counts`' shape)."""
    files = [Path(u.path("counts", "json")) for u in units.manifest_units]
    tasks = [Task(f"tally-{u.index:06d}", tally_unit, (u, imported, units.repeat_files, params, vocab), u.manifest,
                  outputs=(Path(u.path("pool")), files[u.index])) for u in units.manifest_units]
    job.stage(executor, "tally", tasks)
    groups = [[str(f) for f in files[i : i + COUNT_GROUP]] for i in range(0, len(files), COUNT_GROUP)]
    sums = job.stage(executor, "tally sums", [Task(f"sum-{g:05d}", sum_counts, (paths,), f"counts of {len(paths)} files")
                                                for g, paths in enumerate(groups)])
    return merge_counts([sums[f"sum-{g:05d}"] for g in range(len(groups))])


def decontaminate(job, executor, units: Units, eval_table: str, distance: int) -> dict:
    """Stage decontaminate: per unit, its training rows that match an eval image or pair; the
    flagged rows per bucket and reason."""
    tasks = [Task(f"flag-{u.index:06d}", flag_unit, (u, eval_table, u.path("flags"), distance), u.manifest or f"unit {u.index}",
                  outputs=(Path(u.path("flags")),)) for u in units.specs]
    got = job.stage(executor, "decontaminate", tasks)
    counts: dict = {}
    for s in got.values():
        for b, per in s["flagged"].items():
            for r, n in per.items():
                counts.setdefault(b, {}).setdefault(r, 0)
                counts[b][r] += n
    return counts


def mark(job, executor, units: Units, marks: str, granularity: str) -> dict[str, dict]:
    """Stage manifest: every manifest file's split marks; each file's counts."""
    tasks = [Task(f"mark-{u.index:06d}", mark_file, (u.manifest, u.path("images"), u.path("flags"), marks, granularity), u.manifest)
             for u in units.manifest_units]
    return job.stage(executor, "manifest", tasks)


def reset(job, executor, files: list[Path]) -> None:
    """Stage reset: rows an earlier run marked go back to train (before --overwrite's new marks)."""
    job.stage(executor, "reset splits", [Task(f"reset-{i:06d}", reset_file, (str(p),), str(p)) for i, p in enumerate(files)])
