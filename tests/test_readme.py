"""The README's commands run as written on the demo's outputs: every code block that uses
`out/demo/` is marked, and each marked block runs (Python blocks with this interpreter, shell
blocks with bash and this environment's `tic`, `clip_benchmark` and `python`) in a folder holding
a small demo of the same layout (`tic demo` with fewer pairs and samples per step)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

MARK = "<!-- tested: tests/test_readme.py runs this block on the demo's outputs -->"
pytestmark = pytest.mark.slow


def blocks() -> list[tuple[int, str, str, bool]]:
    """(line, language, code, marked) of every fenced block of README.md."""
    lines = (REPO / "README.md").read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if m:
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            out.append((i + 1, m.group(1), "\n".join(lines[i + 1:j]) + "\n", i > 0 and lines[i - 1].strip() == MARK))
            i = j
        i += 1
    return out


def test_every_block_using_the_demos_outputs_is_tested():
    untested = [line for line, _, code, marked in blocks() if "out/demo/" in code and not marked]
    assert untested == [], f"README blocks at lines {untested} use out/demo/ but are not marked with {MARK!r}"
    assert sum(marked for *_, marked in blocks()) >= 3


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    from ticdata.demo import run_demo

    root = tmp_path_factory.mktemp("readme")
    # port 0: another port each run, so other URLs, uids and held-out picks. At 800 pairs the oldest
    # bucket kept ~537 images after link rot and its eval sets (300 retrieval, ~200 classification,
    # ~40 near-duplicates excluded) took all but 0-1 of them, depending on the port; 1,000 pairs leave
    # it ~60 training samples.
    run_demo(root / "out" / "demo", ["cumulative-all"], port=0, pairs=1000, batch_size=16,
             workers=0, progress=False, samples_per_step=64)
    out = root / "out" / "demo" / "world-curated"
    import json

    train = {b: v["train"] for b, v in json.loads((out / "manifest.json").read_text())["evalsets"]["buckets"].items()}
    assert min(train.values()) >= 20, train  # every step trains on data of its own
    return root


@pytest.mark.parametrize("line,lang,code", [(line, lang, code) for line, lang, code, marked in blocks() if marked],
                         ids=lambda v: str(v) if isinstance(v, int) else None)
def test_a_marked_block_runs_as_written(demo_root, line, lang, code):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if lang == "python":
        cmd = [sys.executable, "-c", code]
    else:
        assert lang == "bash", f"README line {line}: a marked block must be python or bash, not {lang!r}"
        cmd = ["bash", "-euo", "pipefail", "-c", code]
    r = subprocess.run(cmd, cwd=demo_root, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"README block at line {line} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"


def test_the_demo_shows_link_rot(demo_root):
    """The demo's world loses old images more often (ticdata.synth.world_pool's age curve): in the
    downloaded folder each bucket keeps a larger share than the one before, so the oldest keeps the
    least, and every first-seen year lost at least its rotted pairs; the report carries the table."""
    import json

    out = demo_root / "out" / "demo"
    world = json.loads((out / "world" / "_world.json").read_text())
    surv = json.loads((out / "world-curated" / "manifest.json").read_text())["download"]["survival"]
    rates = [b["survival"] for b in surv["buckets"].values()]
    assert list(surv["buckets"]) == [s["name"] for s in world["steps"]]
    assert rates == sorted(rates) and rates[0] < rates[-1] - 0.1 and surv["min"] == rates[0]
    for b in surv["buckets"].values():
        for year, r in b["years"].items():
            assert r["attempted"] - r["survived"] >= world["link_rot"]["years"][year]["rotted"]
    report = (out / "report" / "report.md").read_text()
    assert "## Link rot" in report and "survival.png" in report
