"""`tic train`: every continual method draws its mixture and exactly its budget; killed steps resume
to the same weights; warm starts reset optimizer and schedule; 2 gloo processes agree with 1;
checkpoints load in open_clip."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from ticdata.errors import UserError
from train.config import RunConfig, load_config
from train.loop import run_training
from train.mixture import METHODS, budget_of, mixture
from train.optim import lr_at

from conftest import REPO
from worldfolder import build_world_folder

pytestmark = pytest.mark.slow
C, BATCH = 640, 64
NAMES = ["2014-2016", "2017-2018", "2019", "2020", "2021-2022"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return build_world_folder(tmp_path_factory.mktemp("world"))


def _cfg(data, out, **kw):
    base = dict(data=str(data), out=str(out), samples_per_step=C, batch_size=BATCH, workers=0, lr=1e-3, warmup=3,
                threads=1, progress=False, log_every=1)
    return load_config(None, base | kw)


def _tic(*args, env=None, **kw):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "ticdata.cli", *args], cwd=REPO, env=e, capture_output=True, text=True, timeout=600, **kw)


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "open_clip_model.safetensors"))


@pytest.mark.parametrize("method", METHODS)
def test_each_method_draws_its_mixture_and_exactly_its_budget(data, tmp_path, method):
    doc = run_training(_cfg(data, tmp_path / method, method=method))
    sizes = list(doc["buckets"].values())
    steps = [len(NAMES) - 1] if method == "oracle" else range(len(NAMES))
    assert list(doc["steps"]) == [NAMES[t] for t in steps]
    for t in steps:
        s = doc["steps"][NAMES[t]]
        budget = budget_of(method, C, len(NAMES))
        assert s["samples"] == budget and s["optimizer_steps"] == math.ceil(budget / BATCH)
        assert s["warm_start"] == (method not in ("restart", "oracle") and t > 0)
        w = np.array(mixture(method, t, sizes).weights)
        got = np.array(s["per_bucket"])
        assert got.sum() == budget
        assert (got[w == 0] == 0).all()
        sd = np.sqrt(budget * w * (1 - w))
        assert (np.abs(got - budget * w) <= 4 * sd + 1).all(), (t, got, budget * w)
        assert s["estimated_macs"] > 0 and math.isfinite(s["loss_last"])
        assert (tmp_path / method / "checkpoints" / f"step-{t:02d}-{NAMES[t]}" / "open_clip_model.safetensors").exists()
    if method == "patching":
        # the patched model lies between the previous step's and the fine-tuned one: it differs from both ends
        a = _weights(tmp_path / method / "checkpoints" / "step-00-2014-2016")
        b = _weights(tmp_path / method / "checkpoints" / "step-01-2017-2018")
        assert any(not torch.equal(a[k], b[k]) for k in a)


def test_a_killed_step_resumes_to_the_weights_of_an_uninterrupted_run(data, tmp_path):
    args = ["train", "--data", str(data), "--method", "cumulative-all", "--samples-per-step", str(C), "--batch-size", str(BATCH),
            "--workers", "1", "--threads", "1", "--deterministic", "--checkpoint-every", "2", "--steps", "2014-2016,2017-2018", "-q"]
    whole = _tic(*args, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = _tic(*args, "--out", str(tmp_path / "killed"), env={"TIC_TRAIN_KILL_AFTER": "1:5"})
    assert killed.returncode == -9
    resume = tmp_path / "killed" / "checkpoints" / "resume"
    assert json.loads((resume / "open_clip_config.json").read_text())["tic"]["next_batch"] == 4
    state = torch.load(resume / "state.pt", weights_only=True)  # plain tensors and numbers only
    assert state["next_batch"] == 4
    again = _tic(*args, "--out", str(tmp_path / "killed"))
    assert again.returncode == 0, again.stderr[-2000:]
    assert not resume.exists()
    for step in ("step-00-2014-2016", "step-01-2017-2018"):
        a, b = _weights(tmp_path / "whole" / "checkpoints" / step), _weights(tmp_path / "killed" / "checkpoints" / step)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), step
    sw = json.loads((tmp_path / "whole" / "run.json").read_text())["steps"]["2017-2018"]
    sk = json.loads((tmp_path / "killed" / "run.json").read_text())["steps"]["2017-2018"]
    assert sw["per_bucket"] == sk["per_bucket"] and sw["samples"] == sk["samples"] == C


def test_warm_start_loads_weights_only_with_a_fresh_optimizer_and_schedule(data, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--out", str(out), "--method", "sequential", "--samples-per-step", str(C),
            "--batch-size", str(BATCH), "--workers", "0", "--threads", "1", "--checkpoint-every", "1", "--log-every", "1",
            "--lr", "1e-3", "--warmup", "4", "-q"]
    r = _tic(*args, env={"TIC_TRAIN_KILL_AFTER": "1:1"})
    assert r.returncode == -9
    state = torch.load(out / "checkpoints" / "resume" / "state.pt", weights_only=True)
    assert state["step_index"] == 1
    steps = {int(v["step"]) for v in state["optimizer"]["state"].values()}
    assert steps == {1}  # one update since the warm start: the optimizer did not carry step 0's 10 updates
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    first_of_step1 = next(x for x in lines if x.get("event") == "interval" and x["step_index"] == 1)
    assert math.isclose(first_of_step1["lr"], lr_at(0, 10, 4, 1e-3))  # the warmup starts again
    w0 = _weights(out / "checkpoints" / "step-00-2014-2016")
    w1 = _weights(out / "checkpoints" / "resume")
    from train.tiny import create_model

    fresh = create_model(seed=0)[0].state_dict()
    # one step of a fresh AdamW moves every element by at most its learning rate (plus decoupled weight decay):
    # the resume weights are step 0's weights plus exactly such a step, far from a new init
    lr0 = lr_at(0, 10, 4, 1e-3)
    bound = lr0 * (1 + 0.2 * max(float(w0[k].abs().max()) for k in w0)) + 1e-7
    assert max(float((w1[k] - w0[k]).abs().max()) for k in w0) <= bound
    assert max(float((w1[k] - fresh[k]).abs().max()) for k in w0) > 2 * bound


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_agree_with_one_on_the_first_loss(data, tmp_path):
    common = ["--data", str(data), "--method", "sequential", "--samples-per-step", "128", "--batch-size", "64",
              "--workers", "0", "--threads", "1", "--steps", "2014-2016", "--log-every", "1", "-q"]
    one = _tic("train", *common, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-2000:]
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", OMP_NUM_THREADS="1")
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
                          "--master-port", str(_free_port()), "-m", "ticdata.cli", "train", *common, "--out", str(tmp_path / "two")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]

    def first_loss(run):
        return next(json.loads(x)["loss"] for x in (run / "log.jsonl").read_text().splitlines() if '"interval"' in x)

    assert math.isclose(first_loss(tmp_path / "one"), first_loss(tmp_path / "two"), rel_tol=1e-4)
    doc = json.loads((tmp_path / "two" / "run.json").read_text())
    assert doc["steps"]["2014-2016"]["samples"] == 128


def test_checkpoints_load_in_open_clip(data, tmp_path):
    import open_clip

    from train.tiny import register_configs

    run_training(_cfg(data, tmp_path / "run", method="sequential", steps=("2014-2016",)))
    folder = tmp_path / "run" / "checkpoints" / "step-00-2014-2016"
    register_configs()
    model, _, _ = open_clip.create_model_and_transforms("tic-tiny", pretrained=str(folder / "open_clip_model.safetensors"))
    saved = _weights(folder)
    assert all(torch.equal(model.state_dict()[k], saved[k]) for k in saved)
    cfg = json.loads((folder / "open_clip_config.json").read_text())
    assert cfg["model_cfg"]["embed_dim"] == 64 and cfg["tic"]["samples"] == C


def test_a_bucket_without_samples_stops_the_run_with_its_folder_named(data, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    folder = copy / "train" / "shards" / "2019"
    for tar in folder.glob("*.tar"):
        tar.unlink()
    (folder / "sizes.json").write_text("{}")
    with pytest.raises(UserError, match=r"train/shards/2019.*no valid training sample"):
        run_training(_cfg(copy, tmp_path / "run", method="sequential"))


def test_config_file_and_overrides(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text('data = "d"\nout = "o"\nmethod = "cumulative-exp"\nbatch_size = 32\nlr = 1e-4\nsteps = ["2019"]\n')
    cfg = load_config(str(f), {"batch_size": 16, "lwf_weight": None})
    assert (cfg.method, cfg.batch_size, cfg.lr, cfg.steps) == ("cumulative-exp", 16, 1e-4, ("2019",))
    f.write_text('data = "d"\nout = "o"\nlearning_rate = 1\n')
    with pytest.raises(UserError, match="unknown key 'learning_rate'"):
        load_config(str(f), {})
    with pytest.raises(UserError, match="method 'fancy'"):
        load_config(None, {"data": "d", "out": "o", "method": "fancy"})
    with pytest.raises(UserError, match="not a multiple"):
        load_config(None, {"data": "d", "out": "o", "batch_size": 10, "accum_freq": 3})
    assert isinstance(RunConfig(), RunConfig)


def test_accumulation_and_checkpointing_compute_the_same_update(data, tmp_path):
    runs = {}
    for name, kw in {"plain": {}, "accum": {"accum_freq": 4}, "ckpt": {"grad_checkpointing": True}}.items():
        doc = run_training(_cfg(data, tmp_path / name, method="sequential", steps=("2014-2016",), samples_per_step=BATCH, **kw))
        runs[name] = (doc["steps"]["2014-2016"]["loss_first"], _weights(tmp_path / name / "checkpoints" / "step-00-2014-2016"))
    loss, w = runs["plain"]
    for name in ("accum", "ckpt"):
        l2, w2 = runs[name]
        assert math.isclose(loss, l2, rel_tol=1e-5), name  # the loss of the whole batch, not of micro-batches
        assert all(torch.allclose(w[k], w2[k], atol=2e-5) for k in w), name
