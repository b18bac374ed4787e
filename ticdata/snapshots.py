"""CommonCrawl's crawl index (collinfo.json): maps a snapshot id such as CC-MAIN-2019-51 to its window.

The project ships a copy of the index (118 crawls, 2008-2025); `--collinfo` points at a newer one.
A row that only knows its snapshot is dated at the snapshot's start (`from`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import polars as pl

from ticdata.errors import UserError

# A crawl id inside any string: CC-MAIN-2019-51, CC-MAIN-2012, CC-MAIN-2009-2010. The trailing
# non-digit guard stops WARC file names such as CC-MAIN-20240517233122-... from matching. ASCII
# classes, not \d: crawl ids are ASCII, and Polars' regex runs about 30% faster with them.
SNAPSHOT_REGEX = r"(CC-MAIN-[0-9]{4}(?:-[0-9]{2,4})?)(?:[^0-9]|$)"
_SNAPSHOT_RE = re.compile(SNAPSHOT_REGEX)


def find_snapshot_id(text: str | None) -> str | None:
    """The first CommonCrawl crawl id in `text`, or None."""
    if not text:
        return None
    m = _SNAPSHOT_RE.search(text)
    return m.group(1) if m else None


def _parse_utc(value: str) -> datetime:
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


@dataclass(frozen=True)
class Snapshot:
    id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class SnapshotTable:
    """The crawl windows, keyed by crawl id."""

    snapshots: tuple[Snapshot, ...]
    source: str
    sha256: str

    @staticmethod
    def default_path() -> Path:
        return Path(str(resources.files("ticdata.data").joinpath("collinfo.json")))

    @classmethod
    def load(cls, path: str | Path | None = None) -> "SnapshotTable":
        path = Path(path) if path else cls.default_path()
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise UserError(f"{path}: cannot read the crawl index ({e.strerror}); pass --collinfo a readable collinfo.json")
        try:
            entries = json.loads(raw)
        except ValueError:
            raise UserError(f"{path}: not JSON; --collinfo expects CommonCrawl's collinfo.json (a list of crawls)")
        if not isinstance(entries, list) or not entries:
            raise UserError(f"{path}: expected a non-empty JSON list of crawls with id, from, to")
        snaps = []
        for i, e in enumerate(entries):
            try:
                snaps.append(Snapshot(str(e["id"]), _parse_utc(e["from"]), _parse_utc(e["to"])))
            except (KeyError, TypeError, ValueError):
                raise UserError(f"{path}: entry {i} lacks a valid id/from/to; use CommonCrawl's collinfo.json format")
        snaps.sort(key=lambda s: (s.start, s.id))
        return cls(tuple(snaps), str(path), hashlib.sha256(raw).hexdigest())

    def start_of(self, snapshot_id: str) -> datetime | None:
        for s in self.snapshots:
            if s.id == snapshot_id:
                return s.start
        return None

    def ids_in_year(self, year: int) -> list[str]:
        return [s.id for s in self.snapshots if s.start.year == year]

    def frame(self) -> pl.DataFrame:
        """(snapshot, snapshot_start) as a Polars frame, for joins."""
        return pl.DataFrame(
            {"snapshot": [s.id for s in self.snapshots], "snapshot_start": [s.start for s in self.snapshots]},
            schema={"snapshot": pl.String, "snapshot_start": pl.Datetime("us", "UTC")},
        )
