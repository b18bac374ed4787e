"""Reruns give identical bytes; a run killed mid-way and rerun finishes with identical bytes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import tree_digest
from ticdata.layout import state_dir
from ticdata.curate import CurateConfig, curate
from ticdata.executor import InlineExecutor, RayExecutor
from ticdata.synth.pool import make_pool

TIC = str(Path(sys.executable).with_name("tic"))
CURATE_FLAGS = ["--chunk-rows", "4000", "--partition-rows", "6000"]


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pool")
    make_pool(out, rows=60_000, seed=3, rows_per_file=15_000, row_group_rows=2_000)
    return out


@pytest.fixture(scope="module")
def reference(pool, tmp_path_factory) -> dict[str, str]:
    """Digest of one uninterrupted in-process run."""
    out = tmp_path_factory.mktemp("ref") / "out"
    config = CurateConfig(inputs=(str(pool),), out=out, chunk_rows=4000, partition_rows=6000, progress=False)
    curate(config, InlineExecutor())
    digest = tree_digest(out)
    assert len([k for k in digest if k.endswith(".parquet")]) > 10
    return digest


@pytest.mark.slow
def test_rerun_and_executors_give_identical_bytes(pool, reference, tmp_path, ray_local):
    config = CurateConfig(inputs=(str(pool),), out=tmp_path / "ray", chunk_rows=4000, partition_rows=6000, progress=False)
    with RayExecutor() as ex:
        curate(config, ex)
    assert tree_digest(tmp_path / "ray") == reference
    # A rerun into the finished folder changes nothing.
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "ray").rglob("*") if p.is_file()}
    with RayExecutor() as ex:
        curate(config, ex)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "ray").rglob("*") if p.is_file()} == mtimes
    assert not state_dir(tmp_path / "ray", "curate").exists()


def _markers(out: Path) -> list[str]:
    d = state_dir(out, "curate") / "completions"
    return sorted(p.name for p in d.glob("*.json")) if d.exists() else []


def _run_and_kill(args: list[str], out: Path, until) -> None:
    """Start `tic curate` in its own process group and SIGKILL the group once until(markers)."""
    proc = subprocess.Popen([TIC, *args], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if until(_markers(out)):
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended before the kill point: {proc.stderr.read().decode()[-2000:]}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_point",
    [
        pytest.param(lambda m: sum(k.startswith("map-") for k in m) >= 4, id="during-read"),
        pytest.param(lambda m: sum(k.startswith("reduce-") for k in m) >= 2, id="during-dedupe"),
    ],
)
def test_killed_ray_run_resumes_to_identical_bytes(pool, reference, tmp_path, kill_point):
    out = tmp_path / "out"
    args = ["curate", str(pool), "--out", str(out), "--executor", "ray", *CURATE_FLAGS]
    _run_and_kill(args, out, kill_point)
    assert not (out / "manifest.json").exists()
    done_before = _markers(out)
    res = subprocess.run([TIC, *args], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "already complete" in res.stderr and f"{len([m for m in done_before if m.startswith('map-')])} of" in res.stderr
    assert tree_digest(out) == reference


def _finished_tasks(out: Path) -> int:
    """Completion markers in OUT/.tic/completions or OUT/.tic/curate/completions (read while the run writes)."""
    n = 0
    for d in (out / ".tic" / "completions", out / ".tic" / "curate" / "completions"):
        try:
            n += sum(name.endswith(".json") and not name.startswith(".") for name in os.listdir(d))
        except FileNotFoundError:
            pass
    return n


def _left_partial_state(out: Path) -> bool:
    """OUT/.tic holds an unfinished run: no done mark (OUT/.tic/curate.done.json, written last) where the
    state lives in OUT/.tic/curate/, else (state straight in OUT/.tic/) no manifest.json yet."""
    tic = out / ".tic"
    if not tic.is_dir():
        return False
    done = tic / "curate.done.json"
    if done.exists() or (tic / "curate").is_dir():
        return not done.exists()
    return not (out / "manifest.json").exists()


@pytest.mark.slow
def test_inline_run_killed_at_random_points_resumes_to_identical_bytes(pool, reference, tmp_path):
    """Kill the single-process run four times at random moments, each while it runs (a random share of
    the way into the task after a random number of finished ones, out of 26), then let it finish."""
    out = tmp_path / "out"
    args = ["curate", str(pool), "--out", str(out), "--executor", "inline", *CURATE_FLAGS]
    rnd = random.Random(11)
    partial = []
    for target in sorted(rnd.sample(range(1, 21), 4)):
        delay = rnd.uniform(0.0, 0.15)
        proc = subprocess.Popen([TIC, *args], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        reached, deadline = None, time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if reached is None and _finished_tasks(out) >= target:
                reached = time.monotonic()
            if reached is not None and time.monotonic() - reached >= delay:
                break
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, (
            f"the kill after {target} tasks (+{delay:.2f} s) found the run already ended (exit {proc.returncode}): "
            + proc.stderr.read().decode()[-2000:]
        )
        partial.append(_left_partial_state(out))
    assert any(partial), f"no kill left an unfinished run behind in {out / '.tic'}: {partial}"
    res = subprocess.run([TIC, *args], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert tree_digest(out) == reference
    assert not list(out.rglob(".tmp-*"))


@pytest.mark.slow
def test_lost_intermediate_files_are_recomputed(pool, reference, tmp_path):
    """Killed mid-dedupe, then the scratch --work-dir is wiped: the rerun redoes what it lost."""
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    args = ["curate", str(pool), "--out", str(out), "--executor", "inline", "--work-dir", str(scratch), *CURATE_FLAGS]
    _run_and_kill(args, out, lambda m: sum(k.startswith("reduce-") for k in m) >= 2)
    assert list(scratch.glob("tic-curate-*/map/map-*"))
    import shutil

    shutil.rmtree(scratch)
    res = subprocess.run([TIC, *args], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert tree_digest(out) == reference
    assert not list(scratch.glob("tic-curate-*"))


def test_a_small_input_runs_in_process_with_the_same_bytes_and_a_named_cluster_still_gets_ray(pool, reference, tmp_path):
    """`--executor auto` (the default): below SMALL_INPUT_BYTES a local Ray's start would cost more than
    it saves, so the tasks run in this process (Ray is never imported) and write the same bytes."""
    import json

    from ticdata.cli_args import SMALL_INPUT_BYTES

    assert sum(p.stat().st_size for p in pool.rglob("*.parquet")) < SMALL_INPUT_BYTES
    out = tmp_path / "auto"
    code = ("import json, sys; from ticdata.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "print(json.dumps([rc, 'ray' in sys.modules]))")
    r = subprocess.run([sys.executable, "-c", code, "curate", str(pool), "--out", str(out), "-q", *CURATE_FLAGS],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [0, False]
    assert tree_digest(out) == reference
    # a named cluster (flag or RAY_ADDRESS), or --executor ray, gets Ray whatever the input's size
    import argparse

    from ticdata.cli_args import executor

    def chosen(env_address=None, **flags):
        args = argparse.Namespace(**({"executor": "auto", "ray_address": None, "num_cpus": None} | flags))
        old = os.environ.pop("RAY_ADDRESS", None)
        try:
            if env_address:
                os.environ["RAY_ADDRESS"] = env_address
            return type(executor(args, work_bytes=1000)).__name__
        finally:
            os.environ.pop("RAY_ADDRESS", None)
            if old is not None:
                os.environ["RAY_ADDRESS"] = old

    assert chosen() == "InlineExecutor"
    assert chosen(ray_address="127.0.0.2:6379") == chosen(env_address="127.0.0.2:6379") == chosen(executor="ray") == "RayExecutor"
    args = argparse.Namespace(executor="auto", ray_address=None, num_cpus=None)
    assert type(executor(args, work_bytes=SMALL_INPUT_BYTES)).__name__ == type(executor(args)).__name__ == "RayExecutor"
