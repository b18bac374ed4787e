"""Executors own parallelism, retries, completion markers and progress; steps stay pure.

A stage is a list of Tasks with deterministic keys. Before running, a task whose completion
marker exists is skipped and its recorded stats reused; after it returns, its stats are written
as the marker (atomically). A run killed at any point and rerun therefore redoes only missing
tasks, and since every task writes its outputs atomically under deterministic names, the result
has the same bytes as an uninterrupted run.

RayExecutor runs tasks on a local Ray instance (default) or an existing cluster; InlineExecutor
runs them in this process, one by one or a few at a time on threads (small inputs, debugging).
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ticdata.progress import progress as progress_lines

from ticdata.errors import UserError
from ticdata.storage import read_json, write_json_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    key: str  # deterministic: names the completion marker and the task's outputs
    fn: Callable[..., dict]  # a module-level function returning JSON-able stats
    args: tuple
    describe: str  # the input it works on, for error messages
    outputs: tuple = ()  # paths the task writes; a marker whose outputs are gone is dropped (ticdata.job)


def _name_input(task: "Task", err: UserError) -> UserError:
    """The error, prefixed with the task's input unless it names it already."""
    msg = str(err)
    return err if task.describe in msg else UserError(f"{task.describe}: {msg}")


class TaskFailed(RuntimeError):
    """A task raised something that is not a UserError: a bug, reported with its input."""


def _call(fn: Callable[..., dict], args: tuple) -> dict:
    stats = fn(*args)
    stats.setdefault("_host", socket.gethostname())
    ray = sys.modules.get("ray")  # never imported for it: an inline run stays free of Ray's import cost
    try:
        if ray is not None and ray.is_initialized():
            stats["_node"] = ray.get_runtime_context().get_node_id()
    except Exception:  # pragma: no cover - Ray absent or not a worker
        pass
    return stats


class InlineExecutor:
    """Tasks in this process: one by one, or `workers` at a time on threads (for tasks that spend
    their time in Polars and Arrow, which release the GIL: curation's map and reduce). Results come
    in completion order; every task is a pure function of its spec, so the bytes do not depend on it."""

    name = "inline"

    def __init__(self, workers: int = 1):
        self.workers = max(1, workers)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def run(self, tasks: list[Task]) -> Iterator[tuple[Task, dict]]:
        if self.workers == 1:
            for t in tasks:
                try:
                    yield t, _call(t.fn, t.args)
                except UserError as e:
                    raise _name_input(t, e) from None
            return
        yield from self._threaded(tasks)

    def _threaded(self, tasks: list[Task]) -> Iterator[tuple[Task, dict]]:
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        todo = iter(tasks)
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="tic-task")
        running: dict = {}
        try:
            for t in todo:  # at most `workers` in flight: memory stays that of `workers` tasks
                running[pool.submit(_call, t.fn, t.args)] = t
                if len(running) >= self.workers:
                    break
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: running[f].key):
                    t = running.pop(fut)
                    try:
                        stats = fut.result()
                    except UserError as e:
                        raise _name_input(t, e) from None
                    yield t, stats
                    nxt = next(todo, None)
                    if nxt is not None:
                        running[pool.submit(_call, nxt.fn, nxt.args)] = nxt
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def default_node_ip() -> str:
    """Loopback address for a local Ray: 127.0.0.2 on Linux (Ray rewrites 127.0.0.1 to the LAN
    address), 127.0.0.1 elsewhere; TIC_RAY_NODE_IP overrides."""
    return os.environ.get("TIC_RAY_NODE_IP") or ("127.0.0.2" if platform.system() == "Linux" else "127.0.0.1")


def _use_token_if_available() -> None:
    """Ray only sends its auth token to an explicit address when RAY_AUTH_MODE=token; turn that on
    when a token is at hand (a cluster without auth accepts it too), unless the user chose a mode."""
    has_token = os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") or (Path.home() / ".ray" / "auth_token").exists()
    if "RAY_AUTH_MODE" not in os.environ and has_token:
        os.environ["RAY_AUTH_MODE"] = "token"
        if "ray" in sys.modules:  # imported earlier: make Ray re-read its configuration
            try:
                from ray._private.authentication.authentication_token_setup import _enable_token_auth

                _enable_token_auth()
            except ImportError:  # pragma: no cover - another Ray version
                pass


STORE_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION")


def store_env() -> dict[str, str]:
    """Where the object store is (`ticdata.objstore`), passed on to every Ray worker so that tasks
    reach the store the driver planned against. Credentials are not passed: each node uses its own
    (environment, ~/.aws, an instance role)."""
    return {k: os.environ[k] for k in STORE_ENV if os.environ.get(k)}


class RayExecutor:
    """Tasks as Ray remote functions, spread over the nodes, retried if a worker dies."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, task_threads: int = 1, max_retries: int = 3):
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.num_cpus = num_cpus
        self.task_threads = task_threads
        self.max_retries = max_retries
        self._owns_ray = False

    def __enter__(self):
        if self.address:
            _use_token_if_available()  # before Ray reads its configuration on import
        import ray

        if not ray.is_initialized():
            # Ray announces its (default, kept) token authentication on every start; tic's users
            # need not read that each run.
            logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
            env = {"env_vars": {"POLARS_MAX_THREADS": str(self.task_threads), "RAY_USAGE_STATS_ENABLED": "0"} | store_env()}
            common = dict(logging_level=logging.WARNING, runtime_env=env, log_to_driver=True)
            for attempt in (1, 2):  # a loaded machine sometimes misses Ray's start-up deadline: once more
                try:
                    self._init(ray, common)
                    break
                except ConnectionError as e:
                    if self.address:
                        raise UserError(
                            f"cannot reach the Ray cluster at {self.address} ({e}); check --ray-address / RAY_ADDRESS, and for a "
                            "cluster with token authentication set RAY_AUTH_TOKEN or ~/.ray/auth_token to its token"
                        )
                    failure = e
                except Exception as e:  # noqa: BLE001 - Ray raises RuntimeError, TimeoutError, its own types
                    failure = e
                ray.shutdown()
                if attempt == 2:
                    first = str(failure).strip().splitlines()[0] if str(failure).strip() else type(failure).__name__
                    raise UserError(f"Ray did not start ({first}); the machine may be overloaded: rerun (the run resumes), "
                                    "or pass --executor inline")
                log.warning("Ray did not start (%s); trying once more", type(failure).__name__)
            self._owns_ray = True
        return self

    def _init(self, ray, common: dict) -> None:
        if self.address:
            host = self.address.split("://")[-1].rsplit(":", 1)[0]
            node_ip = os.environ.get("TIC_RAY_NODE_IP") or (host if host.startswith("127.") else None)
            kw = {"_node_ip_address": node_ip} if node_ip else {}
            ray.init(address=self.address, **kw, **common)
        else:
            ray.init(
                address="local",  # a new instance, never a stale `ray start` cluster on this machine
                _node_ip_address=default_node_ip(),
                num_cpus=self.num_cpus,
                include_dashboard=False,
                object_store_memory=256 * 1024**2,
                **common,
            )

    def __exit__(self, *exc):
        if self._owns_ray:
            import ray

            ray.shutdown()
        return False

    def run(self, tasks: list[Task]) -> Iterator[tuple[Task, dict]]:
        import ray
        from ray.exceptions import RayTaskError

        remote = ray.remote(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)(_call)
        pending = {remote.options(scheduling_strategy="SPREAD").remote(t.fn, t.args): t for t in tasks}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    task = pending.pop(ref)
                    try:
                        yield task, ray.get(ref)
                    except RayTaskError as e:
                        cause = e.cause
                        if isinstance(cause, UserError):
                            raise _name_input(task, cause) from None
                        raise TaskFailed(f"task {task.key} ({task.describe}) failed: {cause!r}") from e
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)


def run_stage(executor, stage: str, tasks: list[Task], completions: Path, progress: bool = True) -> dict[str, dict]:
    """Run the tasks not yet marked complete; return every task's stats, keyed by task key."""
    completions.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    todo = []
    for t in tasks:
        marker = completions / f"{t.key}.json"
        if marker.exists():
            results[t.key] = read_json(marker)
        else:
            todo.append(t)
    if len(results):
        log.info("%s: %d of %d tasks already complete", stage, len(results), len(tasks))
    start = time.monotonic()
    bar = progress_lines(len(tasks), initial=len(results), desc=stage, unit="task", enabled=progress, final=False)
    with bar:
        for task, stats in executor.run(todo):
            write_json_atomic(completions / f"{task.key}.json", stats)
            results[task.key] = stats
            bar.update(1)
    log.info("%s: %d tasks done in %.1fs (%d run now)", stage, len(tasks), time.monotonic() - start, len(todo))
    return results
