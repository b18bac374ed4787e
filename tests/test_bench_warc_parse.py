"""scripts/bench_warc_parse.py runs end to end at a tiny size on the real CommonCrawl files (its figures are
for humans, not asserts). The peer parsers are not project dependencies: the part that uses them runs only
when TIC_BENCH_HTMLPEERS names a folder they were installed into (pip install --target DIR selectolax lxml)."""

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


def test_bench_warc_parse_without_peers():
    out = run()
    warc, wat = table(out, "whirlwind.warc.gz")[0], table(out, "whirlwind.warc.wat.gz")[0]
    # records, pages, images, pairs as the reader counts them on the two files
    assert warc[3:7] == ["4", "1", "13", "7"] and wat[3:7] == ["2", "0", "0", "0"], out
    assert float(warc[-2].replace(",", "")) > 0 and float(wat[-1]) > 0  # pairs/s; MB/s
    assert "gunzip + WARC framing" in out and "page parsing (HTML)" in out and "DataFrame" in out
    assert "conclusion: no peers measured" in out


@pytest.mark.skipif(not os.environ.get("TIC_BENCH_HTMLPEERS"), reason="TIC_BENCH_HTMLPEERS names no folder of peer parsers")
def test_bench_warc_parse_with_peers():
    out = run("--peers", os.environ["TIC_BENCH_HTMLPEERS"])
    peers = [r for r in table(out, "whirlwind.warc.gz") if r[1] in ("selectolax-lexbor", "lxml")]
    assert peers, out
    for row in peers:
        assert row[-1] == "yes" and row[-4:-1] == ["7", "0", "0"], out  # the same 7 pairs as tic, none only in one
    assert "agrees with the spec" in out and "\nconclusion: " in out
