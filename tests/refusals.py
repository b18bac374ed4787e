"""Helpers of the bad-input tests: hash a folder to prove a verb left it unchanged, assert the
one-line refusal, and damage files the way copies, disks and people do."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def tree(*roots: Path) -> dict[str, str]:
    """sha256 of every file under the roots, by path: equal before and after = nothing changed.
    A job's scratch state (`.tic/<verb>/`, what a rerun resumes from) is not content and is left
    out; its done marks (`.tic/<verb>.done.json`) are content and count."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for root in roots for p in sorted(Path(root).rglob("*"))
            if p.is_file() and not p.is_symlink() and not _scratch(p.relative_to(root))}


def _scratch(rel: Path) -> bool:
    """A file inside `.tic/<verb>/` (not `.tic/<verb>.done.json` itself)."""
    parts = rel.parts
    return any(part == ".tic" and i < len(parts) - 2 for i, part in enumerate(parts))


def one_line(capsys, code: int, *needles: str, status: int = 2) -> str:
    """The verb exited with `status` and wrote exactly one stderr line, `tic: error: ...`, holding every needle."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == status and len(lines) == 1 and lines[0].startswith("tic: error: ") and "Traceback" not in err, (code, err)
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def flip(path: Path, offsets: list[int]) -> None:
    data = bytearray(path.read_bytes())
    for o in offsets:
        data[o % len(data)] ^= 0xFF
    path.write_bytes(bytes(data))


def edit_json(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
