"""The paper's training protocol (issue 13): the shipped presets carry ml-tic-clip's scales, later
steps warm up separately from the first, and LwF without its distillation term is exactly the
method whose data it uses."""

from __future__ import annotations

import json

import pytest

from ticdata.errors import UserError
from tic_train.config import load_config, preset_names
from tic_train.loop import run_training

from worldfolder import SMALL_STEPS

# ml-tic-clip datacomp.patch (scale_configs: batch_size, train_num_samples, model, learning_rate,
# warmup) and scripts/run_medium_*.sh (--warmup 0 after the first step); xlarge's later warmup is its
# params/basic-cumulative/2017.yaml
PAPER = {
    "tic-datacomp/medium": (4096, 4096 * 4500, "ViT-B-32", 5e-4, 500, 0),
    "tic-datacomp/large": (8192, 8192 * 22500, "ViT-B-16", 5e-4, 500, 0),
    "tic-datacomp/xlarge": (90112, 90112 * 20500, "ViT-B-16", 1e-3, 10000, 2000),
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_presets_are_the_papers_scales(name):
    cfg = load_config(None, {"data": "d", "out": "o"}, preset=name)
    batch, samples, model, lr, first, later = PAPER[name]
    assert (cfg.batch_size, cfg.samples_per_step, cfg.model, cfg.lr, cfg.warmup_first, cfg.warmup_later) == \
        (batch, samples, model, lr, first, later)
    assert (cfg.beta2, cfg.eps, cfg.weight_decay) == (0.98, 1e-6, 0.2)
    assert cfg.samples_per_step == {"tic-datacomp/medium": 18_432_000, "tic-datacomp/large": 184_320_000,
                                    "tic-datacomp/xlarge": 1_847_296_000}[name]


def test_flags_override_a_preset_and_unknown_presets_are_named():
    cfg = load_config(None, {"data": "d", "out": "o", "lr": "1e-4", "warmup": "3"}, preset="tic-datacomp/medium")
    assert cfg.lr == 1e-4 and cfg.warmup_first == cfg.warmup_later == 3 and cfg.batch_size == 4096
    assert set(preset_names()) >= set(PAPER) | {"tic-yfcc/medium", "tic-redcaps/medium"}
    with pytest.raises(UserError, match="no such preset"):
        load_config(None, {"data": "d", "out": "o"}, preset="../../etc/passwd")


def test_defaults_follow_the_paper():
    cfg = load_config(None, {"data": "d", "out": "o"})
    assert cfg.lwf_data == "sequential" and cfg.buffer_factor == 2.0 and cfg.warmup_later == 0


def _train(data, out, **kw):
    base = dict(data=str(data), out=str(out), samples_per_step=32, batch_size=8, workers=0, threads=1, log_every=1,
                steps=",".join(SMALL_STEPS), progress=False, device="cpu", deterministic=True, lr=1e-3)
    return run_training(load_config(None, base | kw))


def _first_lr(run, step):
    for line in (run / "log.jsonl").read_text().splitlines():
        e = json.loads(line)
        if e.get("event") == "interval" and e.get("step") == step and e.get("batch") == 1:
            return e["lr"]
    raise AssertionError(f"no first interval of {step} in {run}/log.jsonl")


@pytest.mark.slow
def test_later_steps_warm_up_separately(small_run, tmp_path):
    data = small_run[0]
    _train(data, tmp_path / "seq", method="sequential", warmup_first=4, warmup_later=0)
    assert _first_lr(tmp_path / "seq", SMALL_STEPS[0]) == pytest.approx(1e-3 / 4)  # linear warmup from lr / 4
    assert _first_lr(tmp_path / "seq", SMALL_STEPS[1]) == pytest.approx(1e-3)  # warm start: no warmup
    _train(data, tmp_path / "restart", method="restart", warmup_first=4, warmup_later=0)
    assert _first_lr(tmp_path / "restart", SMALL_STEPS[1]) == pytest.approx(1e-3 / 4)  # from scratch: warmup_first


@pytest.mark.slow
@pytest.mark.parametrize("lwf_data, twin", [("sequential", "sequential"), ("cumulative-all", "cumulative-all")])
def test_lwf_without_distillation_is_its_data_rule_bit_for_bit(small_run, tmp_path, lwf_data, twin):
    from safetensors.torch import load_file

    data = small_run[0]
    _train(data, tmp_path / "lwf", method="lwf", lwf_weight=0.0, lwf_data=lwf_data)
    _train(data, tmp_path / "twin", method=twin)
    step = f"step-01-{SMALL_STEPS[1]}"
    a = load_file(str(tmp_path / "lwf" / "checkpoints" / step / "open_clip_model.safetensors"))
    b = load_file(str(tmp_path / "twin" / "checkpoints" / step / "open_clip_model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_the_report_gives_gpu_hours_only_when_a_gpu_ran():
    from tic_train.report import metrics_table

    def matrix(method, gpu_hours=None):
        compute = {"samples": 1000, "macs": 2e12} | ({"gpu_hours": gpu_hours} if gpu_hours is not None else {})
        metrics = {"in_domain": 0.5, "backward": 0.4, "forward": 0.3, "final_average": 0.45}
        return {"method": method, "compute": compute, "columns": [{"step": "a"}, {"step": "b"}],
                "tasks": {"retrieval": {"metrics": metrics}}, "static_average": [None]}

    cpu = metrics_table([matrix("sequential"), matrix("oracle")])
    assert "GPU-h" not in cpu
    gpu = metrics_table([matrix("sequential", 1.25), matrix("oracle")]).splitlines()
    head = [c.strip() for c in gpu[0].strip("|").split("|")]
    col = head.index("GPU-h (run)")
    assert [c.strip() for c in gpu[2].strip("|").split("|")][col] == "1.25"
    assert [c.strip() for c in gpu[3].strip("|").split("|")][col] == "-"


@pytest.mark.slow
def test_a_cpu_run_records_its_device_and_no_gpu_hours(small_run):
    import json

    doc = json.loads((small_run[1] / "run.json").read_text())
    for s in doc["steps"].values():
        assert s["device"] == "cpu" and s["processes"] == 1 and "gpu_hours" not in s


def test_the_datacomp_task_table_has_its_38_tasks_and_their_metrics():
    from tic_train.static_tasks import datacomp_tasks, metric_of, task_of

    tasks = datacomp_tasks()
    assert len(tasks) == 38
    assert {k for k, t in tasks.items() if t["metric"] == "mean_per_class_recall"} == \
        {"vtab/caltech101", "fgvc_aircraft", "vtab/flowers", "vtab/pets"}
    assert metric_of("vtab-pets") == "mean_per_class_recall" and metric_of("imagenet1k") == "acc1"
    assert metric_of("retrieval/flickr30k") == "retrieval_recall@1" and metric_of("my-own-set") is None
    assert task_of("wds_fairness-geode_test") == "fairness/geode"


@pytest.mark.slow
def test_static_tasks_are_scored_with_datacomps_metric(small_run, tmp_path):
    """Two DataComp task folders (copies of an eval set) under --static-root, and one whose metric tic
    cannot compute: pets reads mean per-class recall, CIFAR-10 top-1, GeoDE is listed as skipped."""
    import json
    import shutil

    from tic_train.evaluate import evaluate_run
    from worldfolder import copy_small_run

    cur, run = copy_small_run(small_run, tmp_path / "copy")
    root = tmp_path / "datacomp"
    src = cur / "eval" / SMALL_STEPS[0] / "classification"
    for folder in ("wds_vtab-pets_test", "wds_cifar10_test", "wds_fairness-geode_test"):
        shutil.copytree(src, root / folder)
    m = evaluate_run(run, device="cpu", progress=False, static_root=root)
    assert set(m["static"]) == {"vtab-pets", "cifar10"}
    assert m["static"]["vtab-pets"]["metric"] == "mean_per_class_recall" and m["static"]["cifar10"]["metric"] == "acc1"
    assert "fairness/geode" in m["static_skipped"]
    for name, s in m["static"].items():
        for ckpt, v in zip(sorted(m["rows"], key=lambda r: r["step"]), s["by_step"]):
            cell = json.loads((run / m["cells"][f"{ckpt['checkpoint']}/static-{name}"]).read_text())
            assert v == cell["metrics"][s["metric"]]
    last = [s["by_step"][-1] for s in m["static"].values()]
    assert m["static_average"][-1] == pytest.approx(sum(last) / len(last))


def test_transfer_metrics_with_year_columns_by_hand():
    from tic_train.transfer import in_domain_by_step, transfer_metrics_by_column

    # two steps: step 0 holds years 2014 and 2015, step 1 holds 2016
    E = [[0.2, 0.4, 0.1], [0.3, 0.5, 0.9]]
    m = transfer_metrics_by_column(E, [0, 0, 1])
    assert m["in_domain"] == pytest.approx((0.2 + 0.4 + 0.9) / 3)
    assert m["backward"] == pytest.approx((0.3 + 0.5) / 2) and m["forward"] == pytest.approx(0.1)
    assert m["final_average"] == pytest.approx((0.3 + 0.5 + 0.9) / 3)
    assert in_domain_by_step(E, [0, 0, 1]) == pytest.approx([0.3, 0.9])


@pytest.mark.slow
def test_year_columns_cut_each_steps_sets_by_year(small_run, tmp_path):
    """--columns year: one column per (step, year) of the held-out rows; a one-year step's column is
    its step column exactly; the report draws it."""
    import json

    import polars as pl

    from tic_train.evaluate import evaluate_run
    from tic_train.report import build_report
    from worldfolder import copy_small_run

    cur, run = copy_small_run(small_run, tmp_path / "copy")
    step = json.loads((run / "eval" / "matrix.json").read_text())
    m = evaluate_run(run, device="cpu", progress=False, columns="year")
    man = pl.read_parquet(cur / "manifest" / "*" / "*.parquet", hive_partitioning=True)
    held = man.filter(pl.col("split").is_in(["retrieval", "classification"]))
    assert [int(c["label"]) for c in m["columns"]] == sorted(set(held["year"].to_list()))
    assert m["column_mode"] == "year" and len(m["tasks"]["retrieval"]["E"]) == len(step["columns"])
    col = next(j for j, c in enumerate(m["columns"]) if c["label"] == "2019")
    stp = next(j for j, c in enumerate(step["columns"]) if c["step"] == "2019")
    for task in m["tasks"]:
        assert [row[col] for row in m["tasks"][task]["E"]] == [row[stp] for row in step["tasks"][task]["E"]]
    md = build_report([run], tmp_path / "rep").read_text()
    assert "calendar years" in md


def test_uids_sizes_reports_the_official_maps_per_year(tmp_path, capsys):
    import pickle

    from ticdata.cli import main

    uid = iter(f"{i:032x}" for i in range(1, 100))
    (tmp_path / "ret.pkl").write_bytes(pickle.dumps({2016: [next(uid) for _ in range(3)], "2017": [next(uid) for _ in range(5)]}))
    (tmp_path / "dcn.pkl").write_bytes(pickle.dumps({2017: {"n01": [next(uid) for _ in range(2)], "n02": [next(uid) for _ in range(4)],
                                                            "n03": [next(uid) for _ in range(3)]}}))
    assert main(["uids", "sizes", str(tmp_path / "ret.pkl"), str(tmp_path / "dcn.pkl")]) == 0
    out = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["2016", "3"] in out and ["2017", "5"] in out and ["total", "8"] in out
    assert ["2017", "9", "3", "2", "3", "4"] in out and ["total", "9"] in out  # 9 uids, 3 classes, min / median / max
