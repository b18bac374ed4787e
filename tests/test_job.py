"""The job lifecycle every verb shares (ticdata.job): done / resume / refuse / --overwrite, the
lost-output check, the done mark written before the state is removed."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from ticdata.errors import UserError
from ticdata.executor import InlineExecutor, Task
from ticdata.job import Job, unfinished_plan
from ticdata.layout import done_mark, state_dir
from ticdata.storage import write_bytes_atomic

CALLS: list[str] = []


def write_number(path: str, n: int) -> dict:
    CALLS.append(path)
    write_bytes_atomic(Path(path), f"{n}\n".encode())
    return {"n": n}


def tasks(out: Path, count: int = 4) -> list[Task]:
    return [Task(f"t-{i}", write_number, (str(out / "work" / f"{i}.txt"), i), f"item {i}", outputs=(out / "work" / f"{i}.txt",))
            for i in range(count)]


def job(out: Path, fingerprint: dict, **kw) -> Job:
    return Job(out, "toy", fingerprint, outputs=(out / "result.json",), **kw)


def finish_run(out: Path, fingerprint: dict, **kw) -> Job:
    j = job(out, fingerprint, **kw).open()
    if not j.done:
        stats = j.stage(InlineExecutor(), "write", tasks(out))
        write_bytes_atomic(out / "result.json", json.dumps(sorted(stats)).encode())
        j.finish({"tasks": len(stats)})
    return j


def test_a_finished_job_is_done_and_its_state_gone(tmp_path):
    CALLS.clear()
    j = finish_run(tmp_path, {"x": 1})
    assert j.status == "new" and len(CALLS) == 4
    assert not state_dir(tmp_path, "toy").exists()
    mark = json.loads(done_mark(tmp_path, "toy").read_text())
    assert mark["fingerprint"] == {"x": 1} and mark["result"] == {"tasks": 4} and sum(mark["tasks_by_node"].values()) == 4
    CALLS.clear()
    again = finish_run(tmp_path, {"x": 1})
    assert again.done and again.result == {"tasks": 4} and CALLS == []


def test_an_interrupted_job_resumes_only_what_is_missing(tmp_path):
    j = job(tmp_path, {"x": 1}).open()
    j.stage(InlineExecutor(), "write", tasks(tmp_path)[:2])  # killed after two tasks
    assert unfinished_plan(tmp_path, "toy") == {"x": 1}
    CALLS.clear()
    again = finish_run(tmp_path, {"x": 1})
    assert again.status == "resume" and len(CALLS) == 2


def test_a_task_whose_output_was_lost_runs_again(tmp_path):
    j = job(tmp_path, {"x": 1}).open()
    j.stage(InlineExecutor(), "write", tasks(tmp_path))
    (tmp_path / "work" / "2.txt").unlink()  # deleted by hand, or a wiped scratch disk
    CALLS.clear()
    j.stage(InlineExecutor(), "write", tasks(tmp_path))
    assert CALLS == [str(tmp_path / "work" / "2.txt")]


def test_another_plan_is_refused_before_anything_changes_unless_overwrite(tmp_path):
    finish_run(tmp_path, {"x": 1})
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(UserError, match="--overwrite"):
        job(tmp_path, {"x": 2}).open()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    cleared = []
    j = finish_run(tmp_path, {"x": 2}, overwrite=True, clear=lambda: cleared.append(True))
    assert j.status == "other" and cleared == [True]
    assert json.loads(done_mark(tmp_path, "toy").read_text())["fingerprint"] == {"x": 2}


def test_outputs_of_unknown_origin_are_refused(tmp_path):
    (tmp_path / "result.json").write_text("{}")
    with pytest.raises(UserError, match=str(tmp_path)):
        job(tmp_path, {"x": 1}).check()


def test_a_run_killed_while_cleaning_up_is_finished_and_the_leftovers_removed(tmp_path):
    finish_run(tmp_path, {"x": 1})
    leftover = state_dir(tmp_path, "toy") / "work" / "half-removed.bin"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"x" * 100)
    j = job(tmp_path, {"x": 1}).open()
    assert j.done and not state_dir(tmp_path, "toy").exists()


def test_deleted_outputs_make_a_done_job_run_again(tmp_path):
    finish_run(tmp_path, {"x": 1})
    (tmp_path / "result.json").unlink()
    CALLS.clear()
    j = finish_run(tmp_path, {"x": 1})  # the done mark names this plan, but its outputs are gone
    assert j.status == "new" and len(CALLS) == 4 and (tmp_path / "result.json").exists()


def test_another_task_split_of_the_same_plan_starts_over(tmp_path):
    j = job(tmp_path, {"x": 1}, split={"per_task": 1}).open()
    j.stage(InlineExecutor(), "write", tasks(tmp_path)[:2])
    again = job(tmp_path, {"x": 1}, split={"per_task": 2}).open()
    assert again.status == "new" and not list(again.completions.glob("*.json"))


def test_temporary_leftovers_are_removed_when_a_job_opens(tmp_path):
    j = job(tmp_path, {"x": 1}).open()
    debris = j.path("work", ".tmp-3.txt-abcd1234")
    debris.parent.mkdir(parents=True)
    debris.write_bytes(b"partial")
    job(tmp_path, {"x": 1}).open()
    assert not debris.exists()


_IN_FLIGHT = {"now": 0, "max": 0}
_LOCK = threading.Lock()


def _slow_square(x: int) -> dict:
    import time as _time

    with _LOCK:
        _IN_FLIGHT["now"] += 1
        _IN_FLIGHT["max"] = max(_IN_FLIGHT["max"], _IN_FLIGHT["now"])
    _time.sleep(0.05)
    with _LOCK:
        _IN_FLIGHT["now"] -= 1
    if x == 13:
        from ticdata.errors import UserError

        raise UserError("unlucky number")
    return {"sq": x * x, "thread": threading.current_thread().name}


def test_in_process_threads_run_every_task_at_most_workers_at_a_time_and_name_a_failed_input(tmp_path):
    """InlineExecutor(workers=N) (curate in process): every task once, never more than N at once,
    work spread over threads; a UserError names the task's input and stops the stage."""
    from ticdata.errors import UserError
    from ticdata.executor import InlineExecutor, Task, run_stage

    tasks = [Task(f"t-{i:02d}", _slow_square, (i,), f"input {i}") for i in range(12)]
    _IN_FLIGHT.update(now=0, max=0)
    results = run_stage(InlineExecutor(workers=3), "square", tasks, tmp_path / "done", progress=False)
    assert {k: v["sq"] for k, v in results.items()} == {f"t-{i:02d}": i * i for i in range(12)}
    assert _IN_FLIGHT["max"] == 3 and len({v["thread"] for v in results.values()}) == 3
    bad = [Task(f"b-{i:02d}", _slow_square, (i,), f"input {i}") for i in range(10, 20)]
    with pytest.raises(UserError, match="^input 13: unlucky number"):
        run_stage(InlineExecutor(workers=2), "square", bad, tmp_path / "bad", progress=False)
    assert _IN_FLIGHT["now"] == 0  # nothing left running after the failure
    assert len(list((tmp_path / "bad").glob("*.json"))) >= 3  # what finished before it is kept for a rerun
