"""What the `tic` verbs share on the command line: the execution flags and the executor they
choose, and argparse types."""

from __future__ import annotations

import argparse

from ticdata.errors import UserError


def positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return n


def executor(args):
    from ticdata.executor import InlineExecutor, RayExecutor

    if args.executor == "inline":
        if args.ray_address:
            raise UserError("--ray-address needs --executor ray")
        return InlineExecutor()
    return RayExecutor(address=args.ray_address, num_cpus=args.num_cpus)


def add_executor_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("execution")
    g.add_argument("--ray-address", metavar="A", help="an existing Ray cluster (default: $RAY_ADDRESS, else a local Ray sized to this machine)")
    g.add_argument("--executor", choices=["ray", "inline"], default="ray",
                   help="ray (default) runs tasks in parallel; inline runs them one by one in this process, for debugging")
    g.add_argument("--num-cpus", type=positive, metavar="N", help="CPUs of the local Ray instance (default: all)")
