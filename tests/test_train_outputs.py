"""What open_clip_train and CLIP_benchmark users expect of tic's trainer (issue 14): TensorBoard
scalars equal to log.jsonl, validation during training that leaves the weights bit-identical,
`tic eval`'s rows in CLIP_benchmark's build table (results.csv / results.jsonl), eval cells named by
checkpoint, set and model with their fingerprints inside, and `tic train` refusals (a required
--method, bad values, bad folders) that leave no run folder behind and come before torch loads."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ticdata.cli import main
from tic_train.config import load_config
from tic_train.loop import run_training
from tic_train.matrix import PRIMARY

from conftest import REPO
from refusals import one_line, truncate
from worldfolder import SMALL_STEPS, copy_small_run

METHOD_NAMES = ("sequential", "cumulative-all", "oracle", "lwf", "patching")


def _train(data, out, **kw):
    base = dict(data=str(data), out=str(out), method="sequential", samples_per_step=32, batch_size=8, workers=0, threads=1,
                log_every=1, steps=",".join(SMALL_STEPS), progress=False, device="cpu", deterministic=True, lr=1e-3, warmup=1)
    return run_training(load_config(None, base | kw))


def _lines(run, event):
    return [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if json.loads(x).get("event") == event]


def _weights(run, step):
    from safetensors.torch import load_file

    return load_file(str(run / "checkpoints" / step / "open_clip_model.safetensors"))


@pytest.mark.slow
def test_validation_and_tensorboard_leave_the_weights_bit_identical(small_run, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tic_train.evaluate import evaluate_run

    data = small_run[0]
    plain, watched = tmp_path / "plain", tmp_path / "watched"
    _train(data, plain)
    _train(data, watched, val_every=16, report_to="tensorboard")
    for i, step in enumerate(SMALL_STEPS):
        a, b = _weights(plain, f"step-{i:02d}-{step}"), _weights(watched, f"step-{i:02d}-{step}")
        assert a.keys() == b.keys() and all(torch_equal(a[k], b[k]) for k in a), step
    intervals = _lines(watched, "interval")
    assert [x["loss"] for x in _lines(plain, "interval")] == [x["loss"] for x in intervals]
    # global sample count: 4 batches of 8 per step, the second step continuing the first's count
    assert [x["global_samples"] for x in intervals] == [8, 16, 24, 32, 40, 48, 56, 64]
    vals = _lines(watched, "val")
    assert [(v["step"], v["at"], v["samples"]) for v in vals] == [(s, at, n) for s in SMALL_STEPS
                                                                 for at, n in (("batch 2", 16), ("end", 32))]
    assert all(v["set"] == f"dyn-{v['step']}-retrieval" and 0 <= v["metrics"]["retrieval_recall@1"] <= 1 for v in vals)
    assert not _lines(plain, "val") and not (plain / "tensorboard").exists()

    # TensorBoard: the loss of every log line, against the run's sample count
    acc = EventAccumulator(str(watched / "tensorboard"))
    acc.Reload()
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [x["global_samples"] for x in intervals]
    assert [e.value for e in loss] == [float(np.float32(x["loss"])) for x in intervals]
    assert [e.value for e in acc.Scalars("train/lr")] == [float(np.float32(x["lr"])) for x in intervals]
    assert {"train/samples_per_second", "train/samples_step", "train/samples_global", "step/loss_last"} <= set(acc.Tags()["scalars"])
    r1 = acc.Scalars("val/retrieval_recall@1")
    assert [(e.step, e.value) for e in r1] == [(v["global_samples"], float(np.float32(v["metrics"]["retrieval_recall@1"])))
                                              for v in vals]

    # validation at a step's end scores the checkpoint as `tic eval` does (its functions, its transform)
    m = evaluate_run(plain, device="cpu", progress=False)
    for i, step in enumerate(SMALL_STEPS):
        cell = json.loads((plain / m["cells"][f"step-{i:02d}-{step}/dyn-{step}-retrieval"]).read_text())["metrics"]
        end = next(v for v in vals if v["step"] == step and v["at"] == "end")["metrics"]
        assert end.keys() == cell.keys() and all(end[k] == pytest.approx(cell[k], abs=1e-6) for k in cell)


def torch_equal(a, b) -> bool:
    import torch

    return torch.equal(a, b)


def test_report_to_tensorboard_without_tensorboard_is_refused_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if the extra were not installed
    out = tmp_path / "run"
    code = main(["-q", "train", "--data", str(tmp_path / "data"), "--out", str(out), "--method", "sequential",
                 "--report-to", "tensorboard"])
    one_line(capsys, code, "--report-to tensorboard", "pip install 'tic[tensorboard]'")
    assert not out.exists()
    (tmp_path / "run.toml").write_text('report_to = "wandb"\n')
    code = main(["-q", "train", "--config", str(tmp_path / "run.toml"), "--data", "d", "--out", str(out), "--method", "lwf"])
    one_line(capsys, code, "report_to 'wandb'", "tensorboard")
    one_line(capsys, main(["-q", "train", "--data", "d", "--out", str(out), "--method", "lwf", "--report-to", "wandb"]),
             "--report-to", "invalid choice")
    one_line(capsys, main(["-q", "train", "--data", "d", "--out", str(out), "--method", "lwf", "--val-every", "-5"]),
             "--val-every")
    assert not out.exists()


@pytest.mark.slow
def test_results_have_a_row_per_checkpoint_set_and_metric_equal_to_the_matrix(small_run):
    run = small_run[1]
    m = json.loads((run / "eval" / "matrix.json").read_text())
    with open(run / "eval" / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    jrows = [json.loads(x) for x in (run / "eval" / "results.jsonl").read_text().splitlines()]
    assert {"model", "pretrained", "dataset", "task", "metric", "value", "checkpoint", "step", "bucket", "method"} <= set(rows[0])
    assert [(r["checkpoint"], r["dataset"], r["metric"]) for r in rows] == [(r["checkpoint"], r["dataset"], r["metric"]) for r in jrows]
    cells = {k: json.loads((run / rel).read_text()) for k, rel in m["cells"].items()}
    checkpoints = [r["checkpoint"] for r in m["rows"]]
    keys = sorted({k.split("/", 1)[1] for k in cells})
    assert len(checkpoints) == len(SMALL_STEPS) and len(keys) == 5 * 2  # 5 buckets x (retrieval, classification)
    per_set = {k: len(cells[f"{checkpoints[0]}/{k}"]["metrics"]) for k in keys}  # 7 retrieval metrics, 3 zero-shot
    assert len(rows) == len(jrows) == len(checkpoints) * sum(per_set.values())
    for r, j in zip(rows, jrows):
        cell = cells[f"{r['checkpoint']}/{r['dataset'].removeprefix('wds/')}"]
        assert float(r["value"]) == j["value"] == cell["metrics"][r["metric"]]  # exactly the cell's number
        assert (r["model"], r["pretrained"], r["task"], r["method"]) == (cell["model"], cell["pretrained"], cell["task"], m["method"])
        assert r["bucket"] == j["bucket"] == cell["tic"]["bucket"] and r["step"] == r["checkpoint"].split("-", 2)[2]
    # E[i][j] of matrix.json is the row of (step i's checkpoint, step j's set, the task's primary metric)
    columns = [c["step"] for c in m["columns"]]
    for task, t in m["tasks"].items():
        for row in m["rows"]:
            for j, bucket in enumerate(columns):
                hit = [float(r["value"]) for r in rows if r["checkpoint"] == row["checkpoint"] and r["bucket"] == bucket
                       and r["task"] == f"zeroshot_{task}" and r["metric"] == PRIMARY[task]]
                assert hit == [t["E"][row["step"]][j]]


@pytest.mark.slow
def test_cells_are_named_by_checkpoint_set_and_model_and_a_second_eval_scores_nothing(small_run, tmp_path, capsys):
    cur, run = copy_small_run(small_run, tmp_path)
    cells = run / "eval" / "cells"
    for f in cells.rglob("*.json"):
        f.unlink()

    def tic_eval() -> dict:
        assert main(["-q", "eval", str(run), "--device", "cpu"]) == 0, capsys.readouterr().err
        return json.loads((run / "eval" / "matrix.json").read_text())

    assert tic_eval()["computed_cells"] == len(SMALL_STEPS) * 10
    names = sorted(str(f.relative_to(cells)) for f in cells.rglob("*.json"))
    buckets = json.loads((run / "run.json").read_text())["buckets"]
    assert names == sorted(f"step-{i:02d}-{s}/dyn-{b}-{k}.tic-tiny.json" for i, s in enumerate(SMALL_STEPS) for b in buckets
                           for k in ("retrieval", "classification"))
    first = cells / f"step-00-{SMALL_STEPS[0]}" / f"dyn-{SMALL_STEPS[0]}-retrieval.tic-tiny.json"
    doc = json.loads(first.read_text())
    assert len(doc["tic"]["cache_key"]) == 33 and doc["tic"]["checkpoint"] == f"step-00-{SMALL_STEPS[0]}"
    before = (run / "eval" / "results.csv").read_bytes()
    assert tic_eval()["computed_cells"] == 0  # the cache: nothing scored again
    assert (run / "eval" / "results.csv").read_bytes() == before
    # a cell of an earlier version (named by the fingerprint) is not read: scored again, and the old file removed
    old = first.with_name(f"dyn-{SMALL_STEPS[0]}-retrieval.0123456789abcdef-fedcba9876543210.json")
    first.rename(old)
    assert tic_eval()["computed_cells"] == 1 and first.exists() and not old.exists()
    # the fingerprint inside: a changed checkpoint (here its weights' mtime) scores that checkpoint's cells again
    weights = run / "checkpoints" / f"step-01-{SMALL_STEPS[1]}" / "open_clip_model.safetensors"
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert tic_eval()["computed_cells"] == 10
    key = json.loads(first.read_text())["tic"]["cache_key"]
    assert key == doc["tic"]["cache_key"]  # the other checkpoint's cells were kept
    assert tic_eval()["computed_cells"] == 0


def test_train_requires_a_method_unless_a_config_sets_it(tmp_path, capsys):
    out = tmp_path / "run"
    line = one_line(capsys, main(["-q", "train", "--data", str(tmp_path / "data"), "--out", str(out)]),
                    "train:", "required: --method", *METHOD_NAMES)
    assert "no such folder" not in line
    one_line(capsys, main(["-q", "train", "--data", str(tmp_path / "data"), "--out", str(out), "--method", "fancy"]),
             "--method", "invalid choice: 'fancy'", *METHOD_NAMES)
    # a config (or --set) that names the method stands for the flag: the next refusal is the data folder's
    (tmp_path / "run.toml").write_text('method = "lwf"\n')
    for extra in (["--config", str(tmp_path / "run.toml")], ["--set", "method=lwf"]):
        one_line(capsys, main(["-q", "train", "--data", str(tmp_path / "data"), "--out", str(out), *extra]),
                 f"--data {tmp_path / 'data'}: no such folder")
    assert not out.exists()
    # the library keeps its default
    assert load_config(None, {"data": "d", "out": "o"}).method == "sequential"


def test_path_errors_come_before_torch_is_imported_and_leave_no_run_folder(tmp_path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "data").mkdir()
    cases = {
        "no-method": (["--data", str(tmp_path / "data")], "--method"),
        "no-data": (["--data", str(tmp_path / "nodata"), "--method", "sequential"], "no such folder"),
        "data-a-file": (["--data", str(tmp_path / "afile"), "--method", "sequential"], "not a folder"),
        "not-curated": (["--data", str(tmp_path / "data"), "--method", "sequential"], "no manifest.json"),
    }
    # one interpreter runs every case, then says which heavy modules it has imported
    code = ("import contextlib, io, json, sys; from ticdata.cli import main\n"
            "res = {}\n"
            "for name, argv in json.loads(sys.argv[1]).items():\n"
            "    err = io.StringIO()\n"
            "    with contextlib.redirect_stderr(err):\n"
            "        res[name] = [main(argv), err.getvalue()]\n"
            "print(json.dumps([res, sorted(m for m in ('torch', 'open_clip', 'ray') if m in sys.modules)]))")
    argvs = {name: ["-q", "train", *args, "--out", str(tmp_path / f"out-{name}")] for name, (args, _) in cases.items()}
    r = subprocess.run([sys.executable, "-c", code, json.dumps(argvs)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    res, loaded = json.loads(r.stdout.strip().splitlines()[-1])
    assert loaded == []  # every case refused before torch, open_clip or Ray was imported
    for name, (_, needle) in cases.items():
        status, err = res[name]
        assert status == 2 and needle in err and len(err.strip().splitlines()) == 1, (name, err)
        assert not (tmp_path / f"out-{name}").exists(), name


@pytest.mark.slow
def test_a_train_refused_after_it_started_leaves_no_run_folder(small_run, tmp_path, capsys):
    cur, run = copy_small_run(small_run, tmp_path / "copy")
    common = ["-q", "train", "--data", str(cur), "--method", "sequential", "--samples-per-step", "16", "--batch-size", "16",
              "--workers", "0", "--steps", SMALL_STEPS[0], "--device", "cpu"]
    # the out folder inside the data, a file in its place: refused before anything, the file untouched
    one_line(capsys, main([*common, "--out", str(cur / "run")]), "is inside", "data folder")
    (tmp_path / "afile").write_text("x")
    one_line(capsys, main([*common, "--out", str(tmp_path / "afile" / "run")]), "afile", "a file")
    assert (tmp_path / "afile").read_text() == "x"
    # an unknown model is found once torch is loaded, a damaged shard while the shards are indexed: both after the
    # run folder was made, which is removed again
    one_line(capsys, main([*common, "--model", "no-such-arch", "--out", str(tmp_path / "fresh")]), "no-such-arch")
    assert not (tmp_path / "fresh").exists()
    truncate(cur / "train" / "shards" / SMALL_STEPS[0] / "00000000.tar")
    one_line(capsys, main([*common, "--out", str(tmp_path / "fresh")]), "00000000.tar", "truncated")
    assert not (tmp_path / "fresh").exists() and not (cur / "run").exists()
    # a refusal inside an existing run folder leaves the folder and its contents as they were
    before = sorted(p.name for p in run.iterdir())
    one_line(capsys, main([*common, "--out", str(run)]), "truncated")
    assert sorted(p.name for p in run.iterdir()) == before
