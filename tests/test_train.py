"""`tic train`: every continual method draws its mixture and exactly its budget; a step killed in
its middle resumes to the weights of an uninterrupted run; warm starts reset optimizer and schedule;
2 gloo processes make the update of 1; checkpoints load in open_clip."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from ticdata.errors import UserError
from tic_train.config import load_config
from tic_train.loop import run_training
from tic_train.mixture import METHODS, budget_of, mixture
from tic_train.optim import lr_at

from conftest import REPO

pytestmark = pytest.mark.slow
C, BATCH = 640, 64
NAMES = ["2014-2016", "2017-2018", "2019", "2020", "2021-2022"]


@pytest.fixture
def data(world_folder):
    """The session's shared world folder (conftest.py): read only, runs go to tmp_path."""
    return world_folder


def _cfg(data, out, **kw):
    base = dict(data=str(data), out=str(out), samples_per_step=C, batch_size=BATCH, workers=0, lr=1e-3, warmup=3,
                threads=1, progress=False, log_every=1)
    return load_config(None, base | kw)


def _tic(*args):
    return subprocess.run([sys.executable, "-m", "ticdata.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def _killed_at(args, at: str, out, timeout=600):
    """Run `tic train ARGS --out OUT` (tests/train_paused.py) until it writes the resume checkpoint of
    STEP:BATCH (`at`) and waits there, then SIGKILL its process group (the trainer and its loader
    workers), as a preempted job dies. Returns the step checkpoints that existed at the kill."""
    flag = out.parent / f"{out.name}.paused"
    with open(out.parent / f"{out.name}.stderr", "w") as err:
        p = subprocess.Popen([sys.executable, str(REPO / "tests" / "train_paused.py"), at, str(flag), *args, "--out", str(out)],
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while not flag.exists():
                assert p.poll() is None, f"tic train ended ({p.returncode}) before {at}: {(out.parent / f'{out.name}.stderr').read_text()[-2000:]}"
                assert time.monotonic() < deadline, f"tic train did not reach {at} in {timeout} s"
                time.sleep(0.05)
            done = sorted(f.name for f in (out / "checkpoints").glob("step-*"))
            os.killpg(p.pid, signal.SIGKILL)
            assert p.wait(timeout=60) == -signal.SIGKILL
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return done


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
            "--workers", "1", "--threads", "1", "--deterministic", "--checkpoint-every", "2", "--log-every", "1",
            "--steps", "2014-2016,2017-2018"]
    whole = _tic(*args, "-q", "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = tmp_path / "killed"
    # the kill lands in the middle of step 1 (10 batches): after its resume checkpoint at batch 4, before its own checkpoint
    assert _killed_at(args, "1:4", killed) == ["step-00-2014-2016"]
    assert not (killed / "checkpoints" / "step-01-2017-2018").exists()
    resume = killed / "checkpoints" / "resume"
    assert json.loads((resume / "open_clip_config.json").read_text())["tic"]["next_batch"] == 4
    state = torch.load(resume / "state.pt", weights_only=True)  # plain tensors and numbers only
    assert (state["step_index"], state["next_batch"]) == (1, 4)
    again = _tic(*args, "--out", str(killed))  # not quiet: tic train's own INFO lines are shown
    assert again.returncode == 0, again.stderr[-2000:]
    assert "[tic] step 2017-2018: resuming at batch 4 of 10" in again.stderr
    assert "[tic] step 2017-2018 done" in again.stderr and "2014-2016 done" not in again.stderr  # step 0 is not redone
    assert not resume.exists()
    # every batch of step 1 was trained once: 1-4 before the kill, 5-10 after the resume
    lines = [json.loads(x) for x in (killed / "log.jsonl").read_text().splitlines()]
    assert [x["batch"] for x in lines if x.get("event") == "interval" and x["step_index"] == 1] == list(range(1, 11))
    for step in ("step-00-2014-2016", "step-01-2017-2018"):
        a, b = _weights(tmp_path / "whole" / "checkpoints" / step), _weights(killed / "checkpoints" / step)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), step
    sw = json.loads((tmp_path / "whole" / "run.json").read_text())["steps"]["2017-2018"]
    sk = json.loads((killed / "run.json").read_text())["steps"]["2017-2018"]
    assert sw["per_bucket"] == sk["per_bucket"] and sw["samples"] == sk["samples"] == C
    assert sw["loss_first"] == sk["loss_first"] and sw["loss_last"] == sk["loss_last"]


def test_warm_start_loads_weights_only_with_a_fresh_optimizer_and_schedule(data, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--method", "sequential", "--samples-per-step", str(C),
            "--batch-size", str(BATCH), "--workers", "0", "--threads", "1", "--checkpoint-every", "1", "--log-every", "1",
            "--lr", "1e-3", "--warmup", "4", "-q"]
    assert _killed_at(args, "1:1", out) == ["step-00-2014-2016"]  # one update into step 1
    state = torch.load(out / "checkpoints" / "resume" / "state.pt", weights_only=True)
    assert state["step_index"] == 1
    steps = {int(v["step"]) for v in state["optimizer"]["state"].values()}
    assert steps == {1}  # one update since the warm start: the optimizer did not carry step 0's 10 updates
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    first_of_step1 = next(x for x in lines if x.get("event") == "interval" and x["step_index"] == 1)
    assert math.isclose(first_of_step1["lr"], lr_at(0, 10, 4, 1e-3))  # the warmup starts again
    w0 = _weights(out / "checkpoints" / "step-00-2014-2016")
    w1 = _weights(out / "checkpoints" / "resume")
    from tic_train.tiny import create_model

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


def test_two_gloo_processes_make_the_first_update_of_one(data, tmp_path):
    # one global batch of 64, so the step's checkpoint holds the weights after the first optimizer update
    common = ["--data", str(data), "--method", "sequential", "--samples-per-step", "64", "--batch-size", "64", "--lr", "1e-3",
              "--warmup", "1", "--workers", "0", "--threads", "1", "--steps", "2014-2016", "--log-every", "1", "-q"]
    one = _tic("train", *common, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-2000:]
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", OMP_NUM_THREADS="1")
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
                          "--master-port", str(_free_port()), "-m", "ticdata.cli", "train", *common, "--out", str(tmp_path / "two")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    doc = json.loads((tmp_path / "two" / "run.json").read_text())["steps"]["2014-2016"]
    assert doc["samples"] == 64 and doc["optimizer_steps"] == 1
    from tic_train.tiny import create_model

    w0 = create_model(seed=0)[0].state_dict()  # the random init both runs start from (seed 0)
    w1, w2 = (_weights(tmp_path / run / "checkpoints" / "step-00-2014-2016") for run in ("one", "two"))
    u1, u2 = (torch.cat([(w[k] - w0[k]).flatten() for k in w0]) for w in (w1, w2))  # the first update of each
    # AdamW's first update is about lr x sign(gradient) (1e-3) wherever the gradient is well above eps (1e-6). The two
    # runs' gradients differ only by the order of gloo's float sums, which can flip an update only where the
    # gradient is ~eps: measured here, |u2 - u1| / |u1| ~ 1e-4 and at most 2.4e-5 in an element (a bias with a ~0
    # gradient). A rank training on its half batch alone, or a gradient not averaged, differs by O(|u1|).
    assert float(u1.abs().max()) > 5e-4
    assert float((u2 - u1).norm() / u1.norm()) < 1e-3
    assert float((u2 - u1).abs().max()) < 1e-4
    first = [next(json.loads(x)["loss"] for x in (tmp_path / run / "log.jsonl").read_text().splitlines() if '"interval"' in x)
             for run in ("one", "two")]
    assert math.isclose(*first, rel_tol=1e-5)


def test_checkpoints_load_in_open_clip(data, tmp_path):
    import open_clip

    from tic_train.tiny import register_configs

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


def test_the_shard_index_locates_each_samples_image_and_caption_from_the_headers(tmp_path):
    import io
    import tarfile

    from tic_train.shards import build_index, load_index

    members = [("a.jpg", b"A-image"), ("a.txt", b"a caption"), ("a.json", b"{}"), ("b.PNG", b"B" * 700), ("b.txt", b"b"),
               ("c.txt", b"no image"), ("d.jpg", b"no caption"), ("sub/e.webp", b"E"), ("sub/e.txt", b"e caption")]
    tar = tmp_path / "00000000.tar"
    with tarfile.open(tar, "w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    idx = build_index(tar)
    assert idx.keys.tolist() == ["a", "b", "sub/e"]  # c (no image) and d (no caption) are left out
    raw = tar.read_bytes()
    got = [(raw[o:o + n], raw[p:p + m]) for o, n, p, m in zip(idx.img_off, idx.img_len, idx.txt_off, idx.txt_len)]
    assert got == [(b"A-image", b"a caption"), (b"B" * 700, b"b"), (b"E", b"e caption")]
    cached = load_index(tar, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    again = load_index(tar, tmp_path / "cache")  # read back from the cache
    for f in ("img_off", "img_len", "txt_off", "txt_len", "keys"):
        assert getattr(cached, f).tolist() == getattr(again, f).tolist() == getattr(idx, f).tolist()
    bad = tmp_path / "bad.tar"
    bad.write_bytes(raw[:1500])  # cut inside b.PNG
    with pytest.raises(UserError, match=rf"{re.escape(str(bad))}: cannot read the training shard \(truncated"):
        build_index(bad)


def test_config_file_and_overrides(tmp_path):
    # the defaults a run relies on when the file says nothing (TiC-CLIP's optimizer settings, one step at a time)
    d = load_config(None, {"data": "d", "out": "o"})
    assert (d.method, d.batch_size, d.model, d.lr, d.warmup_first, d.warmup_later, d.weight_decay, d.beta1, d.beta2, d.eps) == \
        ("sequential", 256, "tic-tiny", 5e-4, 50, 0, 0.2, 0.9, 0.98, 1e-6)
    assert (d.samples_per_step, d.accum_freq, d.precision, d.steps, d.checkpoint_every, d.patching_alpha) == (0, 1, "fp32", (), 0, 0.5)
    f = tmp_path / "run.toml"
    f.write_text('data = "d"\nout = "o"\nmethod = "cumulative-exp"\nbatch_size = 32\nlr = 1e-4\nsteps = ["2019"]\n'
                 'grad_checkpointing = true\n')
    cfg = load_config(str(f), {"batch_size": 16, "lwf_weight": None, "warmup": "7"})
    # the file's values, a flag winning over the file, an unset flag (None) leaving the file's value, strings coerced
    assert (cfg.method, cfg.batch_size, cfg.lr, cfg.steps, cfg.grad_checkpointing, cfg.warmup_first, cfg.warmup_later,
            cfg.lwf_weight) == ("cumulative-exp", 16, 1e-4, ("2019",), True, 7, 7, 1.0)
    assert load_config(None, {"data": "d", "out": "o", "steps": "2019, 2020"}).steps == ("2019", "2020")
    f.write_text('data = "d"\nout = "o"\nlearning_rate = 1\n')
    with pytest.raises(UserError, match=rf"{re.escape(str(f))}: unknown key 'learning_rate'; known keys: .*\blr\b"):
        load_config(str(f), {})
    f.write_text('data = "d"\nout = "o"\nbatch_size = "many"\n')
    with pytest.raises(UserError, match=rf"{re.escape(str(f))}: batch_size = 'many' is not a valid int"):
        load_config(str(f), {})
    with pytest.raises(UserError, match=r"--set colour=\.\.\.: unknown key"):
        load_config(None, {"data": "d", "out": "o", "colour": "red"})
    with pytest.raises(UserError, match="--warmup: warmup = 'soon' is not a valid int"):
        load_config(None, {"data": "d", "out": "o", "warmup": "soon"})
    with pytest.raises(UserError, match="method 'fancy'"):
        load_config(None, {"data": "d", "out": "o", "method": "fancy"})
    with pytest.raises(UserError, match="not a multiple"):
        load_config(None, {"data": "d", "out": "o", "batch_size": 10, "accum_freq": 3})
    with pytest.raises(UserError, match="no data folder"):
        load_config(None, {"out": "o"})


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
