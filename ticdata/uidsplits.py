"""Buckets <-> DataComp uid files, in both directions.

export (`ticdata.uidexport`): one sorted `u8,u8` .npy per bucket of a curated manifest (what DataComp's resharder reads).
import: restrict a curated manifest to the uids of given files (e.g. the official TiC lists), each
file naming a bucket; the rows keep their own timestamps and gain a `bucket` column.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections import Counter
from pathlib import Path

from ticdata import __version__
from ticdata import uidimport_tasks as T
from ticdata.executor import Task
from ticdata.job import Job
from ticdata.ledger import Ledger
from ticdata.official_dating import agreement
from ticdata.manifest import SCHEMA_VERSION, checked_manifest_files, list_bucket_table, load_manifest_json
from ticdata.storage import rmtree, write_json_atomic
from ticdata.benchmarks import benchmark_from_manifest
from ticdata.layout import CuratedFolder, check_apart
from ticdata.uidlists import parse_uid_specs, uid_memmap

log = logging.getLogger(__name__)


def _fingerprint(folder: CuratedFolder, pairs: list[tuple[str, Path]]) -> dict:
    def stat(p: Path) -> list:
        return [str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] if p.exists() else [str(p), None, None]

    return {"tool_version": __version__, "manifest": [stat(p) for p in folder.manifest_files()],
            "manifest_json_sha256": hashlib.sha256(folder.manifest_json.read_bytes()).hexdigest(),
            "lists": [[name, *stat(Path(p))] for name, p in pairs]}


def import_uids(manifest_dir: Path, specs: list[str], out: Path, overwrite: bool = False, executor=None,
                progress: bool = False) -> dict:
    """A new curated folder at `out` holding only the listed uids, each with its list's bucket: a
    join by uid range on the executor (`ticdata.uidimport_tasks`); the driver reads no row."""
    from ticdata.executor import InlineExecutor

    pairs = parse_uid_specs(specs)
    folder = CuratedFolder(Path(manifest_dir).resolve())
    source_doc = load_manifest_json(folder.root)
    check_apart(Path(out), {"curated folder": folder.root})
    parts = checked_manifest_files(folder.root)  # validates the source folder (every footer)
    for _, p in pairs:
        uid_memmap(Path(p))  # each list's header checked before anything runs
    dest = CuratedFolder(Path(out).resolve())
    job = Job(dest.root, "uids-import", _fingerprint(folder, pairs), outputs=(dest.manifest_dir, dest.manifest_json),
              overwrite=overwrite, progress=progress, describe="a manifest").open()
    if job.done:
        return load_manifest_json(dest.root)
    ex = executor or InlineExecutor(workers=1)
    names, lists, match_files = _join(job, ex, parts, pairs)
    staging = job.path("manifest")
    doc_where = (source_doc, str(folder.manifest_json))
    applied = job.stage(ex, "apply", [
        Task(f"apply-{j:06d}", T.apply_part, (str(p), j, match_files, names, str(staging / p.parent.name / p.name), *doc_where), str(p))
        for j, p in enumerate(parts)])
    results = [applied[f"apply-{j:06d}"] for j in range(len(parts))]
    if dest.manifest_dir.exists():
        rmtree(dest.manifest_dir)
    staging.mkdir(parents=True, exist_ok=True)
    os.replace(staging, dest.manifest_dir)  # every file was written atomically in the state: one rename publishes them
    doc = _import_doc(folder, source_doc, pairs, lists, results, dest)
    write_json_atomic(dest.manifest_json, doc)
    job.finish()
    return doc


def _join(job: Job, ex, parts: list[Path], pairs: list[tuple[str, Path]]) -> tuple[list[str], dict, list[str]]:
    """Stages lists, keys and join: the list names, the lists' stats, and per uid range the file of
    matches (batch p = manifest file p)."""
    work = job.path("work")
    work.mkdir(parents=True, exist_ok=True)
    names = [n for n, _ in pairs]
    lists = job.stage(ex, "lists", [Task(f"list-{i:04d}", T.check_list, (str(p), n, i, str(work)), str(p))
                                    for i, (n, p) in enumerate(pairs)])
    keys = job.stage(ex, "keys", [Task(f"keys-{j:06d}", T.write_keys, (str(p), j, str(work)), str(p))
                                  for j, p in enumerate(parts)])
    total = max(sum(v["uids"] for v in lists.values()), sum(v["keys"] for v in keys.values()))
    ranges = max(1, math.ceil(total / T.RANGE_UIDS))
    list_paths = [(n, lists[f"list-{i:04d}"]["path"]) for i, n in enumerate(names)]
    key_paths = [keys[f"keys-{j:06d}"]["path"] for j in range(len(parts))]
    joined = job.stage(ex, "join", [Task(f"join-{r:05d}", T.join_range, (r, ranges, list_paths, key_paths, str(work)), f"uid range {r}")
                                    for r in range(ranges)])
    return names, lists, [joined[f"join-{r:05d}"]["path"] for r in range(ranges)]


def date_lists(curated: Path, specs: list[str], out: Path, executor=None, progress: bool = False) -> dict[str, dict]:
    """Per official list: listed uids, how many the curated folder dates, and how many of those it
    dates outside the list's bucket (`tic reshard --uids ... --dating DIR`): the import's join by uid
    range, then a count per manifest file; the driver reads no row. A job in OUT (state
    OUT/.tic/uids-dating), so a rerun with the same inputs returns the stored figures."""
    from ticdata.executor import InlineExecutor

    pairs = parse_uid_specs(specs)
    folder = CuratedFolder(Path(curated).resolve())
    doc = load_manifest_json(folder.root)
    parts = checked_manifest_files(folder.root)
    for _, p in pairs:
        uid_memmap(Path(p))
    job = Job(Path(out).resolve(), "uids-dating", _fingerprint(folder, pairs), progress=progress, repeatable=True).open()
    if job.done and job.result is not None:
        return job.result
    ex = executor or InlineExecutor(workers=1)
    names, lists, match_files = _join(job, ex, parts, pairs)
    tallies = job.stage(ex, "tally", [Task(f"tally-{j:06d}", T.tally_part, (str(p), j, match_files, names, doc, str(folder.manifest_json)),
                                           str(p)) for j, p in enumerate(parts)])
    dating: Counter = Counter()
    for t in tallies.values():
        for o, y, m, tb, n in t["dating"]:
            dating[(o, y, m, tb)] += n
    agree = agreement(dating)
    result = {n: {"listed": lists[f"list-{i:04d}"]["uids"], "dated_by_tic": agree.get(n, {}).get("found", 0),
                  "dated_elsewhere": agree.get(n, {}).get("dated_elsewhere", 0), "tic_buckets": agree.get(n, {}).get("tic_buckets", {})}
              for i, n in enumerate(names)}
    job.finish(result)
    return result


def _import_doc(folder: CuratedFolder, source_doc: dict, pairs, lists: dict, results: list[dict], dest: CuratedFolder) -> dict:
    """manifest.json of the imported folder, from the tasks' counts."""
    rows_in, kept = sum(r["rows_in"] for r in results), sum(r["kept"] for r in results)
    matched = Counter()
    dating: Counter = Counter()
    for r in results:
        matched.update(r["per_bucket"])
        for o, y, m, t, n in r["dating"]:
            dating[(o, y, m, t)] += n
    ledger = Ledger()
    ledger.add_stage("select", rows_in, kept, dropped={"not_in_uid_lists": rows_in - kept})
    ledger.close()
    info = {name: {"file": str(Path(p).resolve()), "uids": lists[f"list-{i:04d}"]["uids"], "matched": matched.get(name, 0)}
            for i, (name, p) in enumerate(pairs)}
    agree = agreement(dating)
    for name, v in info.items():
        v["missing"] = v["uids"] - v["matched"]
        v["dated_elsewhere"] = agree.get(name, {}).get("dated_elsewhere", 0)
        v["tic_buckets"] = agree.get(name, {}).get("tic_buckets", {})
    bench = {"name": "uid-lists", "granularity": "list", "steps": [{"name": n, "years": []} for n, _ in pairs],
             "source_benchmark": source_doc.get("benchmark", {}).get("name")}
    counts = [tuple(c) for r in results for c in r["counts"]]  # (bucket, year, split, n) per file: no row read here
    buckets, outside = list_bucket_table(counts, benchmark_from_manifest({"benchmark": bench}, dest.manifest_json))
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "tic", "version": __version__, "command": "uids import"},
        "inputs": {"manifest": str(folder.root), "uid_lists": info, "eval_marks_reset": sum(r["reset"] for r in results)},
        "parameters": {},
        "benchmark": bench,
        "columns": source_doc.get("columns", {}) | {"bucket": "String"},
        "rows": kept,
        "buckets": buckets,
        "outside_buckets": outside,
        "ledger": ledger.to_json(),
    }


def format_import_table(doc: dict) -> str:
    """Per official list: listed, found in the curated folder, missing, and found rows tic dates elsewhere."""
    lines = [f"{'bucket':<12} {'listed':>12} {'found':>12} {'missing':>12} {'dated elsewhere':>16}"]
    for name, v in doc["inputs"]["uid_lists"].items():
        share = f" ({v['dated_elsewhere'] / v['matched']:.1%})" if v["matched"] else ""
        lines.append(f"{name:<12} {v['uids']:>12,} {v['matched']:>12,} {v['missing']:>12,} {v['dated_elsewhere']:>9,}{share}")
    return "\n".join(lines)
