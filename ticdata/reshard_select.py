"""Which samples of a pool go to which bucket, for `tic reshard`: the selection's source (a curated
folder or DataComp uid files), checked without reading a row; the uid -> bucket lookup itself is
built by tasks (`ticdata.reshard_lookup`), never in the driver.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pathlib import Path

from ticdata.benchmarks import benchmark_from_manifest, bucket_names, check_bucket_name
from ticdata.errors import UserError
from ticdata.layout import CuratedFolder
from ticdata.manifest import checked_manifest_files, load_manifest_json, scan_manifest
from ticdata.uidlists import parse_uid_specs, uid_memmap


@dataclass
class Selection:
    """What to select: bucket names, where from (`source`, as reshard.json records it), the inputs
    the lookup's tasks read, and their identity (path, size, mtime) for the job's plan."""

    names: tuple[str, ...]
    source: dict
    manifest_files: tuple[str, ...] = ()
    uid_files: tuple[str, ...] = ()
    doc: dict | None = None  # manifest.json, for the bucket rule
    where: str = ""
    split: str | None = None

    def identity(self) -> dict:
        def stat(p: str) -> list:
            st = Path(p).stat()
            return [str(Path(p).resolve()), st.st_size, st.st_mtime_ns]

        out = {"buckets": list(self.names), "files": [stat(p) for p in self.manifest_files + self.uid_files], "split": self.split}
        if self.where:
            out["manifest_json_sha256"] = hashlib.sha256(Path(self.where).read_bytes()).hexdigest()
        return out


def _check_bucket_names(names: list[str], where: str) -> None:
    for n in names:
        check_bucket_name(n, where)
    if len(set(names)) != len(names):
        raise UserError(f"{where}: bucket names repeat ({', '.join(names)})")


def selection_from_manifest(folder: Path, split: str | None = "train") -> Selection:
    """Each bucket of manifest.json gets the manifest rows its benchmark puts in it (years, months,
    or the `bucket` column of a folder made by `tic uids import`)."""
    cf = CuratedFolder(Path(folder))
    doc = load_manifest_json(cf.root)
    names = bucket_names(doc, cf.manifest_json)
    schema = scan_manifest(cf.root).collect_schema()  # also checks the folder has Parquet files
    if split is not None and "split" not in schema:
        raise UserError(f"{cf.root}: the manifest has no 'split' column; select all rows (split=None, --split all)")
    if benchmark_from_manifest(doc, cf.manifest_json).granularity == "month" and "month" not in schema:
        raise UserError(f"{cf.root}: monthly buckets but the manifest has no 'month' column; recurate the folder")
    source = {"kind": "manifest", "manifest": str(cf.root.resolve()), "split": split}
    files = tuple(str(p) for p in checked_manifest_files(cf.root))
    return Selection(tuple(names), source, manifest_files=files, doc=doc, where=str(cf.manifest_json), split=split)


def selection_from_uid_files(specs: list[str]) -> Selection:
    pairs = parse_uid_specs(list(specs))
    if not pairs:
        raise UserError("no uid files given")
    names = [n for n, _ in pairs]
    _check_bucket_names(names, "uid files")
    for _, path in pairs:
        uid_memmap(path)  # its header checked (dtype, shape, size) before anything runs
    source = {"kind": "uid_files", "files": {n: str(p.resolve()) for n, p in pairs}}
    return Selection(tuple(names), source, uid_files=tuple(str(p) for _, p in pairs))
