"""report.html (`tic report`) and audit.html (`tic audit`) read as HTML: every table is a <table> with
a header row and one row per method / signal / crawl holding the numbers of matrix.json and
audit.json; the page is self-contained and text from the input stays text. The figures: one colour
scale per task across methods, untrained rows masked and marked, axes in words, the compute figure's
axes defined in the report's caption, the audit's agreement plot with a labelled colour bar. A
browser, when one is installed, renders the page and finds the tables in its DOM."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ticdata.htmlreport import cell, markdown_to_html

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class Page(HTMLParser):
    """The parts of an HTML page the tests read: tables (rows of (tag, text) cells), images, tags seen,
    and the class of the element around each table."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[tuple[str, str]]]] = []
        self.table_parents: list[str | None] = []
        self.images: list[dict] = []
        self.tags: list[str] = []
        self._stack: list[tuple[str, dict]] = []
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "table":
            self.table_parents.append(self._stack[-1][1].get("class") if self._stack else None)
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(attrs)
        if tag not in ("img", "meta", "br", "hr"):
            self._stack.append((tag, attrs))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append((tag, " ".join("".join(self._cell).split())))
            self._cell = None
        while self._stack:
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def table(self, first_header: str) -> list[list[str]]:
        """The table whose first header cell is `first_header`, as rows of cell texts (header first)."""
        hits = [t for t in self.tables if t and t[0] and t[0][0] == ("th", first_header)]
        assert len(hits) == 1, f"{len(hits)} tables start with {first_header!r}: {[t[0] for t in self.tables if t]}"
        return [[text for _, text in row] for row in hits[0]]


def markdown_tables(md: str) -> list[list[str]]:
    """The pipe tables of a Markdown text; each must follow a blank line (else Markdown makes no table)."""
    lines, out = md.splitlines(), []
    for k, line in enumerate(lines):
        if line.startswith("|") and (k == 0 or not lines[k - 1].startswith("|")):
            assert k > 0 and lines[k - 1].strip() == "", f"table without a blank line before it: {lines[k - 1]!r}"
            assert re.fullmatch(r"\|(\s*:?-{3,}:?\s*\|)+", lines[k + 1]), f"no separator row under {line!r}"
            out.append([])
        if line.startswith("|"):
            out[-1].append(line)
    return out


def check_self_contained(page: Page, folder: Path) -> None:
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    for img in page.images:
        assert not re.match(r"[a-z]+:", img["src"]) and (folder / img["src"]).is_file(), img
    assert all(parent == "table-scroll" for parent in page.table_parents), page.table_parents


def fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def test_markdown_tables_become_tables_and_input_text_stays_text():
    hostile = "evil.example|<script>alert(1)</script> [x](javascript:alert(1)) `a *b*"
    md = ["# title", "", "a paragraph <b>not bold</b>", "", "| name | rows |", "|---|---:|", f"| {cell(hostile)} | 3 |",
          "| plain_name.example.com | 1,234 |", "", "- item"]
    page = Page(markdown_to_html(md, "t"))
    assert page.table("name") == [["name", "rows"], [" ".join(hostile.split()), "3"], ["plain_name.example.com", "1,234"]]
    assert "script" not in page.tags and "b" not in page.tags and "a" not in page.tags and "ul" in page.tags
    assert page.table_parents == ["table-scroll"]
    # a table glued to the paragraph above it is no table: the reports always leave a blank line
    assert Page(markdown_to_html(["text", "| a | b |", "|---|---|", "| 1 | 2 |"], "t")).tables == []


def test_metric_keys_and_tasks_read_as_words():
    from tic_train.report_figures import COLUMN_AXIS, ROW_AXIS, metric_label, task_label

    assert metric_label("acc1") == "Top-1 accuracy" and metric_label("acc5") == "Top-5 accuracy"
    assert metric_label("image_retrieval_recall@1") == "Recall@1 (text to image)"
    assert metric_label("text_retrieval_recall@5") == "Recall@5 (image to text)"
    assert metric_label("retrieval_recall@1") == "Recall@1 (mean of both directions)"
    assert metric_label("mean_per_class_recall") == "Mean per-class recall"
    assert task_label("classification") == "Zero-shot classification"
    assert "training step" in ROW_AXIS and all("evaluation set" in v for v in COLUMN_AXIS.values())


def _matrix(method: str, E: list[list[float | None]], trained: list[int]) -> dict:
    names = [f"s{i}" for i in range(len(E))]
    return {"method": method, "columns": [{"step": n} for n in names], "rows": [{"checkpoint": f"step-{i:02d}", "step": i} for i in trained],
            "tasks": {"classification": {"metric": "acc1", "E": E}, "retrieval": {"metric": "retrieval_recall@1", "E": [[0.5] * len(E)] * len(E)}}}


def test_heatmaps_of_a_task_share_one_scale_and_untrained_rows_are_masked():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tic_train.report_figures import NOT_TRAINED, heatmap_figure, shared_limits, untrained_rows

    seq = _matrix("sequential", [[0.2, 0.1, 0.1], [0.3, 0.4, 0.2], [0.3, 0.35, 0.6]], [0, 1, 2])
    # Oracle: one checkpoint after the last step; a stray number in an untrained row is no score
    oracle = _matrix("oracle", [[None] * 3, [0.99, None, None], [0.5, 0.7, 0.8]], [2])
    assert untrained_rows(oracle) == [0, 1] and untrained_rows(seq) == []
    limits = shared_limits([seq, oracle])
    assert limits["classification"] == pytest.approx((0.1, 0.8))
    lo, hi = limits["retrieval"]  # all equal: widened around the one value
    assert lo < 0.5 < hi
    for m in (seq, oracle):
        fig = heatmap_figure(m, "classification", limits["classification"])
        ax = fig.axes[0]
        im = ax.images[0]
        assert (im.norm.vmin, im.norm.vmax) == pytest.approx(limits["classification"])
        mask = im.get_array().mask
        assert [bool(mask[i].all()) for i in range(3)] == [i in untrained_rows(m) for i in range(3)]
        assert not mask[2].any()
        texts = [t.get_text() for t in ax.texts]
        assert texts.count(NOT_TRAINED) == len(untrained_rows(m)) and "0.00" not in texts
        assert ax.get_ylabel().startswith("training step") and ax.get_xlabel().startswith("evaluation set")
        assert "Top-1 accuracy" in ax.get_title() and "acc1" not in ax.get_title()
        assert im.colorbar.ax.get_ylabel().startswith("Top-1 accuracy")
        plt.close(fig)


def test_the_audit_agreement_plot_has_a_labelled_colour_bar():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ticdata.audit_report import AGREEMENT_BAR, agreement_figure

    none = {"rows": 0, "matrix": {}, "same_year": None}
    result = {"agreement": {"url": {"rows": 4, "matrix": {"2019": {"2019": 3, "2018": 1}}, "same_year": 0.75},
                            "exif": none, "last_modified": none, "snapshot": none}}
    fig = agreement_figure(result)
    im = fig.axes[0].images[0]
    assert im.colorbar is not None and im.colorbar.ax.get_ylabel() == AGREEMENT_BAR
    assert (im.norm.vmin, im.norm.vmax) == (0, 1)
    assert fig.axes[0].get_xlabel() == "year by date in the URL"
    plt.close(fig)
    assert agreement_figure({"agreement": {s: none for s in ("url", "exif", "last_modified", "snapshot")}}) is None


@pytest.fixture(scope="module")
def two_methods(small_run, tmp_path_factory):
    """small_run's sequential run (two of five steps trained) and an Oracle run on the same folder
    (trained once, after the last step), both evaluated: (curated folder, [runs])."""
    from tic_train.config import load_config
    from tic_train.evaluate import evaluate_run
    from tic_train.loop import run_training

    cur, run = small_run
    oracle = tmp_path_factory.mktemp("oracle") / "run"
    cfg = load_config(None, {"data": str(cur), "out": str(oracle), "method": "oracle", "samples_per_step": 8, "batch_size": 8,
                             "workers": 0, "warmup": 1, "progress": False, "device": "cpu"})
    run_training(cfg)
    evaluate_run(oracle, device="cpu", progress=False)
    return cur, [run, oracle]


@pytest.mark.slow
def test_the_report_page_holds_the_metrics_as_a_table_and_figures_share_scales(two_methods, tmp_path, monkeypatch):
    from tic_train import report_figures
    from tic_train.report import build_report, load_matrices

    _, runs = two_methods
    drawn = []
    save = report_figures.save_heatmap
    monkeypatch.setattr(report_figures, "save_heatmap", lambda m, task, limits, path: (drawn.append((m["method"], task, limits)),
                                                                                      save(m, task, limits, path)))
    out = tmp_path / "rep"
    md = build_report(runs, out).read_text()
    page = Page((out / "report.html").read_text())
    docs = [json.loads((r / "eval" / "matrix.json").read_text()) for r in runs]
    # the metrics table: the header, then one row per method with matrix.json's numbers
    rows = page.table("method")
    assert len(rows) == 1 + len(docs) and len(page.tables[0]) == 1 + len(docs)
    head = rows[0]
    for doc, row in zip(docs, rows[1:]):
        assert row[0] == doc["method"] and len(row) == len(head)
        assert row[head.index("samples (run)")] == f"{doc['compute']['samples']:,}"
        for task, t in doc["tasks"].items():
            for key, col in (("in_domain", "ID"), ("backward", "BWT"), ("forward", "FWT"), ("final_average", "final")):
                assert row[head.index(f"{task} {col}")] == fmt(t["metrics"][key]), (doc["method"], task, key)
    assert rows[2][head.index("classification FWT")] == "-"  # Oracle has no model before the last step
    # every Markdown table became a <table>, each after a blank line; the page needs nothing else
    assert len(markdown_tables(md)) == len(page.tables) >= 1
    check_self_contained(page, out)
    assert {img["src"] for img in page.images} >= {"compute.png", "in-domain.png", "heatmap-oracle-retrieval.png"}
    # one scale per task across methods, holding every trained score; untrained rows masked
    ms = load_matrices(runs)
    limits = report_figures.shared_limits(ms)
    assert sorted(drawn) == sorted((m["method"], task, limits[task]) for m in ms for task in m["tasks"])
    for task, (lo, hi) in limits.items():
        scores = [v for doc in docs for i, row in enumerate(doc["tasks"][task]["E"])
                  if i in {r["step"] for r in doc["rows"]} for v in row if v is not None]
        assert lo == pytest.approx(min(scores)) and hi == pytest.approx(max(scores))
        assert f"{report_figures.task_label(task).lower()}: {lo:.3f} to {hi:.3f}" in md
    oracle = next(m for m in ms if m["method"] == "oracle")
    assert report_figures.untrained_rows(oracle) == [0, 1, 2, 3]
    assert report_figures.untrained_rows(next(m for m in ms if m["method"] == "sequential")) == [2, 3, 4]
    # the compute figure's axes are defined in its caption, in the Markdown and on the page
    caption = report_figures.compute_caption(report_figures.has_static(ms))
    assert caption in md and "x axis:" in caption and "y axis: the average dynamic score" in caption
    page_text = (out / "report.html").read_text()
    assert "y axis: the average dynamic score" in page_text and "not trained" in page_text


@pytest.mark.slow
def test_the_audit_page_holds_its_tables(small_run, tmp_path):
    from ticdata.audit import run_audit
    from ticdata.audit_report import write_report
    from ticdata.audit_signals import SIGNALS
    from ticdata.executor import InlineExecutor

    result = run_audit(small_run[0], tmp_path / "a", InlineExecutor(), progress=False)
    # the world has no disagreeing domain; one from a hostile input must stay one row of text
    evil = "x.example|<script>alert(1)</script>"
    result["domains"] = [{"domain": evil, "rows": 1234, "with_evidence": 5, "wrong": 2, "impossible": 1},
                         {"domain": "late.example.com", "rows": 7, "with_evidence": 7, "wrong": 7, "impossible": 0}]
    result["bucket_moves"] = [{"from": "2019", "to": "2017-2018", "rows": 2}]
    out = tmp_path / "rep"
    md = write_report(result, out).read_text()
    page = Page((out / "audit.html").read_text())
    coverage = page.table("signal")
    assert [r[0] for r in coverage] == ["signal", *SIGNALS]
    for s, row in zip(SIGNALS, coverage[1:]):
        assert row[1] == f"{result['coverage'][s]['rows']:,}" and row[2] == f"{result['coverage'][s]['share']:.2%}"
    assert page.table("domain") == [["domain", "rows", "with evidence", "wrong bucket", "impossible order"],
                                    [evil, "1,234", "5", "2", "1"], ["late.example.com", "7", "7", "7", "0"]]
    assert page.table("from") == [["from", "to", "rows"], ["2019", "2017-2018", "2"]]
    crawls = page.table("crawl")
    assert len(crawls) == 1 + len(result["crawls"]) > 1
    assert crawls[1] == [result["crawls"][0]["crawl"], result["crawls"][0]["bucket"], f"{result['crawls'][0]['rows']:,}",
                         f"{result['crawls'][0]['share_of_bucket']:.2%}"]
    # the world was downloaded: its survival per bucket (and per first-seen year where a bucket spans several)
    survival = page.table("bucket")
    tops = [r for r in survival[1:] if ": " not in r[0]]
    assert [r[0] for r in tops] == list(result["survival"]["buckets"])
    for row, b in zip(tops, result["survival"]["buckets"].values()):
        assert row[1:3] == [f"{b['attempted']:,}", f"{b['survived']:,}"] and row[3].startswith(f"{b['survival']:.1%} [")
    # and where its survivors come from: each bucket's top domains, as audit.json has them
    domains = page.table("domains of bucket")
    assert [r[0] for r in domains[1:]] == [b for b, v in result["survival"]["buckets"].items() if v.get("domains")]
    for row in domains[1:]:
        d = result["survival"]["buckets"][row[0]]["domains"]
        assert row[1:4] == [str(len(d["top"])), f"{d['attempted_share']:.1%}", f"{d['survivor_share']:.1%}"]
        assert row[4].startswith(f"{d['top'][0]['domain']} ")
    assert len(markdown_tables(md)) == len(page.tables) == 6
    check_self_contained(page, out)
    assert {img["src"] for img in page.images} == {"rows-by-month.png", "agreement.png", "lag.png"}


@pytest.mark.slow
def test_a_browser_shows_the_tables(two_methods, tmp_path):
    """A headless browser (when one is installed) loads report.html and audit.html from disk: its DOM
    holds the metrics table (a row per method) and the audit's coverage table, and the pages draw."""
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        pytest.skip(f"no browser installed ({', '.join(BROWSERS)} not on PATH); the pages are checked by html.parser only")
    from ticdata.audit import run_audit
    from ticdata.audit_report import write_report
    from ticdata.audit_signals import SIGNALS
    from ticdata.executor import InlineExecutor
    from tic_train.report import build_report

    cur, runs = two_methods
    build_report(runs, tmp_path / "rep")
    write_report(run_audit(cur, tmp_path / "a", InlineExecutor(), progress=False), tmp_path / "arep")
    _browser_finds_the_table(browser, tmp_path / "rep" / "report.html", tmp_path, "method", 1 + len(runs))
    _browser_finds_the_table(browser, tmp_path / "arep" / "audit.html", tmp_path, "signal", 1 + len(SIGNALS))


def _browser_finds_the_table(browser: str, page: Path, tmp: Path, first_header: str, rows: int) -> None:
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", "--disable-extensions", f"--user-data-dir={tmp / 'browser-profile'}"]
    r = subprocess.run(flags + ["--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    dom = Page(r.stdout)
    assert len(dom.table(first_header)) == rows
    shot = tmp / f"{page.stem}.png"
    subprocess.run(flags + ["--window-size=1280,2400", f"--screenshot={shot}", page.resolve().as_uri()],
                   capture_output=True, text=True, timeout=120)
    from PIL import Image

    with Image.open(shot) as im:
        assert len(im.convert("L").getcolors(maxcolors=256) or range(256)) > 10  # drawn, not blank
