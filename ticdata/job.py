"""One run of a verb as a job: its state folder, its plan, its stages, and its done mark.

Every verb that writes a folder (curate, download, reshard, evalsets, audit) goes through the
same lifecycle, so a killed run of any of them resumes the same way:

    job = Job(out, "curate", fingerprint, outputs=(...), overwrite=...).open()
    if job.done: return job.result          # a finished run of exactly this plan: nothing to do
    stats = job.stage(executor, "read", tasks)   # tasks declare their outputs
    ...
    job.finish(result)                     # the done mark, written last; the state is removed

`open()` compares the plan fingerprint (what determines the output bytes) with what the folder
holds: OUT/.tic/<verb>.done.json of a finished run, OUT/.tic/<verb>/plan.json of an unfinished
one. The same plan is done or resumed; another plan, or outputs of unknown origin, are refused
unless `overwrite`, which clears them first. A stage skips tasks whose completion marker exists
and whose declared outputs are all still there; a marker whose outputs were lost (a wiped scratch
disk, a file deleted by hand) is dropped, so that task runs again. `finish()` writes the done mark
atomically and only then removes the state, so a run killed while cleaning up is still finished.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ticdata.errors import UserError
from ticdata.executor import Task, run_stage
from ticdata.layout import done_mark, state_dir
from ticdata.objstore import location
from ticdata.storage import check_output_folder, dumps_json, read_json, remove_tmp_leftovers, rmtree, write_json_atomic

log = logging.getLogger(__name__)

NEW, RESUME, DONE, OTHER = "new", "resume", "done", "other"
REPLACE_PENDING = "replace-pending"  # state marker: the earlier outputs are still to be removed (defer_replace)


def _canonical(obj) -> object:
    """The fingerprint as it reads back from JSON (tuples become lists, keys strings)."""
    import json

    return json.loads(dumps_json(obj))


def _read(path: Path):
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


@dataclass
class Job:
    """The lifecycle of one verb run on one output folder."""

    out: Path
    verb: str
    fingerprint: dict
    outputs: tuple[Path, ...] = ()  # what the verb writes outside its state; cleared by overwrite
    overwrite: bool = False
    progress: bool = True
    repeatable: bool = False  # a later run with another plan continues the folder (download rounds)
    clear: Callable[[], None] | None = None  # undo what an earlier run changed outside `outputs`
    describe: str = ""  # how to name the folder's content in a refusal
    defer_replace: bool = False  # --overwrite removes the old outputs at `replace_outputs`, not at `open`
    split: dict = field(default_factory=dict)  # how the work is cut into tasks: another split restarts the state
    status: str = field(default="", init=False)
    tasks_by_node: dict = field(default_factory=dict, init=False)  # node (or host) -> tasks it ran

    def __post_init__(self) -> None:
        self.out = location(self.out).resolve()
        self.fingerprint = _canonical(self.fingerprint)
        self.outputs = tuple(location(p) for p in self.outputs)
        self.split = _canonical(self.split)

    # ------------------------------------------------------------------------------ paths

    @property
    def state(self) -> Path:
        return state_dir(self.out, self.verb)

    @property
    def completions(self) -> Path:
        return self.state / "completions"

    @property
    def mark(self) -> Path:
        return done_mark(self.out, self.verb)

    def path(self, *parts: str) -> Path:
        """A path inside the job's state folder (removed by `finish`)."""
        return self.state.joinpath(*parts)

    # -------------------------------------------------------------------------- lifecycle

    def assess(self) -> str:
        """done, resume, new or other: what the folder holds with respect to this plan."""
        mark = _read(self.mark) if self.mark.exists() else None
        same = mark is not None and mark.get("fingerprint") == self.fingerprint
        if same and all(p.exists() for p in self.outputs):
            return DONE
        plan_path = self.state / "plan.json"
        if plan_path.exists():
            plan = _read(plan_path) or {}
            if plan.get("fingerprint") != self.fingerprint:
                # an unfinished run of another plan that wrote nothing final (e.g. it stopped at a bad
                # input, since fixed): its state is only scratch, so it does not force --overwrite
                nothing_final = mark is None and not any(p.exists() for p in self.outputs)
                return NEW if nothing_final and not self.repeatable else OTHER
            return RESUME if plan.get("split") == self.split else NEW  # same outputs, other tasks: start over
        if self.repeatable or same:  # same: this plan's outputs were deleted; made again, same bytes
            return NEW
        if self.mark.exists() or self.state.exists() or any(p.exists() for p in self.outputs):
            return OTHER
        return NEW

    def _remove_outputs(self) -> None:
        for p in self.outputs:
            if p.is_dir():
                rmtree(p)
            else:
                p.unlink(missing_ok=True)
        if self.clear is not None:
            self.clear()

    def replace_outputs(self) -> None:
        """With `defer_replace`: remove the earlier run's outputs now that the verb has read its
        inputs without error (so a damaged input never costs the user the old outputs). A run killed
        before this point leaves the marker, and its rerun replaces them here; a no-op otherwise."""
        pending = self.state / REPLACE_PENDING
        if pending.exists():
            self.mark.unlink(missing_ok=True)
            self._remove_outputs()
            pending.unlink()

    def check(self) -> "Job":
        """Refuse, before anything is written, a folder this job may not take over or cannot write."""
        check_output_folder(self.out)
        if self.assess() == OTHER and not self.overwrite:
            what = self.describe or f"the output of another `tic {self.verb}`"
            raise UserError(f"{self.out}: holds {what} (other inputs or parameters); pass --overwrite to replace it, or choose another folder")
        return self

    def open(self) -> "Job":
        """Decide done / resume / new, clear what `overwrite` replaces, and record the plan."""
        self.check()
        self.status = self.assess()
        if self.status == DONE:
            rmtree(self.state)  # a run killed while cleaning up
            return self
        if self.status == OTHER:
            log.info("%s: replacing the earlier %s output (--overwrite)", self.out, self.verb)
            rmtree(self.state)
            if self.defer_replace:  # the old outputs, and their mark, stay until `replace_outputs`
                self.state.mkdir(parents=True, exist_ok=True)
                (self.state / REPLACE_PENDING).write_bytes(b"")
            else:
                self.mark.unlink(missing_ok=True)
                self._remove_outputs()
        elif self.status == NEW:
            rmtree(self.state)
            if not self.repeatable:
                self.mark.unlink(missing_ok=True)
        elif self.status == RESUME:
            log.info("%s: resuming an unfinished %s", self.out, self.verb)
        self.state.mkdir(parents=True, exist_ok=True)
        remove_tmp_leftovers(self.state)
        for p in self.outputs:
            remove_tmp_leftovers(p if p.is_dir() else p.parent)
        if self.status != RESUME:
            write_json_atomic(self.state / "plan.json", {"fingerprint": self.fingerprint, "split": self.split})
        return self

    @property
    def done(self) -> bool:
        return self.status == DONE

    @property
    def result(self) -> dict | None:
        """What `finish` recorded for a done job."""
        mark = _read(self.mark)
        return None if mark is None else mark.get("result")

    def stage(self, executor, name: str, tasks: list[Task]) -> dict[str, dict]:
        """Run the tasks of one stage not yet complete; every task's stats by key."""
        self.forget_lost(tasks)
        results = run_stage(executor, name, tasks, self.completions, self.progress)
        for stats in results.values():
            node = str(stats.get("_node") or stats.get("_host"))
            self.tasks_by_node[node] = self.tasks_by_node.get(node, 0) + 1
        return results

    def forget_lost(self, tasks: list[Task]) -> list[str]:
        """Drop the completion markers of tasks whose declared outputs are gone."""
        lost = []
        for t in tasks:
            marker = self.completions / f"{t.key}.json"
            if t.outputs and marker.exists() and not all(location(p).exists() for p in t.outputs):
                marker.unlink()
                lost.append(t.key)
        if lost:
            log.info("%s: %d finished task(s) lost their outputs and run again", self.verb, len(lost))
        return lost

    def finish(self, result: dict | None = None, keep_state: bool = False) -> None:
        """Write the done mark (the plan and `result`), then remove the state (unless kept for
        inspection: the next run of the same plan removes it)."""
        write_json_atomic(self.mark, {"fingerprint": self.fingerprint, "result": result, "tasks_by_node": self.tasks_by_node})
        if not keep_state:
            rmtree(self.state)


def unfinished_plan(out: Path, verb: str) -> dict | None:
    """The plan of an unfinished job of `verb` in `out`, if one was started (download rounds)."""
    path = state_dir(location(out).resolve(), verb) / "plan.json"
    plan = _read(path) if path.exists() else None
    return None if plan is None else plan.get("fingerprint")
