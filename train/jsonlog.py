"""RUN/log.jsonl: the run's machine-readable log, one JSON object (sorted keys) per line, appended
by the main process only (other ranks' writes are no-ops). With `tensorboard` (a folder, RUN/tensorboard:
`tic train --report-to tensorboard`) the same numbers also go to TensorBoard event files, written
through torch.utils.tensorboard, against the run's global sample count (samples trained so far by
all steps, as the x axis of every scalar):

    train/loss, train/lr, train/samples_per_second   every `log_every` updates (event "interval")
    train/samples_step, train/samples_global         the step's and the run's samples at that point
    val/<metric>                                     validation of the step's held-out retrieval set (event "val")
    step/loss_first, step/loss_last, step/seconds    each finished step (event "step")
"""

from __future__ import annotations

import json
from pathlib import Path

from ticdata.errors import UserError
from ticdata.extras import install_hint

TENSORBOARD_EXTRA = install_hint("tensorboard")


class JsonlLog:
    def __init__(self, path: Path, enabled: bool = True, tensorboard: Path | None = None):
        self.path = Path(path)
        self.enabled = enabled
        self.tensorboard = Path(tensorboard) if tensorboard is not None and enabled else None
        self._writer = None

    def write(self, **rec) -> None:
        if self.enabled:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
            if self.tensorboard is not None:
                self._to_tensorboard(rec)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _summary_writer(self, first_step: int):
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise UserError(f"--report-to tensorboard: cannot import TensorBoard ({e}); {TENSORBOARD_EXTRA}") from None
            # a resumed run logs again from where its resume checkpoint stood: TensorBoard drops the
            # earlier process's events from that sample count on (purge_step), as log.jsonl's reader should
            self._writer = SummaryWriter(str(self.tensorboard), purge_step=first_step)
        return self._writer

    def _to_tensorboard(self, rec: dict) -> None:
        x = rec.get("global_samples")
        if x is None:
            return
        scalars = {}
        if rec.get("event") == "interval":
            scalars = {"train/loss": rec.get("loss"), "train/lr": rec.get("lr"),
                       "train/samples_per_second": rec.get("samples_per_s"), "train/samples_step": rec.get("samples"),
                       "train/samples_global": x}
        elif rec.get("event") == "val":
            scalars = {f"val/{k}": v for k, v in (rec.get("metrics") or {}).items()}
        elif rec.get("event") == "step":
            scalars = {"step/loss_first": rec.get("loss_first"), "step/loss_last": rec.get("loss_last"),
                       "step/seconds": rec.get("seconds")}
        w = self._summary_writer(int(x))
        for tag, v in scalars.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                w.add_scalar(tag, v, global_step=int(x))
        w.flush()
