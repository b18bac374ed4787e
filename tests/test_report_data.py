"""`tic report`'s sections on the training data: link rot per bucket and first-seen year (the data
folder's manifest.json download.survival) and each step's data repetition (run.json
steps.<step>.data_use). The numbers written into the documents come back in the Markdown tables and
in report.html's, the interval is ticdata.survival's Wilson interval, survival.png plots one point
per first-seen year; without the documents there is no section and no figure.

The inputs are small_run's real run documents (run.json, eval/matrix.json) and manifest.json,
copied and edited; nothing is trained here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from test_report_html import Page, markdown_tables
from ticdata.errors import UserError
from ticdata.survival import survival, wilson, with_official
from tic_train import report_figures
from tic_train.report import build_report

KEEP = object()  # leave the world's own download.survival in place
COUNTS = {  # [first-seen year, month, status, rows], as download's merge tasks count them
    "2014-2016": [[2014, 3, "success", 60], [2014, 3, "failed_to_download", 40],
                  [2015, 0, "success", 70], [2015, 0, "failed_to_download", 20], [2015, 0, "refused", 10]],
    "2021-2022": [[2022, 7, "success", 90], [2022, 7, "failed_to_resize", 10]],
}
USES = {  # run.json steps.<step>.data_use, the trainer's schema
    "2014-2016": {"unique": 32, "draws": 32, "max_epochs": 0.4, "warn_epochs": 4.0, "warning": None,
                  "buckets": {"2014-2016": {"draws": 32, "available": 80, "size": 80, "unique": 32, "epochs": 0.4}}},
    "2017-2018": {"unique": 20, "draws": 132, "max_epochs": 6.25, "warn_epochs": 4.0,
                  "warning": "step 2017-2018: bucket 2017-2018 is repeated 6.2 epochs (100 draws over 16 available samples)",
                  "buckets": {"2014-2016": {"draws": 32, "available": 80, "size": 80, "unique": 4, "epochs": 0.4},
                              "2017-2018": {"draws": 100, "available": 16, "size": 16, "unique": 16, "epochs": 6.25}}},
}


def make_inputs(small_run, dst: Path, surv=KEEP, uses=None, method: str = "sequential") -> Path:
    """dst/cur (small_run's manifest.json, its download.survival replaced by `surv`, removed for None)
    and dst/<method> (its run.json and eval/, pointing at dst/cur; steps' data_use set from `uses`,
    removed otherwise, kept for KEEP): the documents `tic report` reads. Returns the run folder."""
    cur, run = small_run
    (dst / "cur").mkdir(parents=True, exist_ok=True)
    doc = json.loads((cur / "manifest.json").read_text())
    if surv is None:
        doc["download"].pop("survival", None)
    elif surv is not KEEP:
        doc["download"]["survival"] = surv
    (dst / "cur" / "manifest.json").write_text(json.dumps(doc))
    out = dst / method
    shutil.copytree(run / "eval", out / "eval")
    rdoc = json.loads((run / "run.json").read_text())
    rdoc["data"], rdoc["config"]["method"] = str(dst / "cur"), method
    for name, step in rdoc["steps"].items():
        if uses is KEEP:
            continue
        step.pop("data_use", None)
        if uses and name in uses:
            step["data_use"] = uses[name]
    (out / "run.json").write_text(json.dumps(rdoc))
    mdoc = json.loads((out / "eval" / "matrix.json").read_text())
    mdoc["data"], mdoc["method"] = str(dst / "cur"), method
    (out / "eval" / "matrix.json").write_text(json.dumps(mdoc))
    return out


def section(md: str, title: str) -> str | None:
    """The text of the section `## title` up to the next `## `, or None."""
    parts = md.split("\n## ")
    hits = [p for p in parts if p.startswith(title + "\n")]
    return hits[0] if hits else None


def rows(md_table: list[str]) -> list[list[str]]:
    """A pipe table's cells, header first, separator left out."""
    return [[c.strip() for c in line.strip().strip("|").split(" | ")] for k, line in enumerate(md_table) if k != 1]


def interval(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"[{lo:.1%}, {hi:.1%}]"


def check_png(path: Path) -> None:
    import numpy as np
    from PIL import Image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200
        assert len(set(np.asarray(im.convert("L")).ravel().tolist())) > 10  # drawn, not blank


@pytest.mark.slow
def test_survival_counts_come_back_in_the_tables_and_the_figure(small_run, tmp_path, monkeypatch):
    surv = with_official(survival(COUNTS), {"2014-2016": {"uids": 250, "matched": 220}})
    run = make_inputs(small_run, tmp_path / "in", surv)
    plotted = []
    draw = report_figures.survival
    monkeypatch.setattr(report_figures, "survival", lambda s, path: plotted.extend(draw(s, path)) or plotted)
    out = tmp_path / "rep"
    md = build_report([run], out).read_text()
    text = section(md, "Link rot: survival per bucket")
    assert text is not None and section(md, "Data repetition per step") is None
    buckets, years, official = map(rows, markdown_tables("\n" + text))
    assert buckets == [["bucket", "attempted", "survived", "survival", "95% interval", "lost (by status)"],
                       ["2014-2016", "200", "130", "65.0%", interval(130, 200), "failed_to_download 60, refused 10"],
                       ["2021-2022", "100", "90", "90.0%", interval(90, 100), "failed_to_resize 10"]]
    assert years == [["year", "bucket", "attempted", "survived", "survival", "95% interval"],
                     ["2014", "2014-2016", "100", "60", "60.0%", interval(60, 100)],
                     ["2015", "2014-2016", "100", "70", "70.0%", interval(70, 100)],
                     ["2022", "2021-2022", "100", "90", "90.0%", interval(90, 100)]]
    assert official == [["official list", "listed", "in the pool", "downloaded", "lost", "kept"],
                        ["2014-2016", "250", "220", "130", "120", "52.0%"]]
    assert "![survival](survival.png)" in text and "**Figure.** " in text and "x axis: the first-seen year" in text
    assert "y axis: survival" in text and "Wilson" in text
    check_png(out / "survival.png")
    # one point per first-seen year, at its rate, bars from the Wilson interval
    assert [(p["bucket"], p["year"], p["x"]) for p in plotted] == [("2014-2016", 2014, 2014), ("2014-2016", 2015, 2015),
                                                                   ("2021-2022", 2022, 2022)]
    for p, (k, n) in zip(plotted, [(60, 100), (70, 100), (90, 100)]):
        assert p["survival"] == k / n and (p["low"], p["high"]) == pytest.approx(wilson(k, n))


def test_the_survival_figure_plots_a_point_per_year_with_its_interval():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, pts = report_figures.survival_figure(survival(COUNTS))
    ax = fig.axes[0]
    bars = ax.containers
    assert [c.get_label() for c in bars] == ["2014-2016", "2021-2022"]
    xs = [x for c in bars for x in c.lines[0].get_xdata()]
    ys = [y for c in bars for y in c.lines[0].get_ydata()]
    assert len(pts) == len(xs) == 3 and list(xs) == [2014, 2015, 2022] and list(ys) == pytest.approx([0.6, 0.7, 0.9])
    assert ax.get_ylim() == pytest.approx((0, 1.02))
    assert ax.get_xlabel().startswith("first-seen year") and ax.get_ylabel().startswith("survival")
    plt.close(fig)
    # month buckets share a year: their points are set apart, never on top of each other
    two = survival({"2019-01": [[2019, 1, "success", 5]], "2019-02": [[2019, 2, "success", 3], [2019, 2, "refused", 1]]})
    fig, pts = report_figures.survival_figure(two)
    assert len({p["x"] for p in pts}) == 2 and all(abs(p["x"] - 2019) < 0.5 for p in pts)
    plt.close(fig)


@pytest.mark.slow
def test_no_survival_and_no_data_use_give_no_section(small_run, tmp_path):
    run = make_inputs(small_run, tmp_path / "in", surv=None)
    md = build_report([run], tmp_path / "rep").read_text()
    assert "Link rot" not in md and "survival.png" not in md and "Wilson" not in md and not (tmp_path / "rep" / "survival.png").exists()
    assert "Data repetition" not in md
    # a data folder that is gone: the same, the report still written
    shutil.rmtree(tmp_path / "in" / "cur")
    md = build_report([run], tmp_path / "rep2").read_text()
    assert "Link rot" not in md and not (tmp_path / "rep2" / "survival.png").exists()


@pytest.mark.slow
def test_a_damaged_survival_is_refused_before_anything_is_written(small_run, tmp_path):
    bad = survival(COUNTS)
    bad["buckets"]["2021-2022"]["years"]["2022"]["attempted"] = -1
    run = make_inputs(small_run, tmp_path / "in", bad)
    with pytest.raises(UserError, match=r"download\.survival.*buckets\.2021-2022\.years\.2022\.attempted"):
        build_report([run], tmp_path / "rep")
    assert not (tmp_path / "rep").exists()


@pytest.mark.slow
def test_data_use_comes_back_per_step_and_method(small_run, tmp_path):
    seq = make_inputs(small_run, tmp_path / "in", surv=None, uses=USES)
    cum = make_inputs(small_run, tmp_path / "in", surv=None, uses={"2017-2018": USES["2014-2016"]}, method="cumulative-all")
    out = tmp_path / "rep"
    md = build_report([seq, cum], out).read_text()
    text = section(md, "Data repetition per step")
    (table,) = map(rows, markdown_tables("\n" + text))
    assert table == [["step", "method", "samples drawn", "unique samples", "max epochs", "on bucket", "warning"],
                     ["2014-2016", "sequential", "32", "32", "0.40", "2014-2016", "no"],
                     ["2017-2018", "sequential", "132", "20", "6.25", "2017-2018", "yes"],
                     ["2017-2018", "cumulative-all", "32", "32", "0.40", "2014-2016", "no"]]
    assert f"- sequential: {USES['2017-2018']['warning']}" in text.splitlines()
    assert text.count("\n- ") == 1
    # the page holds the same table
    assert Page((out / "report.html").read_text()).table("step") == table


@pytest.mark.slow
def test_the_trainers_own_data_use_comes_back(small_run, tmp_path):
    """small_run's run.json as `tic train` wrote it: every step's data_use record is one row."""
    steps = json.loads((small_run[1] / "run.json").read_text())["steps"]
    uses = {name: s["data_use"] for name, s in steps.items() if s.get("data_use")}
    if not uses:
        pytest.skip("this trainer writes no data_use into run.json")
    run = make_inputs(small_run, tmp_path / "in", surv=None, uses=KEEP)
    (table,) = map(rows, markdown_tables("\n" + section(build_report([run], tmp_path / "rep").read_text(), "Data repetition per step")))
    assert [r[:4] for r in table[1:]] == [[name, "sequential", f"{u['draws']:,}", f"{u['unique']:,}"] for name, u in uses.items()]
    assert [r[4] for r in table[1:]] == [f"{u['max_epochs']:.2f}" for u in uses.values()]
    assert [r[6] for r in table[1:]] == ["yes" if u["warning"] else "no" for u in uses.values()]


@pytest.mark.slow
def test_the_page_holds_the_survival_tables_of_the_downloaded_world(small_run, tmp_path):
    """The world folder's own download.survival (a real `tic download`), unedited: the Markdown and the
    page hold its numbers, and every Markdown table is a table of the page."""
    run = make_inputs(small_run, tmp_path / "in")
    out = tmp_path / "rep"
    md = build_report([run], out).read_text()
    surv = json.loads((small_run[0] / "manifest.json").read_text())["download"]["survival"]
    page = Page((out / "report.html").read_text())
    buckets, years = page.table("bucket"), page.table("year")
    md_tables = [rows(t) for t in markdown_tables(md)]
    assert buckets in md_tables and years in md_tables and len(md_tables) == len(page.tables)
    assert [r[0] for r in buckets[1:]] == list(surv["buckets"])
    for row, b in zip(buckets[1:], surv["buckets"].values()):
        assert row[1:5] == [f"{b['attempted']:,}", f"{b['survived']:,}", f"{b['survival']:.1%}", interval(b["survived"], b["attempted"])]
    assert [r[:4] for r in years[1:]] == [[y, name, f"{r['attempted']:,}", f"{r['survived']:,}"]
                                          for name, b in surv["buckets"].items() for y, r in b["years"].items()]
    assert {img["src"] for img in page.images} >= {"survival.png"}
    check_png(out / "survival.png")
