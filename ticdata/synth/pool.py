"""A CommonCrawl-style synthetic pool in DataComp's metadata layout, with bad rows planted at known rates.

`make_pool(out, rows)` writes `out/pool-00000.parquet`, `out/pool-00001.parquet`, ... and
`out/_synth.json`, a summary that says exactly what a correct curation of the pool must find:
how many rows of each defect were planted and how many distinct uids the valid rows hold.

How it stays fast and deterministic at tens of millions of rows:

- Every attribute of a pair (uid, url, caption, size, score, first snapshot) and of a row
  (re-sighted pair, snapshot, WAT file, crawl time) is a pure function of (seed, id) computed by
  a counter-based hash (splitmix64) over numpy arrays, so a pair re-sighted in another file is
  rebuilt identically there and nothing per pair is kept in memory.
- The only global state is the row order (a seeded permutation, 4 bytes a row), the planted
  defects (1 byte a row) and a bitmap of the pairs seen among valid rows (1 byte a pair).
- Strings are built column-wise: hex from a byte lookup table straight into Arrow buffers,
  captions and urls as Polars gathers from small vocabularies joined with `concat_str`.

Rows 0 .. unique_pairs-1 (before shuffling) are the first sightings, one per pair; the rest
re-sight an earlier pair in the same or a later snapshot. The permutation then scatters all rows
over the files, so a pair's earliest row is often not its first row in file order.

This module writes the files (make_pool); the modules below hold the rest, and what callers
import from them (BadRowRates, REASONS, COLUMNS) is re-exported here.

    pool_plan   the global plan: shape constants, planted defects (BadRowRates), the keyed hash,
                row order, snapshot windows and WAT files
    pool_vocab  word lists, caption templates, host names
    pool_rows   one slice of the plan as a Polars frame of rows
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ticdata.errors import UserError
from ticdata.snapshots import SnapshotTable
from ticdata.storage import atomic_file, write_json_atomic
from ticdata.synth.pool_plan import CODE_REASON, REASONS, RESIGHT_SHARE, BadRowRates, plan_pool
from ticdata.synth.pool_rows import COLUMNS, file_frame

__all__ = ["COLUMNS", "FILE_PATTERN", "REASONS", "SUMMARY_NAME", "ZSTD_LEVEL", "BadRowRates", "make_pool"]

log = logging.getLogger(__name__)

ZSTD_LEVEL = 1  # level 3 saves ~1% of the bytes for ~25% more write time
FILE_PATTERN = "pool-*.parquet"
SUMMARY_NAME = "_synth.json"


def _existing(out: Path) -> list[Path]:
    return sorted(out.glob(FILE_PATTERN)) if out.is_dir() else []


def make_pool(
    out: Path,
    rows: int,
    seed: int = 0,
    rows_per_file: int = 1_000_000,
    row_group_rows: int = 131_072,
    rates: BadRowRates | None = None,
    snapshots: SnapshotTable | None = None,
    *,
    resight_share: float = RESIGHT_SHARE,
    overwrite: bool = False,
    workers: int = 2,
    progress: bool = False,
) -> dict:
    """Write a synthetic CommonCrawl-style pool to `out` and return its summary (also `out/_synth.json`).

    Same seed and arguments give byte-identical files. `workers` threads build files side by side
    (the output does not depend on it). Refuses a folder that already holds a pool unless
    `overwrite`, which then removes the old pool files first.
    """
    out = Path(out)
    for name, value, least in (("rows", rows, 1), ("rows_per_file", rows_per_file, 1), ("row_group_rows", row_group_rows, 1), ("seed", seed, 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
            raise UserError(f"synthetic pool: {name}={value!r}; expected a whole number >= {least}")
    if not 0.0 <= resight_share < 0.95:
        raise UserError(f"synthetic pool: resight_share={resight_share!r}; expected a share in [0, 0.95)")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; choose another --out")
    old = _existing(out)
    if old and not overwrite:
        raise UserError(f"{out}: already holds a pool ({len(old)} {FILE_PATTERN} files); choose an empty folder or pass --overwrite")
    rates = rates or BadRowRates()
    table = snapshots or SnapshotTable.load()

    plan, planted = plan_pool(int(rows), int(seed), rates, table, float(resight_share))
    out.mkdir(parents=True, exist_ok=True)
    for p in old:
        p.unlink()
    (out / SUMMARY_NAME).unlink(missing_ok=True)

    n_files = math.ceil(rows / rows_per_file)
    seen = np.zeros(plan.n_pairs, dtype=bool)
    found = np.zeros(len(CODE_REASON), dtype=np.int64)

    def build(i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = i * rows_per_file, min(rows, (i + 1) * rows_per_file)
        df, code, valid_pid = file_frame(plan, lo, hi)
        with atomic_file(out / f"pool-{i:05d}.parquet") as fh:
            df.write_parquet(fh, compression="zstd", compression_level=ZSTD_LEVEL, statistics=True, row_group_size=row_group_rows)
        return np.bincount(code, minlength=len(CODE_REASON)), valid_pid

    bar = None
    if progress:
        from ticdata.progress import progress as progress_lines

        bar = progress_lines(rows, desc=f"synth pool -> {out}", unit="row")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
        for i, (codes, valid_pid) in enumerate(ex.map(build, range(n_files))):
            found += codes
            seen[valid_pid] = True
            if bar is not None:
                bar.update(min(rows, (i + 1) * rows_per_file) - i * rows_per_file)
            log.debug("wrote pool-%05d.parquet", i)
    if bar is not None:
        bar.close()

    # What was actually written (uid-case fallbacks move a row between bad_uid variants only).
    actual = {r: 0 for r in REASONS}
    for c, n in enumerate(found.tolist()):
        if CODE_REASON[c]:
            actual[CODE_REASON[c]] += n
    if actual != planted:  # a bug, not bad input
        raise AssertionError(f"planted {actual} != intended {planted}")
    valid_rows = rows - sum(actual.values())
    kept = int(seen.sum())
    summary = {
        "rows": int(rows),
        "files": n_files,
        "seed": int(seed),
        "unique_pairs": plan.n_pairs,
        "resightings": rows - plan.n_pairs,
        "planted": actual,
        "expected": {"valid_rows": valid_rows, "kept": kept, "duplicates": valid_rows - kept},
    }
    write_json_atomic(out / SUMMARY_NAME, summary)
    log.info(
        "synthetic pool: %d rows in %d files, %d pairs, %d re-sightings, %d bad rows planted, %d uids to keep -> %s",
        rows, n_files, plan.n_pairs, rows - plan.n_pairs, sum(actual.values()), kept, out,
    )  # fmt: skip
    return summary
