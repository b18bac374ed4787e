"""scripts/bench_warc_parse.py runs end to end at a tiny size on the real CommonCrawl files (its timings are
for humans, not asserts): tic's reader (lexbor) against the old pure-Python html.parser extraction kept in the
script, same pairs, and the HTML spec's answers on the edge cases. lxml is not a project dependency: the part
that uses it runs only when TIC_BENCH_HTMLPEERS names a folder it was installed into (pip install --target DIR lxml)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "bench_warc_parse.py"
DATA = REPO.parent / "shared" / "data" / "commoncrawl"
FILES = [str(DATA / "whirlwind.warc.gz"), str(DATA / "whirlwind.warc.wat.gz")]


def run(*extra: str) -> str:
    res = subprocess.run([sys.executable, str(SCRIPT), *FILES, "--repeats", "1", "--min-time", "0.001", *extra],
                         check=False, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return res.stdout


def table(out: str, name: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if line.startswith(name + " ")]


def test_bench_warc_parse_against_the_old_html_parser():
    out = run()
    warc, wat = table(out, "whirlwind.warc.gz")[0], table(out, "whirlwind.warc.wat.gz")[0]
    # records, pages, images, pairs as the reader counts them on the two files
    assert warc[3:7] == ["4", "1", "13", "7"] and wat[3:7] == ["2", "0", "0", "0"], out
    assert float(warc[-2].replace(",", "")) > 0 and float(wat[-1]) > 0  # pairs/s; MB/s
    assert "gunzip + WARC framing" in out and "page parsing (HTML: lexbor)" in out and "DataFrame" in out
    # the old html.parser extraction, dropped into read, gives the same 7 pairs and reader stats as lexbor
    [old] = [r for r in table(out, "whirlwind.warc.gz") if r[1:3] == ["html.parser", "(old)"]]
    assert old[-4:] == ["7", "0", "0", "yes"], out
    assert float(old[-5].replace(",", "")) > 0  # its pairs/s
    line = next(x for x in out.splitlines() if x.startswith("conclusion: whirlwind.warc.gz: tic (lexbor) "))
    assert " pairs/s per core vs html.parser (old) " in line and line.endswith("pairs equal"), out
    # tic agrees with the HTML spec on every edge case; the old extraction does not
    spec = next(x for x in out.splitlines() if x.startswith("agrees with the spec")).split()[-2:]
    n = spec[0].split("/")[1]
    assert spec[0] == f"{n}/{n}" and spec[1] != f"{n}/{n}", out


@pytest.mark.skipif(not os.environ.get("TIC_BENCH_HTMLPEERS"), reason="TIC_BENCH_HTMLPEERS names no folder holding lxml")
def test_bench_warc_parse_with_lxml():
    out = run("--peers", os.environ["TIC_BENCH_HTMLPEERS"])
    [row] = [r for r in table(out, "whirlwind.warc.gz") if r[1] == "lxml"]
    assert row[-4:] == ["7", "0", "0", "yes"], out  # the same 7 pairs as tic, none only in one
    assert "agrees with the spec" in out and "conclusion: whirlwind.warc.gz: tic (lexbor) " in out
