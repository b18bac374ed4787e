"""tic's checkpoints and eval sets in CLIP_benchmark, as the README says to run it: `clip_benchmark
eval --model local-dir:CHECKPOINT` on `DIR/eval/<bucket>/<kind>` gives tic eval's numbers, for
retrieval and zero-shot classification, with `--no_amp` (tic scores in float32; CLIP_benchmark's
default autocast runs in bfloat16 on a CPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
CLIP_BENCHMARK = str(Path(sys.executable).parent / "clip_benchmark")


def _cell(run: Path, checkpoint: str, key: str) -> dict:
    matrix = json.loads((run / "eval" / "matrix.json").read_text())
    return json.loads((run / matrix["cells"][f"{checkpoint}/{key}"]).read_text())["metrics"]


@pytest.mark.parametrize("kind,task", [("retrieval", "zeroshot_retrieval"), ("classification", "zeroshot_classification")])
def test_clip_benchmark_gives_tic_evals_numbers_on_a_checkpoint_folder(small_run, tmp_path, kind, task):
    cur, run = small_run
    checkpoint = "step-01-2017-2018"
    out = tmp_path / "result.json"
    r = subprocess.run([CLIP_BENCHMARK, "eval", "--dataset", "wds/tic_2017-2018", "--dataset_root", str(cur / "eval" / "2017-2018" / kind),
                        "--task", task, "--model", f"local-dir:{run / 'checkpoints' / checkpoint}", "--pretrained", "",
                        "--output", str(out), "--batch_size", "8", "--num_workers", "0", "--no_amp"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    theirs = json.loads(out.read_text())["metrics"]
    ours = _cell(run, checkpoint, f"dyn-2017-2018-{kind}")
    shared = sorted(set(theirs) & set(ours))
    assert shared, (theirs, ours)
    if kind == "classification":
        assert {"acc1", "mean_per_class_recall"} <= set(shared)
    for k in shared:
        assert theirs[k] == pytest.approx(ours[k], abs=1e-6), k


def test_a_checkpoint_loads_in_open_clip_as_the_readme_says(small_run):
    import open_clip
    import torch
    from safetensors.torch import load_file

    folder = small_run[1] / "checkpoints" / "step-00-2014-2016"
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    saved = load_file(folder / "open_clip_model.safetensors")
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in saved.items())
    assert tokenizer(["a photo of a snail"]).shape[0] == 1 and callable(preprocess)
