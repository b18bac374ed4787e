"""RUN/log.jsonl: the run's machine-readable log, one JSON object (sorted keys) per line, appended
by the main process only (other ranks' writes are no-ops)."""

from __future__ import annotations

import json
from pathlib import Path


class JsonlLog:
    def __init__(self, path: Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def write(self, **rec) -> None:
        if self.enabled:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
