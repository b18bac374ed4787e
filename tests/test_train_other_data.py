"""A rerun of `tic train` resumes only on the samples its finished steps saw: run.json keeps each
bucket's fingerprint (its sample keys and tars' sizes), a data folder whose samples changed since is
refused with the bucket named (a run made before tic kept fingerprints is checked by its sizes), a
mid-step resume state saved on other data is not used, and `tic demo` trains its run again when its
world was made again."""

from __future__ import annotations

import io
import json
import logging
import shutil
import tarfile

import pytest

from ticdata.demo import train_again_if_stale
from ticdata.layout import CuratedFolder
from tic_train import step as step_module
from tic_train.config import load_config
from tic_train.loop import TrainedOnOtherData, run_training
from tic_train.shards import open_buckets

from worldfolder import SMALL_STEPS

pytestmark = pytest.mark.slow


def _cfg(data, out, **kw):
    base = dict(data=str(data), out=str(out), method="sequential", samples_per_step=32, batch_size=16, workers=0,
                warmup=1, progress=False, device="cpu", steps=",".join(SMALL_STEPS))
    return load_config(None, base | kw)


def _drop_last_sample(data, bucket: str) -> None:
    """Rewrite the bucket's last training tar without its last sample (and its sizes.json entry), as
    a download, curation or carve made again would change a bucket."""
    folder = CuratedFolder(data).train_shards.bucket(bucket)
    sizes_path = folder / "sizes.json"
    sizes = json.loads(sizes_path.read_text())
    name = list(sizes)[-1]
    with tarfile.open(folder / name) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]
    last = members[-1][0].name.split(".")[0]
    kept = [(m, b) for m, b in members if m.name.split(".")[0] != last]
    with tarfile.open(folder / name, "w", format=tarfile.USTAR_FORMAT) as tf:
        for m, b in kept:
            tf.addfile(m, io.BytesIO(b))
    sizes[name] -= 1
    sizes_path.write_text(json.dumps(sizes))


@pytest.fixture
def data(small_run, tmp_path):
    """A private copy of small_run's data folder (the tests change it)."""
    dst = tmp_path / "cur"
    shutil.copytree(small_run[0], dst, symlinks=True)
    return dst


def test_the_fingerprint_follows_the_samples_not_the_folder(data, tmp_path):
    def prints(folder):
        return [b.fingerprint for b in open_buckets(CuratedFolder(folder).train_shards, list(SMALL_STEPS), None)]

    before = prints(data)
    assert len(set(before)) == 2 and all(len(p) == 16 for p in before)
    moved = tmp_path / "moved"
    shutil.copytree(data, moved)
    assert prints(moved) == before  # the same samples elsewhere
    _drop_last_sample(data, SMALL_STEPS[1])
    after = prints(data)
    assert after[0] == before[0] and after[1] != before[1]


def test_a_rerun_on_changed_data_is_refused_with_the_bucket_named(data, tmp_path):
    out = tmp_path / "run"
    first = run_training(_cfg(data, out, steps=SMALL_STEPS[0]))
    assert set(first["data_fingerprint"]) == set(first["buckets"])
    # a bucket no finished step drew from may change (Sequential's first step draws only its own)
    _drop_last_sample(data, SMALL_STEPS[1])
    second = run_training(_cfg(data, out))
    assert list(second["steps"]) == list(SMALL_STEPS) and second["steps"][SMALL_STEPS[0]] == first["steps"][SMALL_STEPS[0]]
    assert second["buckets"][SMALL_STEPS[1]] == first["buckets"][SMALL_STEPS[1]] - 1
    assert second["data_fingerprint"][SMALL_STEPS[0]] == first["data_fingerprint"][SMALL_STEPS[0]]
    assert second["data_fingerprint"][SMALL_STEPS[1]] != first["data_fingerprint"][SMALL_STEPS[1]]
    assert json.loads((out / "run.json").read_text())["buckets"] == second["buckets"]
    # a bucket a finished step drew from may not
    size = second["buckets"][SMALL_STEPS[1]]
    _drop_last_sample(data, SMALL_STEPS[1])
    saved = (out / "run.json").read_bytes()
    with pytest.raises(TrainedOnOtherData) as e:
        run_training(_cfg(data, out))
    msg = str(e.value)
    assert "\n" not in msg and str(out) in msg and f"bucket {SMALL_STEPS[1]} (fingerprint differs; " in msg
    assert f"{size:,} samples then, {size - 1:,} now" in msg and "another --out" in msg
    assert (out / "run.json").read_bytes() == saved  # nothing trained, nothing rewritten
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"step-{t:02d}-{n}" for t, n in enumerate(SMALL_STEPS)]


def test_a_run_made_before_fingerprints_is_checked_by_its_sizes(data, tmp_path):
    out = tmp_path / "old"
    run_training(_cfg(data, out, steps=SMALL_STEPS[0]))
    doc = json.loads((out / "run.json").read_text())
    del doc["data_fingerprint"]  # as tic wrote run.json before it kept them
    (out / "run.json").write_text(json.dumps(doc))
    shutil.copy(out / "run.json", tmp_path / "old.json")
    _drop_last_sample(data, SMALL_STEPS[0])
    with pytest.raises(TrainedOnOtherData, match=f"bucket {SMALL_STEPS[0]} \\(samples differs; "):
        run_training(_cfg(data, out))
    # sizes equal: resumed, and the fingerprints are kept from now on
    shutil.copy(tmp_path / "old.json", out / "run.json")
    doc["buckets"][SMALL_STEPS[0]] -= 1
    (out / "run.json").write_text(json.dumps(doc))
    again = run_training(_cfg(data, out))
    assert list(again["steps"]) == list(SMALL_STEPS) and set(again["data_fingerprint"]) == set(doc["buckets"])


class _Killed(Exception):
    pass


def test_a_resume_state_saved_on_other_data_is_not_used(data, tmp_path, monkeypatch, caplog):
    out = tmp_path / "run"
    save = step_module.save_checkpoint

    def save_then_die(folder, model, arch, info, state=None):
        save(folder, model, arch, info, state)
        if state is not None:
            raise _Killed  # killed right after the first resume checkpoint of step 0

    monkeypatch.setattr(step_module, "save_checkpoint", save_then_die)
    with pytest.raises(_Killed):
        run_training(_cfg(data, out, steps=SMALL_STEPS[0], samples_per_step=64, checkpoint_every=1))
    monkeypatch.setattr(step_module, "save_checkpoint", save)
    assert (out / "checkpoints" / "resume" / "state.pt").exists() and not (out / "run.json").exists()
    _drop_last_sample(data, SMALL_STEPS[0])
    monkeypatch.setattr(logging.getLogger("tic_train"), "propagate", True)
    caplog.set_level(logging.INFO, logger="tic_train")
    doc = run_training(_cfg(data, out, steps=SMALL_STEPS[0], samples_per_step=64, checkpoint_every=1))
    assert "was saved on other data; the step starts from its beginning" in caplog.text
    assert "resuming at batch" not in caplog.text
    assert doc["steps"][SMALL_STEPS[0]]["samples"] == 64


def test_the_demo_trains_its_run_again_on_a_world_made_again(data, tmp_path):
    out = tmp_path / "runs" / "sequential"
    first = train_again_if_stale(_cfg(data, out))
    assert train_again_if_stale(_cfg(data, out)) == first  # nothing changed: resumed, nothing trained
    _drop_last_sample(data, SMALL_STEPS[1])
    again = train_again_if_stale(_cfg(data, out))
    assert list(again["steps"]) == list(SMALL_STEPS)
    assert again["data_fingerprint"][SMALL_STEPS[1]] != first["data_fingerprint"][SMALL_STEPS[1]]
    assert again["buckets"][SMALL_STEPS[1]] == first["buckets"][SMALL_STEPS[1]] - 1
    assert again["steps"][SMALL_STEPS[0]]["seconds"] != first["steps"][SMALL_STEPS[0]]["seconds"]  # trained again
