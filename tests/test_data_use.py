"""Each training step records the unique samples it used and its epochs over each bucket (a fixed
budget repeats a shrunken bucket more often), and warns when a bucket is repeated more than
warn_epochs times: by hand arithmetic, in a real tiny run (run.json, log, the printed table), on the
command line, and on the rerun of a run made before the setting existed."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from ticdata.cli import build_parser, main
from ticdata.errors import UserError
from tic_train.config import load_config
from tic_train.data_use import WARN_EPOCHS, available, data_use, format_data_use
from tic_train.loop import format_run_table, run_training

from refusals import one_line
from worldfolder import SMALL_STEPS


def test_unique_and_epochs_by_hand():
    # budget 20,000: 17,500 draws from a bucket of 2,500, 300 from a replay share of 1,000 of a bucket of 5,000, ...
    names, sizes, limits = ["a", "b", "c", "d"], [2_500, 5_000, 9_000, 7], [None, 1_000, None, None]
    avail = available(sizes, limits)
    assert avail == [2_500, 1_000, 9_000, 7]
    rec = data_use("2020", names, avail, sizes, [17_500, 300, 2_200, 0])
    assert rec["draws"] == 20_000 and rec["unique"] == 2_500 + 300 + 2_200
    assert rec["buckets"] == {"a": {"draws": 17_500, "available": 2_500, "size": 2_500, "unique": 2_500, "epochs": 7.0},
                              "b": {"draws": 300, "available": 1_000, "size": 5_000, "unique": 300, "epochs": 0.3},
                              "c": {"draws": 2_200, "available": 9_000, "size": 9_000, "unique": 2_200, "epochs": 0.2444}}
    assert "d" not in rec["buckets"]  # no draws: not listed
    assert rec["max_epochs"] == 7.0 and rec["warn_epochs"] == WARN_EPOCHS == 4.0
    one = data_use("2020", ["a"], [2_500], [2_500], [20_000])  # the whole budget on 2,500 samples: 8 epochs
    assert (one["unique"], one["draws"], one["max_epochs"]) == (2_500, 20_000, 8.0)
    assert format_data_use(one) == "2,500 unique samples in 20,000 draws; max 8.00 epochs (bucket a: 20,000 draws over 2,500 available)"


def test_the_warning_appears_iff_a_bucket_passes_the_threshold():
    def rec(thr: float) -> dict:  # 6,000 draws from a replay share of 1,000 (bucket of 5,000), 4,000 from 4,000
        return data_use("2019", ["old", "new"], [1_000, 4_000], [5_000, 4_000], [6_000, 4_000], thr)

    assert rec(6.0)["warning"] is None  # 6 epochs, not above 6
    w = rec(5.99)["warning"]
    assert w == ("step 2019: bucket old is repeated 6.0 epochs (6,000 draws over 1,000 available samples, its replay share "
                 "of 5,000), above warn_epochs 5.99; lower --samples-per-step, add data, or raise --warn-epochs")
    assert rec(4.0)["warning"] == w.replace("5.99", "4")
    both = rec(0.5)["warning"]  # the most repeated bucket named, the others counted
    assert both.startswith("step 2019: bucket old is repeated 6.0 epochs") and "1 more bucket(s) above it" in both
    assert "\n" not in both
    assert data_use("2019", ["b"], [10], [10], [0])["warning"] is None and data_use("2019", ["b"], [10], [10], [0])["max_epochs"] == 0.0


def _train(data, out, **kw):
    base = {"data": str(data), "out": str(out), "samples_per_step": 96, "batch_size": 32, "workers": 0, "threads": 1,
            "log_every": 1, "steps": ",".join(SMALL_STEPS), "progress": False, "device": "cpu", "lr": 1e-3, "warmup": 1}
    return run_training(load_config(None, base | kw))


def _check_record(doc: dict, name: str, warn: float) -> dict:
    """data_use of step `name` against run.json's own draws and bucket sizes (a method without limits)."""
    step = doc["steps"][name]
    use = step["data_use"]
    sizes = doc["buckets"]
    draws = dict(zip(sizes, step["per_bucket"]))
    assert use["draws"] == step["samples"] == step["budget"] == sum(draws.values())
    assert use["unique"] == sum(min(n, sizes[b]) for b, n in draws.items())
    assert set(use["buckets"]) == {b for b, n in draws.items() if n}
    for b, u in use["buckets"].items():
        assert (u["draws"], u["available"], u["size"], u["unique"]) == (draws[b], sizes[b], sizes[b], min(draws[b], sizes[b]))
        assert u["epochs"] == round(draws[b] / sizes[b], 4)
    assert use["max_epochs"] == max(u["epochs"] for u in use["buckets"].values()) and use["warn_epochs"] == warn
    return use


@pytest.mark.slow
def test_a_real_run_records_its_data_use_and_warns_on_repeats(small_run, tmp_path, caplog, monkeypatch):
    data = small_run[0]  # ~30 training samples per bucket: 96 draws repeat a bucket about 3 times
    monkeypatch.setattr(logging.getLogger("tic_train"), "propagate", True)  # a main() earlier may have set it off
    caplog.set_level(logging.INFO, logger="tic_train")
    doc = _train(data, tmp_path / "loud", method="cumulative-all", warn_epochs=1.0)
    assert json.loads((tmp_path / "loud" / "run.json").read_text()) == json.loads(json.dumps(doc))
    for name in SMALL_STEPS:
        use = _check_record(doc, name, 1.0)
        assert use["max_epochs"] > 1.0 and use["warning"].startswith(f"step {name}: bucket ")
        assert use["warning"] in caplog.text and "--warn-epochs" in use["warning"]
        assert f"step {name} expects (weights x budget) " in caplog.text
    assert len(doc["steps"][SMALL_STEPS[1]]["data_use"]["buckets"]) == 2  # cumulative-all: both buckets
    step_lines = [json.loads(x) for x in (tmp_path / "loud" / "log.jsonl").read_text().splitlines() if '"step"' in x]
    assert [x["data_use"] for x in step_lines if x.get("event") == "step"] == [doc["steps"][n]["data_use"] for n in SMALL_STEPS]
    table = format_run_table(doc)
    assert "unique" in table and "max epochs" in table
    assert [ln for ln in table.splitlines() if ln.startswith("warning: ")] == \
        [f"warning: {doc['steps'][n]['data_use']['warning']}" for n in SMALL_STEPS]
    print("data_use of a real run:", json.dumps(doc["steps"][SMALL_STEPS[1]]["data_use"]))

    caplog.clear()
    quiet = _train(data, tmp_path / "quiet", method="sequential", steps=SMALL_STEPS[0], warn_epochs=100.0)
    use = _check_record(quiet, SMALL_STEPS[0], 100.0)
    assert use["warning"] is None and not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [ln for ln in format_run_table(quiet).splitlines() if ln.startswith("warning")]


@pytest.mark.slow
def test_a_run_made_before_warn_epochs_existed_still_resumes(small_run, tmp_path):
    data, out = small_run[0], tmp_path / "old"
    kw = {"method": "sequential", "samples_per_step": 32, "batch_size": 32}
    _train(data, out, **kw)
    # as if made before warn_epochs and data_use existed, and stopped after its first step
    doc = json.loads((out / "run.json").read_text())
    for key in ("warn_epochs", "buffer_factor"):  # settings the old run's config did not know yet
        del doc["config"][key]
    del doc["steps"][SMALL_STEPS[0]]["data_use"]
    del doc["steps"][SMALL_STEPS[1]]
    (out / "run.json").write_text(json.dumps(doc))
    shutil.rmtree(out / "checkpoints" / f"step-01-{SMALL_STEPS[1]}")
    assert format_run_table(doc).splitlines()[1].split()[-2:] == ["-", "-"]  # an old step: no unique, no epochs
    again = _train(data, out, warn_epochs=2.5, **kw)  # resumes: the missing step is trained, the first kept
    assert list(again["steps"]) == list(SMALL_STEPS) and again["config"]["warn_epochs"] == 2.5
    assert "data_use" not in again["steps"][SMALL_STEPS[0]] and "data_use" in again["steps"][SMALL_STEPS[1]]
    # a missing key counts as its default: another value than the default is still another config
    doc = json.loads((out / "run.json").read_text())
    del doc["config"]["buffer_factor"]
    (out / "run.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match="differs in buffer_factor"):
        _train(data, out, buffer_factor=3.0, **kw)


def test_warn_epochs_flag_and_config(tmp_path, capsys):
    assert load_config(None, {"data": "d", "out": "o"}).warn_epochs == 4.0
    assert load_config(None, {"data": "d", "out": "o", "warn_epochs": "2.5"}).warn_epochs == 2.5
    (tmp_path / "run.toml").write_text("warn_epochs = 8\n")
    assert load_config(str(tmp_path / "run.toml"), {"data": "d", "out": "o"}).warn_epochs == 8.0
    assert load_config(None, {"data": "d", "out": "o"}).to_json()["warn_epochs"] == 4.0
    with pytest.raises(UserError, match=r"warn_epochs = -1.0: must be a finite number, not negative"):
        load_config(None, {"data": "d", "out": "o", "warn_epochs": -1})
    (tmp_path / "bad.toml").write_text('warn_epochs = "often"\n')
    with pytest.raises(UserError, match=r"warn_epochs = 'often' is not a valid float"):
        load_config(str(tmp_path / "bad.toml"), {"data": "d", "out": "o"})
    out = tmp_path / "run"
    common = ["-q", "train", "--data", str(tmp_path / "nodata"), "--out", str(out), "--method", "sequential"]
    one_line(capsys, main([*common, "--warn-epochs", "-1"]), "--warn-epochs", "-1.0 is not a finite number >= 0")
    one_line(capsys, main([*common, "--warn-epochs", "x"]), "--warn-epochs", "'x' is not a finite number >= 0")
    one_line(capsys, main([*common, "--warn-epochs", "inf"]), "--warn-epochs")
    one_line(capsys, main([*common, "--set", "warn_epochs=-2"]), "warn_epochs = -2.0", "not negative")
    assert build_parser().parse_args(["train", "--warn-epochs", "2.5"]).warn_epochs == 2.5
    # a good value parses and the refusal that follows is the data folder's, not the flag's
    one_line(capsys, main([*common, "--warn-epochs", "2.5"]), "no such folder")
    assert not out.exists()
