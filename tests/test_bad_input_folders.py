"""Every verb after curate refuses a damaged or hostile folder the way curate refuses a bad pool
(issue 17): one table per verb, each row a kind of damage done to a private copy of a small,
complete folder (`small_run`: curated, downloaded, eval sets, a two-step run, its eval matrix).
Each row asserts exit 2, one stderr line naming the file (and key or flag), and the folders the
verb reads byte-for-byte unchanged: a verb that will fail does so before its first write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ticdata.cli import main

from refusals import edit_json, flip, one_line, tree, truncate
from worldfolder import copy_small_run

BUCKET = "2014-2016"


def _tar_without_members(path: Path) -> None:
    path.write_bytes(b"\0" * 1024)  # a valid tar that holds nothing


def _set_key(path: Path, keys: str, value) -> None:
    def change(doc):
        *head, last = keys.split(".")
        for k in head:
            doc = doc[int(k)] if isinstance(doc, list) else doc[k]
        if isinstance(doc, list):
            doc[int(last)] = value
        else:
            doc[last] = value
    edit_json(path, change)


def _page_damage(path: Path) -> None:
    """Bytes flipped inside the first column chunk (the footer still reads)."""
    flip(path, list(range(40, 200, 7)))


# (id, argv, damage(cur, run, tmp), needles in the one line)
EXPORT = ["uids", "export", "{cur}", "--out", "{tmp}/u"]
AUDIT = ["audit", "{cur}", "--out", "{tmp}/a", "--executor", "inline"]
EVALSETS = ["evalsets", "{cur}", "--executor", "inline", "--overwrite", "--retrieval", "8", "--per-class", "2"]
RESHARD = ["reshard", "{cur}/shards", "--out", "{tmp}/rs", "--manifest", "{cur}", "--executor", "inline"]
TRAIN = ["train", "--data", "{cur}", "--out", "{tmp}/run2", "--samples-per-step", "16", "--batch-size", "16",
         "--workers", "0", "--steps", BUCKET, "--warmup", "1", "--device", "cpu", "--method", "sequential"]
RESUME = ["train", "--data", "{cur}", "--out", "{run}", "--samples-per-step", "32", "--batch-size", "16", "--workers", "0",
          "--steps", "2014-2016,2017-2018", "--warmup", "1", "--device", "cpu", "--method", "sequential"]
EVAL = ["eval", "{run}", "--device", "cpu"]
REPORT = ["report", "{run}", "--out", "{tmp}/rep"]

MANIFEST = "{cur}/manifest.json"
PART = "manifest/year=2015/part-00000.parquet"
CKPT = "checkpoints/step-00-2014-2016"
CLS = f"eval/{BUCKET}/classification"

CASES = [
    # uids export
    ("export-manifest-json-truncated", EXPORT, lambda c, r, t: truncate(c / "manifest.json"), ["manifest.json", "not valid JSON"]),
    ("export-buckets-a-list", EXPORT, lambda c, r, t: _set_key(c / "manifest.json", "buckets", [1]),
     ["manifest.json", "key 'buckets'"]),
    ("export-years-a-string", EXPORT, lambda c, r, t: _set_key(c / "manifest.json", "benchmark.steps.0.years", "x"),
     ["manifest.json", "key 'benchmark.steps[0].years'"]),
    ("export-part-truncated", EXPORT, lambda c, r, t: truncate(c / PART), [PART, "not a readable Parquet file"]),
    ("export-part-pages-damaged", EXPORT, lambda c, r, t: _page_damage(c / PART), [PART, "damaged Parquet"]),
    ("export-out-a-file", EXPORT, lambda c, r, t: (t / "u").write_text("x"), ["{tmp}/u"]),
    # audit
    ("audit-manifest-json-empty", AUDIT, lambda c, r, t: (c / "manifest.json").write_text(""), ["manifest.json", "empty"]),
    ("audit-manifest-json-not-utf8", AUDIT, lambda c, r, t: flip(c / "manifest.json", [10]), ["manifest.json"]),
    ("audit-part-truncated", AUDIT, lambda c, r, t: truncate(c / PART, 0.9), [PART]),
    ("audit-fail-if-unparsable", AUDIT + ["--fail-if", "wrong_bucket.share>>0.1"], lambda c, r, t: None, ["--fail-if"]),
    ("audit-out-a-file", AUDIT, lambda c, r, t: (t / "a").write_text("x"), ["/a"]),
    # evalsets
    ("evalsets-negative-size", EVALSETS[:-4] + ["--retrieval", "-1"], lambda c, r, t: None, ["--retrieval", "-1"]),
    ("evalsets-negative-size-in-manifest", EVALSETS[:-4],
     lambda c, r, t: _set_key(c / "manifest.json", "benchmark.eval.retrieval_per_step", -5),
     ["manifest.json", "retrieval_per_step"]),
    ("evalsets-shard-truncated", EVALSETS, lambda c, r, t: truncate(c / "shards" / BUCKET / "00000000.tar"),
     [f"shards/{BUCKET}/00000000.tar", "truncated"]),
    ("evalsets-phash-out-of-range", EVALSETS + ["--phash-distance", "99"], lambda c, r, t: None, ["--phash-distance"]),
    # reshard
    ("reshard-zero-samples-per-shard", RESHARD + ["--samples-per-shard", "0"], lambda c, r, t: None, ["--samples-per-shard"]),
    ("reshard-shard-header-damaged", RESHARD, lambda c, r, t: flip(c / "shards" / BUCKET / "00000000.tar", [148]),
     [f"shards/{BUCKET}/00000000.tar", "not a tar file"]),
    # train
    ("train-zero-batch", TRAIN + ["--batch-size", "0"], lambda c, r, t: None, ["--batch-size"]),
    ("train-nan-lr", TRAIN + ["--lr", "nan"], lambda c, r, t: None, ["--lr"]),
    ("train-config-wrong-type", TRAIN + ["--config", "{tmp}/run.toml"],
     lambda c, r, t: (t / "run.toml").write_text('batch_size = "many"\n'), ["run.toml", "batch_size"]),
    ("train-config-not-toml", TRAIN + ["--config", "{tmp}/run.toml"], lambda c, r, t: (t / "run.toml").write_text("[[["),
     ["run.toml", "TOML"]),
    ("train-sizes-names-a-path", TRAIN,
     lambda c, r, t: (c / "train" / "shards" / BUCKET / "sizes.json").write_text('{"../../x.tar": 3}'),
     ["sizes.json", "not a tar file name"]),
    ("train-shard-truncated", TRAIN, lambda c, r, t: truncate(c / "train" / "shards" / BUCKET / "00000000.tar"),
     ["00000000.tar", "truncated"]),
    ("train-resume-run-json-damaged", RESUME, lambda c, r, t: truncate(r / "run.json"), ["run.json", "not valid JSON"]),
    # eval
    ("eval-run-json-no-data", EVAL, lambda c, r, t: edit_json(r / "run.json", lambda d: d.pop("data")),
     ["run.json", "key 'data' is missing"]),
    ("eval-bucket-names-a-path", EVAL, lambda c, r, t: _set_key(r / "run.json", "buckets", {"../../x": 1}),
     ["run.json", "cannot name a folder"]),
    ("eval-weights-missing", EVAL, lambda c, r, t: (r / CKPT / "open_clip_model.safetensors").unlink(),
     [f"{CKPT}/open_clip_model.safetensors", "missing"]),
    ("eval-weights-truncated", EVAL, lambda c, r, t: truncate(r / CKPT / "open_clip_model.safetensors", 0.9),
     [f"{CKPT}/open_clip_model.safetensors", "not a whole safetensors file"]),
    ("eval-config-not-json", EVAL, lambda c, r, t: truncate(r / CKPT / "open_clip_config.json"), [f"{CKPT}/open_clip_config.json"]),
    ("eval-no-templates", EVAL, lambda c, r, t: (c / CLS / "zeroshot_classification_templates.txt").unlink(),
     ["zeroshot_classification_templates.txt"]),
    ("eval-no-classnames", EVAL, lambda c, r, t: (c / CLS / "classnames.txt").unlink(), ["classnames.txt"]),
    ("eval-empty-set", EVAL, lambda c, r, t: _tar_without_members(c / CLS / "test" / "0.tar"), [CLS, "no usable samples"]),
    ("eval-label-out-of-range", EVAL, lambda c, r, t: (c / CLS / "classnames.txt").write_text("one\n"),
     ["0.tar", "class label", "classnames.txt"]),
    ("eval-no-shards", EVAL, lambda c, r, t: (c / CLS / "test" / "nshards.txt").write_text("0"), ["nshards.txt"]),
    # report
    ("report-matrix-truncated", REPORT, lambda c, r, t: truncate(r / "eval" / "matrix.json"), ["matrix.json", "not valid JSON"]),
    ("report-method-names-a-path", REPORT, lambda c, r, t: _set_key(r / "eval" / "matrix.json", "method", "../../x"),
     ["matrix.json", "key 'method'"]),
    ("report-matrix-not-square", REPORT, lambda c, r, t: edit_json(r / "eval" / "matrix.json", lambda d: d["tasks"]["retrieval"]["E"].pop()),
     ["matrix.json", "tasks.retrieval.E"]),
    ("report-score-a-string", REPORT,
     lambda c, r, t: edit_json(r / "eval" / "matrix.json", lambda d: d["tasks"]["retrieval"]["metrics"].update(in_domain="high")),
     ["matrix.json", "tasks.retrieval.metrics.in_domain"]),
    ("report-out-a-file", REPORT, lambda c, r, t: (t / "rep").write_text("x"), ["rep"]),
    ("report-out-inside-the-run", ["report", "{run}", "--out", "{run}/rep"], lambda c, r, t: None, ["--out", "is inside"]),
    ("train-out-inside-the-data", TRAIN[:4] + ["{cur}/run"] + TRAIN[5:], lambda c, r, t: None, ["--out", "is inside", "data folder"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_damaged_folder_is_refused_in_one_line_and_left_as_it_was(small_run, tmp_path, capsys, case):
    _, argv, damage, needles = case
    cur, run = copy_small_run(small_run, tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    damage(cur, run, work)
    fill = {"cur": str(cur), "run": str(run), "tmp": str(work)}
    before = tree(cur, run)
    code = main(["-q", *[a.format(**fill) for a in argv]])
    one_line(capsys, code, *[n.format(**fill) for n in needles])
    assert tree(cur, run) == before


@pytest.mark.slow
def test_runs_of_different_benchmarks_are_not_reported_together(small_run, tmp_path, capsys):
    cur, run = copy_small_run(small_run, tmp_path / "a")
    _, other = copy_small_run(small_run, tmp_path / "b")

    def other_benchmark(doc):
        doc["method"] = "cumulative-all"
        doc["columns"] = doc["columns"][:-1]
        for t in doc["tasks"].values():
            t["E"] = [row[:-1] for row in t["E"][:-1]]
    edit_json(other / "eval" / "matrix.json", other_benchmark)
    before = tree(run, other)
    code = main(["-q", "report", str(run), str(other), "--out", str(tmp_path / "rep")])
    one_line(capsys, code, str(other), "not comparable", "one benchmark")
    assert tree(run, other) == before and not (tmp_path / "rep").exists()


@pytest.mark.slow
def test_a_damaged_cached_cell_is_scored_again(small_run, tmp_path, capsys):
    """A cell is a cache: a damaged one is not an error, it is recomputed and rewritten."""
    cur, run = copy_small_run(small_run, tmp_path)
    cell = sorted((run / "eval" / "cells").rglob("*.json"))[0]
    good = json.loads(cell.read_text())["metrics"]
    truncate(cell)
    assert main(["-q", "eval", str(run), "--device", "cpu"]) == 0
    assert json.loads(cell.read_text())["metrics"] == pytest.approx(good)
    matrix = json.loads((run / "eval" / "matrix.json").read_text())
    assert matrix["computed_cells"] == 1


def test_a_benchmark_definition_of_wrong_types_is_refused_by_key(tmp_path, capsys):
    bad = tmp_path / "mine.toml"
    for body, key in (('eval = "x"\n[[steps]]\nname = "a"\nyears = [2014]\n', "'eval'"),
                      ('steps = 3\n', "'steps'"),
                      ('[compute]\nsamples_per_step = nan\n[[steps]]\nname = "a"\nyears = [2014]\n', "'compute.samples_per_step'")):
        bad.write_text(body)
        one_line(capsys, main(["benchmarks", str(bad)]), "mine.toml", key)
    bad.write_text('name = "mine"\n[[steps]]\nname = "a"\nyears = [2014]\n')
    assert main(["benchmarks", str(bad)]) == 0 and "mine" in capsys.readouterr().out


@pytest.mark.slow
def test_page_damage_met_inside_a_ray_task_is_named(small_run, tmp_path, capsys, ray_local):
    """On Ray a task's Parquet error reaches the driver as a failed task; the file is still named."""
    cur, run = copy_small_run(small_run, tmp_path)
    _page_damage(cur / PART)
    before = tree(cur)
    code = main(["-q", "audit", str(cur), "--out", str(tmp_path / "a"), "--executor", "ray"])
    one_line(capsys, code, PART, "damaged Parquet")
    assert tree(cur) == before
