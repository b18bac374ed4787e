"""Progress that reads well on a terminal and in a log file.

On a terminal: a tqdm bar. Anywhere else (a log file, CI, `nohup`, a pipe): no carriage-return bar,
but one plain line every `TIC_PROGRESS_SECONDS` seconds (default 30) and one when the work ends,
so a long job is never silent: `[tic] step 2019: 120/500 batch (24%), 3.1 batch/s, about 2 min left, loss=3.912`.
"""

from __future__ import annotations

import os
import sys
import time

DEFAULT_SECONDS = 30.0


def _every() -> float:
    try:
        return max(0.0, float(os.environ.get("TIC_PROGRESS_SECONDS", DEFAULT_SECONDS)))
    except ValueError:
        return DEFAULT_SECONDS


def _eta(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class LineProgress:
    """tqdm's update / set_postfix / close, printed as whole lines at most every `every` seconds."""

    def __init__(self, total: int, initial: int = 0, desc: str = "", unit: str = "it", every: float | None = None,
                 stream=None, final: bool = True):
        self.total, self.n, self.initial, self.desc, self.unit = total, initial, initial, desc, unit
        self.every = _every() if every is None else every
        self.stream = stream or sys.stderr
        self.started = self.last = time.monotonic()
        self.postfix = ""
        self.final = final  # a closing line (off where the caller logs its own summary)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every and self.n < self.total:
            self.last = now
            self._line(now)

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        done = self.n - self.initial
        rate = done / max(now - self.started, 1e-9)
        parts = [f"{self.desc}: {self.n:,}/{self.total:,} {self.unit}" + (f" ({100 * self.n / self.total:.0f}%)" if self.total else "")]
        if done:
            parts.append(f"{rate:.3g} {self.unit}/s")
            if self.n < self.total:
                parts.append(f"about {_eta((self.total - self.n) / rate)} left")
        else:
            parts.append(f"{now - self.started:.0f} s")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def _line(self, now: float) -> None:
        print(f"[tic] {self.line(now)}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.n > self.initial and self.final:
            self._line(time.monotonic())
            self.n = self.initial  # a second close prints nothing

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def progress(total: int, *, desc: str, unit: str = "it", initial: int = 0, enabled: bool = True, stream=None,
             final: bool = True):
    """A bar on a terminal, periodic lines elsewhere, nothing when not `enabled` (--quiet)."""
    stream = stream or sys.stderr
    if not enabled:
        return _Silent()
    if getattr(stream, "isatty", lambda: False)():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream, leave=False, mininterval=1.0)
    return LineProgress(total, initial=initial, desc=desc, unit=unit, stream=stream, final=final)
