"""Patching's alpha curve (issue 13): every patched step keeps its fine-tuned weights, the step's
weights are exactly (1 - a) x previous + a x fine-tuned, and `tic eval --patching-alpha` scores
other alphas without retraining; at the run's own alpha it reproduces the run's scores, at 0 the
previous step's."""

from __future__ import annotations

import pytest

from ticdata.cli import main
from tic_train.config import load_config
from tic_train.evaluate import evaluate_run
from tic_train.loop import run_training
from tic_train.report import build_report

from refusals import one_line
from worldfolder import SMALL_STEPS

ALPHA = 0.5


@pytest.fixture(scope="module")
def patched_run(small_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("patching") / "run"
    run_training(load_config(None, dict(data=str(small_run[0]), out=str(run), method="patching", patching_alpha=ALPHA,
                                        samples_per_step=32, batch_size=8, workers=0, threads=1, lr=1e-3,
                                        steps=",".join(SMALL_STEPS), progress=False, device="cpu")))
    return run


@pytest.mark.slow
def test_patched_weights_are_the_interpolation_exactly(patched_run):
    from safetensors.torch import load_file

    first, second = (patched_run / "checkpoints" / f"step-{i:02d}-{s}" for i, s in enumerate(SMALL_STEPS))
    assert not (first / "finetuned.safetensors").exists()  # the first step is not patched
    prev = load_file(str(first / "open_clip_model.safetensors"))
    ft = load_file(str(second / "finetuned.safetensors"))
    got = load_file(str(second / "open_clip_model.safetensors"))
    floats = [k for k in got if got[k].is_floating_point()]
    assert floats and any(not (ft[k] == prev[k]).all() for k in floats)  # fine-tuning moved the weights
    for k in got:
        want = (1 - ALPHA) * prev[k] + ALPHA * ft[k] if got[k].is_floating_point() else ft[k]
        assert (got[k] == want).all(), k


@pytest.mark.slow
def test_the_alpha_curve_is_scored_without_retraining(patched_run, tmp_path, capsys):
    m = evaluate_run(patched_run, device="cpu", progress=False, patching_alphas=[0.0, ALPHA, 1.0])
    curve = m["patching_alpha"]
    assert sorted(curve, key=float) == ["0", "0.5", "1"]
    for task, t in m["tasks"].items():
        E = t["E"]
        assert curve["0.5"][task]["E"] == E  # the run's own alpha: its own weights, its own scores
        assert curve["0"][task]["E"][1] == E[0]  # alpha 0: step 2 is step 1's weights
        assert curve["0"][task]["E"][0] == curve["1"][task]["E"][0] == E[0]  # the first step is never re-patched
    again = evaluate_run(patched_run, device="cpu", progress=False, patching_alphas=[0.0, ALPHA, 1.0])
    assert again["patching_alpha"] == curve  # read back from the cached cells
    md = build_report([patched_run], tmp_path / "rep").read_text()
    assert "## Patching: the alpha curve" in md and (tmp_path / "rep" / "patching-alpha.png").stat().st_size > 1000
    assert all(f"| {a} |" in md for a in ("0", "0.5", "1"))
    capsys.readouterr()  # the in-process evaluations' log lines (shown when an earlier main() turned INFO on)
    one_line(capsys, main(["-q", "eval", str(patched_run), "--patching-alpha", "0,2"]), "--patching-alpha")


@pytest.mark.slow
def test_an_existing_model_is_scored_without_a_run_and_reported_beside_runs(small_run, tmp_path, capsys):
    """A weights file scored as a frozen model: every row of its matrix is the row its checkpoint got
    inside the run (same weights, same sets), and tic report takes it beside the run."""
    import json

    cur, run = small_run
    ckpt = run / "checkpoints" / f"step-00-{SMALL_STEPS[0]}"
    out = tmp_path / "frozen"
    code = main(["-q", "eval", "--data", str(cur), "--model", "tic-tiny", "--pretrained", str(ckpt / "open_clip_model.safetensors"),
                 "--out", str(out), "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    m = json.loads((out / "eval" / "matrix.json").read_text())
    trained = json.loads((run / "eval" / "matrix.json").read_text())
    assert m["method"].startswith("frozen-")
    for task, t in m["tasks"].items():
        assert all(row == trained["tasks"][task]["E"][0] for row in t["E"])
    assert main(["-q", "report", str(run), str(out), "--out", str(tmp_path / "rep")]) == 0
    assert m["method"] in (tmp_path / "rep" / "report.md").read_text()
    capsys.readouterr()


def test_an_uncached_pretrained_tag_is_refused_without_a_download(small_run, tmp_path, capsys):
    """`openai` for ViT-B-32 is not in an empty cache: one line, and nothing is fetched (the check is local)."""
    code = main(["-q", "eval", "--data", str(small_run[0]), "--model", "ViT-B-32", "--pretrained", "openai",
                 "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "empty-cache")])
    one_line(capsys, code, "--pretrained 'openai'", "not in the local cache", "downloads nothing")
    one_line(capsys, main(["-q", "eval", "--data", str(small_run[0]), "--model", "hf-hub:org/x", "--pretrained", "x",
                           "--out", str(tmp_path / "o")]), "--model", "not a local open_clip config")
    one_line(capsys, main(["-q", "eval", "--model", "tic-tiny"]), "--data")
