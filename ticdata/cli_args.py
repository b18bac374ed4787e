"""What the `tic` verbs share on the command line: the execution flags and the executor they
choose, and argparse types."""

from __future__ import annotations

import argparse
import math
import os

from ticdata.errors import UserError, printable


class Parser(argparse.ArgumentParser):
    """argparse with tic's one-line errors: `tic: error: <verb>: <what>` and exit status 2, the
    usage text left to --help (a wrong flag should not bury its own message under 20 lines)."""

    def error(self, message: str):
        verb = self.prog.removeprefix("tic").strip()
        where = f"{verb}: " if verb else ""
        self.exit(2, f"tic: error: {where}{printable(message)} (see `{self.prog} --help`)\n")


def _number(value: str, kind, what: str):
    try:
        n = kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not {what}") from None
    if isinstance(n, float) and not math.isfinite(n):
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not {what}")
    return n


def _bounded(kind, what: str, ok, doc: str):
    """An argparse type: `kind` parsed (finite for floats), refused in one line unless ok(n)."""
    def parse(value: str):
        n = _number(value, kind, what)
        if not ok(n):
            raise argparse.ArgumentTypeError(f"{n} is not {what}")
        return n

    parse.__doc__ = doc
    return parse


positive = _bounded(int, "a positive integer", lambda n: n >= 1, "An integer >= 1 (sizes, counts of things to make).")
count = _bounded(int, "an integer >= 0", lambda n: n >= 0, "An integer >= 0 (seeds, retries, distances).")
seconds = _bounded(float, "a positive number of seconds", lambda n: n > 0, "A finite duration > 0.")
share = _bounded(float, "a number between 0 and 1", lambda n: 0 <= n <= 1, "A fraction between 0 and 1.")
non_negative = _bounded(float, "a finite number >= 0", lambda n: n >= 0, "A finite number >= 0 (learning rates, weights).")
port = _bounded(int, "a TCP port (1-65535)", lambda n: 1 <= n <= 65535, "A TCP port.")


# Below this much input a local Ray (start, stop, a process per task, each task one Polars thread)
# is slower than the same tasks in this process, one per core on threads: on 2 cores, 16M rows
# (944 MB) took 59.5 s in process against 70.9 s on a local Ray (medians of 3; README, "Scale, Ray
# and resuming"); earlier, with tasks one by one in process, 1M rows 6.0 s against 17-19 s on Ray.
# At 64M rows (3.8 GB) Ray was as fast or faster (219.7 s against 234.0 s in process): above this,
# or with a named cluster, Ray (retries, many nodes).
SMALL_INPUT_BYTES = 2 << 30


def executor(args, work_bytes: int | None = None, threads: bool = False):
    """The executor a verb runs its tasks on. `--executor auto` (the default) runs a small input
    (`work_bytes` below SMALL_INPUT_BYTES) in this process, the same tasks, so the same bytes;
    anything larger, or any named Ray cluster, goes to Ray. `threads`: in process, run one task per
    core on threads (for verbs whose tasks release the GIL: curate)."""
    import logging
    import os

    from ticdata.executor import InlineExecutor, RayExecutor

    if args.executor == "inline":
        if args.ray_address:
            raise UserError("--ray-address needs --executor ray")
        return InlineExecutor(workers=_workers(args) if threads else 1)
    small = work_bytes is not None and work_bytes < SMALL_INPUT_BYTES
    if args.executor == "auto" and small and not args.ray_address and not os.environ.get("RAY_ADDRESS"):
        logging.getLogger("ticdata").info("%.1f MB of input: running in this process, no Ray start (--executor ray "
                                          "to use Ray anyway)", work_bytes / 1e6)
        return InlineExecutor(workers=_workers(args) if threads else 1)
    return RayExecutor(address=args.ray_address, num_cpus=args.num_cpus)


def _workers(args) -> int:
    return getattr(args, "num_cpus", None) or os.cpu_count() or 1


def add_executor_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("execution")
    g.add_argument("--ray-address", metavar="A", help="an existing Ray cluster (default: $RAY_ADDRESS, else a local Ray sized to this machine)")
    g.add_argument("--executor", choices=["auto", "ray", "inline"], default="auto",
                   help="auto (default): Ray, or this process for a small input (where starting Ray costs more than it "
                   "saves); ray: always Ray; inline: tasks one by one in this process (debugging). Same bytes either way")
    g.add_argument("--num-cpus", type=positive, metavar="N", help="CPUs of the local Ray instance, or curation tasks at a time in process (default: all)")
