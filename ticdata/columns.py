"""Column names: the canonical pool columns, the user's renames, and the manifest's layout."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from ticdata.errors import UserError

# Pool columns the toolkit understands. url and text are required; uid is computed when absent.
REQUIRED = ("url", "text")
EVIDENCE_STRINGS = ("source", "snapshot")  # CommonCrawl path / crawl id
EVIDENCE_TIMES = ("crawl_time", "dateuploaded", "created_utc")  # exact capture, upload, post time
CANONICAL = ("uid",) + REQUIRED + EVIDENCE_STRINGS + EVIDENCE_TIMES

# Manifest columns written in every file (year is the Hive partition key, in the path).
TS_TYPE = pl.Datetime("us", "UTC")
MANIFEST_CORE = {
    "uid": pl.String,
    "url": pl.String,
    "text": pl.String,
    "ts": TS_TYPE,
    "month": pl.Int8,
    "n_seen": pl.UInt32,
    "first_snapshot": pl.String,
    "ts_signal": pl.String,
    "split": pl.String,
}
# Evidence columns are normalised (times parsed to UTC) so every input kind agrees on their type.
EVIDENCE_OUTPUT = {
    "source": pl.String,
    "snapshot": pl.String,
    "crawl_time": TS_TYPE,
    "dateuploaded": TS_TYPE,
    "created_utc": TS_TYPE,
}
RESERVED = set(MANIFEST_CORE) | {"year"}
CARRIED_PREFIX = "src_"  # a carried column whose name collides with a manifest column is renamed


@dataclass(frozen=True)
class ColumnMap:
    """Which input column holds each canonical column (DataComp names by default)."""

    renames: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, specs: list[str] | None) -> "ColumnMap":
        out: dict[str, str] = {}
        for spec in specs or []:
            canon, sep, actual = spec.partition("=")
            canon, actual = canon.strip(), actual.strip()
            if not sep or not actual:
                raise UserError(f"--column {spec!r}: expected CANONICAL=NAME, e.g. --column text=caption")
            if canon not in CANONICAL:
                raise UserError(f"--column {spec!r}: {canon!r} is not one of {', '.join(CANONICAL)}")
            out[canon] = actual
        return cls(tuple(sorted(out.items())))

    def actual(self, canon: str) -> str:
        return dict(self.renames).get(canon, canon)

    def to_canonical(self, input_columns: list[str]) -> dict[str, str]:
        """Rename map {input name: canonical name} for the canonical columns present in a file."""
        present = set(input_columns)
        return {self.actual(c): c for c in CANONICAL if self.actual(c) in present}


def carried_name(name: str) -> str:
    """A carried column's manifest name: renamed when it collides with a manifest column or with
    tic's internal working columns (every name starting with '_', e.g. _order, _reason, _row)."""
    return CARRIED_PREFIX + name if name in RESERVED or name in EVIDENCE_OUTPUT or name.startswith("_") else name
