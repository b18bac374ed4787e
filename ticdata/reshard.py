"""`tic reshard`: a webdataset pool (e.g. DataComp's) -> webdataset shards per bucket.

The samples of each bucket are chosen by uid, either from a curated folder (the manifest rows of
the bucket's years, and months for monthly buckets, optionally of one split; a manifest made by
`tic uids import` names each row's bucket in its `bucket` column) or from DataComp-format uid
files (BUCKET=FILE.npy, or FILE.npy whose stem names the bucket).

Output, under OUT:

    shards/<bucket>/00000000.tar ...   key = uid; every member of the sample, renamed <uid>.<ext>,
                                       sorted by extension, bytes unchanged; headers normalised
    shards/<bucket>/sizes.json         {"00000000.tar": samples, ...} (what open_clip reads)
    reshard.json                       counts per bucket, the ledger, inputs, parameters

Shard k of a bucket holds the bucket's samples k*S .. (k+1)*S-1 in input order (input tars in the
order given, folders sorted, samples in tar order), S = samples_per_shard; only the last shard of
a bucket is smaller. A uid seen again later in the pool is a duplicate: the first copy is kept.
Every sample read is counted once: rows_in = selected + not_selected + duplicates + malformed.

Three stages of one job (`ticdata.job`; tasks in `ticdata.reshard_tasks`, the uid lookup in
`ticdata.reshard_select` and `ticdata.reshard_lookup`, built first by two stages of its own), each
task writing atomically under a deterministic name and leaving a completion marker under
OUT/.tic/reshard/, so a killed run resumes and gives the same bytes:

1. read: one task per group of `tars_per_task` input tars streams them one member at a time,
   looks each uid up, and appends the selected samples to one part file per bucket (plus the byte
   range of each sample) and the sorted uids it saw to `seen.npy`. Duplicates within the group
   are dropped here.
2. dedupe: one task per range of uid values gathers that range from every `seen.npy` and finds
   uids seen by more than one read task; copies after the first are duplicates (and, if
   selected, are left out of the output).
3. write: one task per output shard copies its samples' byte ranges from the part files into
   shards/<bucket>/NNNNNNNN.tar (a shard's samples are known from the read counts and the
   dedupe results alone, so the layout is the same whatever the grouping, executor or workers).

On a Ray cluster OUT must be on storage every node sees (the tasks share OUT/.tic/reshard/); it
is deleted once reshard.json and the job's done mark are written.

Memory: the uid -> bucket lookup (18 bytes per selected uid, as DataComp's resharder's `u8,u8`
array plus a 16-bit bucket: about 229 GB at 12.7B rows) is built by tasks before the read stage,
a sorted run per manifest file (or per uid file) merged one uid range at a time
(`ticdata.reshard_lookup`), and kept under OUT/.tic/reshard/lookup/ as one file set per range,
memory-mapped by every task (one copy in the page cache per machine, shared); the driver holds
names and counts only. A read task holds one sample's members at a time and the set of uids it has
seen (about 100 bytes per sample of its `tars_per_task` tars); a dedupe task holds one range of
uids (at most about DEDUPE_UIDS, 24-40 bytes each); a write task streams bytes through an 8 MiB
buffer. Nothing any process holds grows with the pool's size.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ticdata import __version__
from ticdata.errors import UserError, printable
from ticdata.executor import Task
from ticdata.job import Job
from ticdata.layout import SHARDS_DIR, CuratedFolder, shard_name
from ticdata.documents import load_reshard_doc
from ticdata.ledger import LedgerError
from ticdata.reshard_lookup import build_lookup, content_sha256
from ticdata.reshard_select import Selection, selection_from_manifest, selection_from_uid_files
from ticdata.reshard_tasks import (
    DedupeSpec,
    ReadSpec,
    WriteSpec,
    dedupe_key,
    dedupe_range,
    index_path,
    read_key,
    read_tars,
    work_dir,
    write_key,
    write_shard,
)
from ticdata.storage import dumps_json, rmtree, write_json_atomic
from ticdata.wds import MALFORMED, check_inputs, expand_shards

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEDUPE_UIDS = 8_000_000  # uids per dedupe task (about 40 bytes each while sorting)
EXAMPLES = 5  # malformed samples named per reason in reshard.json
_U8 = np.dtype("<u8")


@dataclass
class ReshardPlan:
    inputs: list[tuple[str, int, int]]  # path, bytes, mtime_ns
    selection: Selection
    out: Path
    samples_per_shard: int
    split: str | None
    tars_per_task: int

    def fingerprint(self, selection_sha256: str | None = None) -> dict:
        """What determines the output bytes (not how the work is split into tasks): the job's plan
        names the selection by its inputs (path, size, mtime: known before the lookup is built);
        reshard.json by the lookup's content hash (`selection_sha256`)."""
        selection = self.selection.identity() if selection_sha256 is None else {"buckets": list(self.selection.names),
                                                                                 "sha256": selection_sha256}
        return json.loads(dumps_json({
            "tool_version": __version__,
            "inputs": [list(x) for x in self.inputs],
            "selection": selection,
            "samples_per_shard": self.samples_per_shard,
        }))

    def state_plan(self) -> dict:
        return self.fingerprint() | {"tars_per_task": self.tars_per_task}


def make_job(plan: ReshardPlan, overwrite: bool = False, progress: bool = True) -> Job:
    """The reshard as a job on plan.out: its outputs are shards/ and reshard.json; the split of
    the input tars into read tasks may change between runs (a different split starts over)."""
    folder = CuratedFolder(plan.out)
    return Job(plan.out, "reshard", plan.fingerprint(), outputs=(folder.shards.root, folder.reshard_json),
               overwrite=overwrite, progress=progress, split={"tars_per_task": plan.tars_per_task},
               describe="shards or a reshard")


def plan_reshard(
    shards: list[str],
    out: Path,
    manifest: Path | None = None,
    uid_files: list[str] | None = None,
    samples_per_shard: int = 10_000,
    split: str | None = "train",
    tars_per_task: int = 1,
    overwrite: bool = False,
) -> ReshardPlan:
    """Check every input (tar headers, the selection's source); writes nothing (call before starting Ray)."""
    if (manifest is None) == (not uid_files):
        raise UserError("choose the samples with a curated folder (--manifest DIR) or with uid files (--uids FILE.npy...), one of the two")
    if samples_per_shard < 1 or tars_per_task < 1:
        raise UserError("--samples-per-shard and --tars-per-task must be positive")
    out = Path(out).resolve()
    paths = expand_shards(list(shards))
    inside = [p for p in paths if p.is_relative_to(out)]
    if inside:  # this command's own output, e.g. OUT inside a pool folder
        log.warning("%d input tar(s) under the output folder %s are not read", len(inside), out)
        paths = [p for p in paths if not p.is_relative_to(out)]
        if not paths:
            raise UserError(f"{out}: every input tar is inside the output folder; pass the pool's tars")
    tars = check_inputs(paths)
    if manifest is not None:
        selection = selection_from_manifest(Path(manifest), split)
    else:
        selection = selection_from_uid_files(list(uid_files or []))
        split = None
    if len(selection.names) > np.iinfo(np.uint16).max:
        raise UserError(f"{len(selection.names)} buckets; at most 65,535")
    plan = ReshardPlan(tars, selection, out, samples_per_shard, split, tars_per_task)
    make_job(plan, overwrite).check()
    return plan


def _dedupe_ranges(state: Path, reads: int, total: int) -> list[tuple[int | None, int | None]]:
    n = max(1, math.ceil(total / DEDUPE_UIDS))
    if n == 1:
        return [(None, None)]
    step = max(1, total // (n * 256))
    samples = [np.array(np.load(work_dir(state) / read_key(t) / "seen.npy", mmap_mode="r")[0, ::step]) for t in range(reads)]
    pooled = np.sort(np.concatenate(samples))
    cuts = sorted({int(pooled[(len(pooled) * r) // n]) for r in range(1, n)})
    bounds: list[int | None] = [None, *cuts, None]
    return list(zip(bounds[:-1], bounds[1:]))


def _layout(plan: ReshardPlan, state: Path, reads: list[dict], drops: np.ndarray) -> list[WriteSpec]:
    """Output shards of every bucket: the bucket's samples in input order, S per shard."""
    S = plan.samples_per_shard
    by_part: dict[tuple[int, int], np.ndarray] = {}
    for t in np.unique(drops[0]) if drops.shape[1] else []:
        mine = drops[:, drops[0] == t]
        for b in np.unique(mine[3]):
            sel = mine[:, mine[3] == b]
            idx = np.load(index_path(state, int(t), int(b)), mmap_mode="r")
            hit = np.isin(idx[0], sel[1])  # candidate positions by high half, then exact
            pairs = set(zip(sel[1].tolist(), sel[2].tolist()))
            pos = [i for i in np.flatnonzero(hit).tolist() if (int(idx[0, i]), int(idx[1, i])) in pairs]
            by_part[(int(t), int(b))] = np.array(sorted(pos), np.int64)
    specs = []
    for b, name in enumerate(plan.selection.names):
        shard, count, segs = 0, 0, []
        for t, r in enumerate(reads):
            n = r["written"].get(str(b), 0)
            if not n:
                continue
            cuts = by_part.get((t, b), np.zeros(0, np.int64))
            edges = [-1, *cuts.tolist(), n]
            for lo_edge, hi_edge in zip(edges[:-1], edges[1:]):
                a, e = lo_edge + 1, hi_edge
                while a < e:
                    take = min(e - a, S - count)
                    segs.append((t, a, a + take))
                    count += take
                    a += take
                    if count == S:
                        specs.append(WriteSpec(b, name, shard, tuple(segs), count, str(state), str(plan.out)))
                        shard, count, segs = shard + 1, 0, []
        if count:
            specs.append(WriteSpec(b, name, shard, tuple(segs), count, str(state), str(plan.out)))
    return specs


def reshard(
    shards: list[str],
    out: Path,
    executor,
    manifest: Path | None = None,
    uid_files: list[str] | None = None,
    samples_per_shard: int = 10_000,
    split: str | None = "train",
    tars_per_task: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    plan: ReshardPlan | None = None,
) -> dict:
    """Reshard the pool `shards` into OUT/shards/<bucket>/; returns the reshard.json document.

    Pass `plan` (from `plan_reshard` with the same arguments) when the inputs were checked
    already, e.g. before starting Ray. A finished reshard of the same inputs is left as it is."""
    started = time.monotonic()
    plan = plan or plan_reshard(shards, out, manifest, uid_files, samples_per_shard, split, tars_per_task, overwrite)
    job = make_job(plan, overwrite, progress).open()
    folder = CuratedFolder(plan.out)
    if job.done:
        log.info("%s: already resharded from these inputs; nothing to do", plan.out)
        return load_reshard_doc(folder.reshard_json)
    state = job.state
    try:
        listed = build_lookup(plan.selection, state, lambda name, tasks: job.stage(executor, name, tasks))
    except UserError:  # refused on its inputs (a uid in two buckets): leave nothing behind
        rmtree(job.state)
        for empty in (job.state.parent, plan.out):
            if empty.is_dir() and not any(empty.iterdir()):
                empty.rmdir()
        raise
    selection_sha = content_sha256(state / "lookup", plan.selection.names)

    groups = [plan.inputs[i : i + plan.tars_per_task] for i in range(0, len(plan.inputs), plan.tars_per_task)]
    read_tasks = []
    for i, g in enumerate(groups):
        describe = g[0][0] if len(g) == 1 else f"{g[0][0]} (+{len(g) - 1} more)"
        read_tasks.append(Task(read_key(i), read_tars, (ReadSpec(i, tuple(p for p, _, _ in g), str(state)),), describe,
                               outputs=(work_dir(state) / read_key(i),)))
    read_stats = job.stage(executor, "read", read_tasks)
    reads = [read_stats[t.key] for t in read_tasks]

    dedupe_stats: list[dict] = []
    drops = np.zeros((4, 0), _U8)
    if len(read_tasks) > 1:
        ranges = _dedupe_ranges(state, len(read_tasks), sum(r["seen"] for r in reads))
        dedupe_tasks = [
            Task(dedupe_key(i), dedupe_range, (DedupeSpec(i, lo, hi, len(read_tasks), str(state)),), f"uid range {i}",
                 outputs=(work_dir(state) / f"{dedupe_key(i)}.npy",))
            for i, (lo, hi) in enumerate(ranges)
        ]
        got = job.stage(executor, "dedupe", dedupe_tasks)
        dedupe_stats = [got[t.key] for t in dedupe_tasks]
        found = [np.load(work_dir(state) / f"{t.key}.npy") for t in dedupe_tasks]
        drops = np.concatenate(found, axis=1) if found else drops

    specs = _layout(plan, state, reads, drops)
    for name in plan.selection.names:
        folder.shards.bucket(name).mkdir(parents=True, exist_ok=True)
    write_tasks = [
        Task(write_key(s.bucket, s.shard), write_shard, (s,), f"{SHARDS_DIR}/{s.name}/{shard_name(s.shard)}",
             outputs=(folder.shards.tar(s.name, s.shard),))
        for s in specs
    ]
    write_stats = job.stage(executor, "write", write_tasks)

    doc = _finish(plan, reads, dedupe_stats, drops, specs, [write_stats[t.key] for t in write_tasks], listed, selection_sha)
    job.finish()
    led = doc["ledger"]
    log.info(
        "resharded %s samples read into %s selected in %d shards over %d buckets (%s not selected, %s duplicates, %s malformed) in %.1fs",
        f"{led['rows_in']:,}", f"{led['selected']:,}", sum(b["shards"] for b in doc["buckets"].values()), len(doc["buckets"]),
        f"{led['not_selected']:,}", f"{led['duplicates']:,}", f"{sum(led['malformed'].values()):,}", time.monotonic() - started,
    )
    return doc


def _finish(plan: ReshardPlan, reads: list[dict], dedupes: list[dict], drops: np.ndarray, specs: list[WriteSpec], writes: list[dict],
            listed: dict[str, int], selection_sha: str) -> dict:
    names = plan.selection.names
    cross_dup = sum(d["duplicates"] for d in dedupes)
    cross_sel = sum(d["selected_duplicates"] for d in dedupes)
    rows_in = sum(r["rows_in"] for r in reads)
    selected = sum(r["selected"] for r in reads) - cross_sel
    not_selected = sum(r["not_selected"] for r in reads) - (cross_dup - cross_sel)
    duplicates = sum(r["duplicates"] for r in reads) + cross_dup
    malformed = {k: sum(r["malformed"][k] for r in reads) for k in MALFORMED}
    if rows_in != selected + not_selected + duplicates + sum(malformed.values()):
        raise LedgerError(f"reshard ledger does not balance: rows_in {rows_in} != selected {selected} + not selected "
                          f"{not_selected} + duplicates {duplicates} + malformed {malformed}")
    if selected != sum(s.samples for s in specs):
        raise LedgerError(f"{selected} samples selected but {sum(s.samples for s in specs)} laid out in shards")
    buckets = {}
    for b, name in enumerate(names):
        mine = [(s, w) for s, w in zip(specs, writes) if s.bucket == b]
        sizes = {f"{s.shard:08d}.tar": s.samples for s, _ in mine}
        write_json_atomic(CuratedFolder(plan.out).shards.sizes_json(name), sizes)
        samples = sum(sizes.values())
        buckets[name] = {
            "listed": listed[name],
            "samples": samples,
            "missing": listed[name] - samples,
            "shards": len(mine),
            "bytes": sum(w["bytes"] for _, w in mine),
            "duplicates": sum(r["duplicates_selected"].get(str(b), 0) for r in reads) + (int((drops[3] == b).sum()) if drops.shape[1] else 0),
        }
    examples: dict[str, list[str]] = {}
    for r in reads:
        for reason, ex in r["examples"].items():
            examples.setdefault(reason, []).extend(ex)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "tic", "version": __version__, "command": "reshard"},
        "inputs": {"files": len(plan.inputs), "bytes": sum(s for _, s, _ in plan.inputs), "shards": [p for p, _, _ in plan.inputs]},
        "selection": plan.selection.source,
        "parameters": {"samples_per_shard": plan.samples_per_shard, "split": plan.split},
        "buckets": buckets,
        "ledger": {"rows_in": rows_in, "selected": selected, "not_selected": not_selected, "duplicates": duplicates, "malformed": malformed},
        "members_skipped": sum(r["members_skipped"] for r in reads),
        "malformed_examples": {k: v[:EXAMPLES] for k, v in sorted(examples.items())},
        "fingerprint": plan.fingerprint(selection_sha),
    }
    write_json_atomic(CuratedFolder(plan.out).reshard_json, doc)
    return doc


def format_reshard_table(doc: dict) -> str:
    """The buckets and ledger of a reshard.json, as text for the terminal."""
    lines = [f"{'bucket':<12} {'listed':>12} {'samples':>12} {'missing':>10} {'shards':>7} {'GB':>8}"]
    for name, b in doc["buckets"].items():
        lines.append(f"{name:<12} {b['listed']:>12,} {b['samples']:>12,} {b['missing']:>10,} {b['shards']:>7,} {b['bytes'] / 1e9:>8.2f}")
    led = doc["ledger"]
    lines.append("")
    lines.append(f"ledger: read {led['rows_in']:,} = selected {led['selected']:,} + not selected {led['not_selected']:,}"
                 f" + duplicates {led['duplicates']:,} + malformed {sum(led['malformed'].values()):,}")
    for reason, n in led["malformed"].items():
        if n:
            lines.append(f"  malformed {reason:<18} {n:>12,}   e.g. {printable(doc['malformed_examples'].get(reason, ['?'])[0])}")
    return "\n".join(lines)
