"""`tic train` that holds still at a chosen point so that a test can kill it there.

    python tests/train_paused.py STEP:BATCH FLAG train --data ... (tic's own arguments)

runs `tic` (ticdata.cli.main) with one change, made here and not in the product: right after the
resume checkpoint of step STEP (0-based) at next batch BATCH is written, the process writes FLAG
and waits forever. The test then sends SIGKILL: a kill in the middle of a step, at a known batch,
as a crashed or preempted job dies.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tic_train import step
from ticdata.cli import main


def pause_after_resume_checkpoint(step_index: int, next_batch: int, flag: Path) -> None:
    save = step.save_checkpoint

    def save_then_pause(folder, model, arch, info, state=None):
        save(folder, model, arch, info, state)
        if state is not None and (state["step_index"], state["next_batch"]) == (step_index, next_batch):
            flag.write_text(f"{folder}\n")
            while True:
                time.sleep(60)

    step.save_checkpoint = save_then_pause


if __name__ == "__main__":
    at, flag, *argv = sys.argv[1:]
    s, b = (int(x) for x in at.split(":"))
    pause_after_resume_checkpoint(s, b, Path(flag))
    sys.exit(main(argv))
