"""The ledger: every input row is kept, a duplicate, or dropped under a named reason.

rows_in = kept + duplicates + sum(dropped) must hold per stage and in total; a run whose ledger
does not balance fails instead of writing a manifest.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


class LedgerError(RuntimeError):
    """The counts do not add up: a bug, never a user error."""


@dataclass
class Ledger:
    rows_in: int = 0
    kept: int = 0
    duplicates: int = 0
    dropped: Counter = field(default_factory=Counter)
    stages: dict = field(default_factory=dict)

    def add_stage(self, name: str, rows_in: int, passed: int, duplicates: int = 0, dropped: dict | None = None) -> None:
        dropped = {k: int(v) for k, v in sorted((dropped or {}).items()) if v}
        if rows_in != passed + duplicates + sum(dropped.values()):
            raise LedgerError(f"stage {name}: rows_in {rows_in} != passed {passed} + duplicates {duplicates} + dropped {dropped}")
        self.stages[name] = {"rows_in": rows_in, "passed": passed, "duplicates": duplicates, "dropped": dropped}

    def close(self) -> "Ledger":
        """Total the stages (in order: each stage's input is the previous stage's output)."""
        names = list(self.stages)
        if not names:
            raise LedgerError("no stages recorded")
        for a, b in zip(names, names[1:]):
            if self.stages[a]["passed"] != self.stages[b]["rows_in"]:
                raise LedgerError(f"stage {b} got {self.stages[b]['rows_in']} rows but stage {a} passed {self.stages[a]['passed']}")
        self.rows_in = self.stages[names[0]]["rows_in"]
        self.kept = self.stages[names[-1]]["passed"]
        self.duplicates = sum(s["duplicates"] for s in self.stages.values())
        self.dropped = Counter()
        for s in self.stages.values():
            self.dropped.update(s["dropped"])
        if self.rows_in != self.kept + self.duplicates + sum(self.dropped.values()):
            raise LedgerError(f"ledger does not balance: {self.to_json()}")
        return self

    def to_json(self) -> dict:
        return {
            "rows_in": self.rows_in,
            "kept": self.kept,
            "duplicates": self.duplicates,
            "dropped": dict(sorted(self.dropped.items())),
            "stages": self.stages,
        }

    @staticmethod
    def balanced(doc: dict) -> bool:
        return doc["rows_in"] == doc["kept"] + doc["duplicates"] + sum(doc["dropped"].values())
