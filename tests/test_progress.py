"""Progress in a log file: whole lines at a fixed period and at the end, never a carriage-return
bar; a bar only on a terminal; nothing with --quiet."""

from __future__ import annotations

import io

from ticdata.progress import LineProgress, progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_whole_lines_with_rate_and_eta():
    out = io.StringIO()
    bar = progress(10, desc="step 2019", unit="batch", stream=out)
    assert isinstance(bar, LineProgress)
    bar.every = 0.0  # a line at every update
    with bar:
        for _ in range(4):
            bar.update(1)
            bar.set_postfix(loss="3.912")
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 5  # 4 updates + the closing line
    assert lines[0].startswith("[tic] step 2019: 1/10 batch (10%), ") and "left" in lines[0]
    assert lines[-1].startswith("[tic] step 2019: 4/10 batch (40%)") and lines[-1].endswith("loss=3.912")


def test_lines_wait_for_the_period_and_a_resumed_count_starts_where_it_was():
    out = io.StringIO()
    bar = LineProgress(100, initial=40, desc="hash", unit="task", every=3600, stream=out)
    for _ in range(10):
        bar.update(1)
    assert out.getvalue() == ""  # the period has not passed
    bar.close()
    bar.close()
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[0]] and "50/100 task (50%)" in out.getvalue()


def test_quiet_prints_nothing_and_a_terminal_gets_a_bar():
    out = io.StringIO()
    with progress(3, desc="x", enabled=False, stream=out) as bar:
        bar.update(3)
    assert out.getvalue() == ""
    tty = _Tty()
    bar = progress(3, desc="x", stream=tty)
    assert not isinstance(bar, LineProgress)
    bar.close()
    silent = LineProgress(3, desc="x", stream=io.StringIO(), final=False)
    silent.update(3)
    silent.close()
    assert silent.stream.getvalue() == ""
