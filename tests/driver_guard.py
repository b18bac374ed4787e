"""Showing by construction that a verb's driver reads no row: its tasks run in spawned processes
(fresh imports, unpatched) while every Parquet/IPC row reader is refused in the driver."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


class ProcessExecutor:
    """Tasks in fresh (spawned) processes: whatever the driver is patched to refuse, they may do."""

    def __init__(self, workers: int = 2):
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def run(self, tasks):
        futures = [(t, self.pool.submit(t.fn, *t.args)) for t in tasks]
        for t, f in futures:
            yield t, f.result()


def refuse_row_readers(monkeypatch) -> None:
    """Polars' and pyarrow's readers of Parquet and Arrow IPC rows raise in this process (footers,
    read by `pyarrow.parquet.read_metadata` or a `ParquetFile`'s metadata, and JSON stay allowed)."""
    import numpy as np
    import polars as pl
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    def refuse(*a, **k):
        raise AssertionError("the driver read rows")

    for mod, names in [(pl, ["read_parquet", "scan_parquet", "read_ipc", "scan_ipc"]), (pq, ["read_table"]),
                       (pq.ParquetFile, ["read", "read_row_group", "read_row_groups", "iter_batches", "scan_contents"]),
                       (ipc, ["open_file", "open_stream"]), (np, ["load", "fromfile"])]:
        for name in names:
            monkeypatch.setattr(mod, name, refuse)
