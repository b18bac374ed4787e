"""The `tic` command line: the parser, logging and exit codes. Each verb's flags and command live
in cli_data (curated folders), cli_synth (synthetic inputs) and cli_train (trainer side); each
command parses its flags and calls one library function.

Bad input exits with status 2 and one line on stderr; a bug keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ticdata import __version__
from ticdata.cli_args import Parser
from ticdata.cli_data import add_audit, add_curate, add_download, add_evalsets, add_reshard, add_uids
from ticdata.cli_synth import add_benchmarks, add_serve_images, add_synth
from ticdata.cli_train import add_demo, add_eval, add_report, add_train
from ticdata.errors import UserError

log = logging.getLogger("ticdata")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="tic",
        description="Time-continual CLIP toolkit: recover when each image-text pair first appeared, split pools "
        "into time buckets, fetch their images, hold out eval sets, train the continual baselines and score them. "
        "The pipeline: curate -> download (or reshard) -> evalsets -> train -> eval -> report; `tic demo` runs it "
        "all on a synthetic world.",
    )
    parser.add_argument("--version", action="version", version=f"tic {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logs")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    # The same flags after the verb (`tic curate ... -q`); SUPPRESS keeps a flag given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars or info logs")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logs")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    add_synth(sub, common)
    add_serve_images(sub, common)
    add_curate(sub, common)
    add_uids(sub, common)
    add_download(sub, common)
    add_reshard(sub, common)
    add_evalsets(sub, common)
    add_train(sub, common)
    add_eval(sub, common)
    add_report(sub, common)
    add_demo(sub, common)
    add_audit(sub, common)
    add_benchmarks(sub, common)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of each line (a caller that swaps stderr, as
    pytest's capture does around an in-process `main()`, never leaves it writing to a closed file)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("[tic] %(message)s"))
    for logger in (log, logging.getLogger("tic_train")):  # the data side's and the trainer's lines
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a bad flag (already explained in one line)
        return e.code if isinstance(e.code, int) else 2
    _setup_logging(args.quiet, args.verbose)
    try:
        from ticdata.extras import require

        require(f"{args.verb} {getattr(args, 'what', '')}".strip() if args.verb == "synth" else args.verb)
        return args.func(args)
    except UserError as e:
        print(f"tic: error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:  # an optional extra not installed: name it, in one line
        from ticdata.extras import missing_extra

        line = missing_extra(e)
        if line is None:
            raise
        print(f"tic {args.verb}: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tic: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tic ... | head`: the reader left; no traceback, no second error at exit
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
