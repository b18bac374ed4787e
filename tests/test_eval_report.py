"""`tic eval` and `tic report`: transfer metrics by hand, retrieval and zero-shot numbers equal to
CLIP_benchmark's on the same checkpoint and sets, cached reruns, figures that render and a report
that names its inputs."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from tic_train.evaluate import evaluate_run
from tic_train.loop import run_training
from tic_train.config import load_config
from tic_train.metrics import retrieval, zero_shot
from tic_train.report import build_report
from tic_train.transfer import transfer_metrics

from conftest import REPO

NAMES = ["2014-2016", "2017-2018", "2019", "2020", "2021-2022"]


def test_transfer_metrics_by_hand():
    E = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]
    m = transfer_metrics(E)
    assert m["in_domain"] == 5.0 and m["final_average"] == 8.0
    assert math.isclose(m["backward"], (4 + 7 + 8) / 3) and math.isclose(m["forward"], (2 + 3 + 6) / 3)
    oracle = [[None] * 3, [None] * 3, [0.5, 0.6, 0.7]]  # only the final model
    m = transfer_metrics(oracle)
    assert m["in_domain"] == 0.7 and math.isclose(m["backward"], 0.55) and m["forward"] is None
    with pytest.raises(ValueError):
        transfer_metrics([[1.0, 2.0]])


def test_recall_and_accuracy_by_hand():
    img = torch.eye(4)
    # captions 0,1 -> image 0; caption 2 -> image 1; caption 3 -> image 2; caption 4 -> image 3
    txt = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0.9, 0.1], [0, 0, 1, 0]], dtype=torch.float)
    owner = torch.tensor([0, 0, 1, 2, 3])
    r = retrieval(img, torch.nn.functional.normalize(txt, dim=-1), owner, ks=(1, 2), chunk=2)
    # text->image: caption0 ok, caption1 ranks image1 first (miss at 1), caption2 ok, caption3 ok, caption4 ranks image2 first
    assert r["image_retrieval_recall@1"] == pytest.approx(3 / 5) and r["image_retrieval_recall@2"] == pytest.approx(5 / 5)
    # image->text: image0 hit (caption 0); image1: caption 1 ties its caption 2 (a tie counts as a hit);
    # image2: caption 4 (1.0) beats its own caption 3 (0.994); image3: caption 3 (0.11) beats its own caption 4 (0)
    assert r["text_retrieval_recall@1"] == pytest.approx(2 / 4) and r["text_retrieval_recall@2"] == 1.0
    logits_img = torch.eye(3)[[0, 1, 2, 2]]
    z = zero_shot(logits_img, torch.eye(3), torch.tensor([0, 1, 2, 1]))
    assert z["acc1"] == 0.75 and z["acc5"] == 1.0 and z["mean_per_class_recall"] == pytest.approx((1 + 0.5 + 1) / 3)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, world_folder):
    root = tmp_path_factory.mktemp("evalruns")
    data = world_folder  # the session's shared world folder (conftest.py): read only
    out = {}
    for method in ("sequential", "cumulative-all"):
        cfg = load_config(None, dict(data=str(data), out=str(root / method), method=method, samples_per_step=256, batch_size=64,
                                     workers=0, threads=1, warmup=2, lr=2e-3, progress=False))
        run_training(cfg)
        out[method] = root / method
    return data, out


@pytest.mark.slow
def test_numbers_equal_clip_benchmark_and_a_rerun_evaluates_nothing(runs, tmp_path):
    data, out = runs
    run = out["sequential"]
    m = evaluate_run(run, device="cpu", progress=False)
    assert m["computed_cells"] == 5 * 10
    ckpt = run / "checkpoints" / "step-04-2021-2022"
    cells = {p.name.split(".")[0]: json.loads(p.read_text()) for p in (run / "eval" / "cells" / ckpt.name).glob("*.json")}
    ours_r = cells["dyn-2019-retrieval"]["metrics"]
    ours_c = cells["dyn-2019-classification"]["metrics"]
    assert cells["dyn-2019-retrieval"]["task"] == "zeroshot_retrieval" and "pretrained" in cells["dyn-2019-retrieval"]
    # CLIP_benchmark's own command line on the same checkpoint and retrieval set
    code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); from tic_train.tiny import register_configs; register_configs(); "
            "from clip_benchmark.cli import main; sys.exit(main())")
    res = tmp_path / "cb.json"
    r = subprocess.run([sys.executable, "-c", code, str(REPO), "eval", "--dataset", "wds/x", "--dataset_root", str(data / "eval" / "2019" / "retrieval"),
                        "--model", "tic-tiny", "--pretrained", str(ckpt / "open_clip_model.safetensors"), "--task", "zeroshot_retrieval",
                        "--recall_k", "1", "5", "10", "--no_amp", "--output", str(res), "--batch_size", "64", "--num_workers", "0"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    theirs = json.loads(res.read_text())["metrics"]
    for k in (1, 5, 10):
        for d in ("image", "text"):
            assert ours_r[f"{d}_retrieval_recall@{k}"] == pytest.approx(theirs[f"{d}_retrieval_recall@{k}"], abs=1e-6), (d, k)
    # classification: CLIP_benchmark's dataset, zero-shot head and logits (its accuracy() breaks on numpy>=2.4)
    import open_clip
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics.zeroshot_classification import run_classification, zero_shot_classifier
    from sklearn.metrics import balanced_accuracy_score

    model, _, preprocess = open_clip.create_model_and_transforms("tic-tiny", pretrained=str(ckpt / "open_clip_model.safetensors"))
    ds = build_dataset("wds/x", root=str(data / "eval" / "2019" / "classification"), transform=preprocess, task="zeroshot_classification")
    loader = torch.utils.data.DataLoader(ds.batched(64), batch_size=None, num_workers=0)
    clf = zero_shot_classifier(model.eval(), open_clip.get_tokenizer("tic-tiny"), ds.classes, ds.templates, "cpu", amp=False)
    logits, target = run_classification(model, clf, loader, "cpu", amp=False)
    top5 = logits.topk(5, 1).indices
    assert ours_c["acc1"] == pytest.approx(float((logits.argmax(1) == target).float().mean()), abs=1e-6)
    assert ours_c["acc5"] == pytest.approx(float((top5 == target[:, None]).any(1).float().mean()), abs=1e-6)
    assert ours_c["mean_per_class_recall"] == pytest.approx(balanced_accuracy_score(target.numpy(), logits.argmax(1).numpy()), abs=1e-6)
    # a rerun reads every cell back
    before = (run / "eval" / "matrix.json").read_text()
    again = evaluate_run(run, device="cpu", progress=False)
    assert again["computed_cells"] == 0
    assert json.loads(before)["tasks"] == again["tasks"]
    # the matrix: one row per step, the folding stated, the diagonal equal to the cells
    E = again["tasks"]["retrieval"]["E"]
    assert len(E) == 5 and all(v is not None for row in E for v in row)
    assert E[4][2] == pytest.approx(ours_r["retrieval_recall@1"])
    assert "2014-2016" in json.dumps(again["columns"]) and "eval set of a step" in again["folding"]


@pytest.mark.slow
def test_report_renders_and_names_its_inputs(runs, tmp_path):
    data, out = runs
    static = {"world2019": data / "eval" / "2019" / "classification"}
    for run in out.values():
        evaluate_run(run, static=static, device="cpu", progress=False)
    md = build_report(list(out.values()), tmp_path / "rep")
    text = md.read_text()
    from PIL import Image

    pngs = sorted((tmp_path / "rep").glob("*.png"))
    assert {p.name for p in pngs} >= {"compute.png", "in-domain.png", "heatmap-sequential-retrieval.png", "heatmap-cumulative-all-classification.png"}
    for p in pngs:
        with Image.open(p) as im:
            im.load()
            assert im.size[0] > 300 and im.size[1] > 200
            assert len(set(np.asarray(im.convert("L")).ravel().tolist())) > 10  # drawn, not blank
        assert f"({p.name})" in text
    for run in out.values():
        assert str(run.resolve()) in text and "matrix.json" in text
    assert str(data) in text and str(static["world2019"]) in text
    for metric in ("in_domain", "backward", "forward", "final_average"):
        assert metric in text
    assert "y axis: the average dynamic score" in text and "Right panel, y axis: the average static score" in text
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "<table>" in html and "compute.png" in html
