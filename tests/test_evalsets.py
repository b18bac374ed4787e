"""`tic evalsets`: held-out sets per bucket that training never sees, decontamination by image hash,
perceptual hash and pair, TiC's official uid maps imported safely, CLIP_benchmark reading our sets."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from ticdata.curate import CurateConfig, curate
from ticdata.download import DownloadConfig, download
from ticdata.errors import UserError
from ticdata.evalsets import EvalConfig, build_evalsets, format_evalsets_table
from ticdata.evalsets_tasks import FlagSpec, flag_training
from ticdata.executor import InlineExecutor, RayExecutor, run_stage
from ticdata.fetch import FetchPolicy
from ticdata.manifest import scan_manifest
from ticdata.phash import phash_bytes
from ticdata.recover import uid_of
from ticdata.reshard import selection_from_manifest
from ticdata.reshard_lookup import build_lookup
from ticdata.wds import iter_samples
from ticdata.serve import ImageServer
from ticdata.synth.world import caption, image_url, world
from ticdata.tic_pickles import load_datacompnet, load_retrieval
from ticdata.uidexport import export_uids

from conftest import REPO

SNAP = {2017: "crawl-data/CC-MAIN-2017-04/segments/1/wat/a.warc.wat.gz", 2019: "crawl-data/CC-MAIN-2019-51/segments/1/wat/b.warc.wat.gz"}
CONCEPTS = range(6)
INSTANCES = range(20)
# TiC's retrieval uids in our tests: these world pairs of 2017, planted again in 2019 as copies
PLANTED = [(2017, 0, 3), (2017, 2, 7), (2017, 4, 11)]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    with ImageServer() as s:
        yield s


def _row(url, text, year, concept, uid=None):
    return {"uid": uid or uid_of(url, text), "url": url, "text": text, "source": SNAP[year], "concept": world(0).concepts[concept].name}


def _pool(base: str, plant: bool, failing: int = 0) -> list[dict]:
    rows = [_row(image_url(base, 0, y, c, i), caption(0, y, c, i), y, c) for y in SNAP for c in CONCEPTS for i in INSTANCES]
    rows += [_row(image_url(base, 0, y, 0, 900 + i, kind="404"), f"a picture that is gone {y} {i}", y, 0) for y in SNAP for i in range(failing)]
    if plant:
        for y, c, i in PLANTED:
            url = image_url(base, 0, y, c, i)
            rows.append(_row(url, f"the same picture, reposted {c} {i}", 2019, c))  # same_image
            rows.append(_row(image_url(base, 0, y, c, i, size=100), f"a larger copy {c} {i}", 2019, c))  # near_duplicate (resized, re-encoded)
            rows.append(_row(url, caption(0, y, c, i), 2019, c, uid=hashlib.md5(url.encode()).hexdigest()))  # same_pair, another uid
    return rows


def _downloaded(tmp_path, server, plant=False, failing=0):
    pool = tmp_path / "pool.parquet"
    pl.DataFrame(_pool(server.url, plant, failing)).write_parquet(pool)
    out = tmp_path / "cur"
    curate(CurateConfig(inputs=(str(pool),), out=out, progress=False), InlineExecutor())
    download(DownloadConfig(dir=out, image_size=64, samples_per_shard=50, threads=8, timeout=3.0, progress=False,
                            policy=FetchPolicy(allow_private_hosts=True)), InlineExecutor())
    return out


def _tar_images(folder):
    """uid -> (sha256, pHash) of every sample in the tars under folder."""
    out = {}
    for tar in sorted(folder.rglob("*.tar")):
        for key, members in iter_samples(str(tar), [0]):
            img = next(d for e, d in members if e == "jpg")
            out[key] = (hashlib.sha256(img).hexdigest(), phash_bytes(img))
    return out


def _eval_uids(out):
    ev = scan_manifest(out).filter(pl.col("split").is_in(["retrieval", "classification"])).collect()
    return set(ev["uid"])


def test_held_out_rows_never_reach_training(tmp_path, server, ray_local):
    out = _downloaded(tmp_path, server, failing=3)
    with RayExecutor() as ex:
        doc = build_evalsets(EvalConfig(dir=out, retrieval=10, per_class=3, samples_per_shard=16, progress=False), ex)
    assert doc["vocabulary"]["source"] == "column:concept"
    for b in ("2017", "2019"):
        v = doc["buckets"][b]
        assert v["retrieval"] == 10 and 0 < v["classification"] <= 3 * len(CONCEPTS)
        led = v["ledger"]
        assert led["train_in"] == led["train_out"] + led["held_out"] + led["excluded"] == v["images"]
    man = scan_manifest(out).collect()
    assert set(man["split"]) <= {"train", "retrieval", "classification", "excluded", "not_downloaded"}
    # rows without an image have their own split (here: the 404s), so split == "train" is exactly the trainable rows
    gone = man.filter(pl.col("status") != "success")
    assert gone.height == 6 and set(gone["split"]) == {"not_downloaded"}
    assert doc["manifest_splits"]["not_downloaded"] == 6
    assert man.filter(pl.col("split") == "not_downloaded").height == 6
    evals = _eval_uids(out)
    assert len(evals) == sum(v["retrieval"] + v["classification"] for v in doc["buckets"].values())
    # the eval sets' tars hold exactly the held-out rows; classification rows carry their concept's label
    in_eval_tars = _tar_images(out / "eval")
    assert set(in_eval_tars) == evals
    cls = pl.concat([pl.read_parquet(out / "eval" / b / "classification" / "samples.parquet") for b in ("2017", "2019")])
    concept = dict(zip(man["uid"], man["concept"]))
    assert all(concept[u] == c for u, c in zip(cls["uid"], cls["class"]))
    # no eval uid, image hash or near-identical image in any training shard
    train = _tar_images(out / "train" / "shards")
    assert train and not (set(train) & evals)
    eval_sha = {s for s, _ in in_eval_tars.values()}
    assert not ({s for s, _ in train.values()} & eval_sha)
    ep = np.array([p for _, p in in_eval_tars.values()], dtype=np.uint64)
    tp = np.array([p for _, p in train.values()], dtype=np.uint64)
    assert np.bitwise_count(tp[:, None] ^ ep[None, :]).min() > 4
    assert set(train) == set(man.filter((pl.col("split") == "train") & (pl.col("status") == "success"))["uid"])
    assert set(train) == set(man.filter(pl.col("split") == "train")["uid"])
    # nor in any training selection made from the manifest
    state = tmp_path / "selection"
    build_lookup(selection_from_manifest(out, "train"), state,
                 lambda name, tasks: run_stage(InlineExecutor(), name, tasks, state / "done", progress=False))
    selected = {f"{h:016x}{l:016x}" for f in (state / "lookup").glob("range-*-hi.npy")
                for h, l in zip(np.load(f), np.load(str(f).replace("-hi.npy", "-lo.npy")))}
    assert selected and not (selected & evals)
    export_uids(out, tmp_path / "uids")
    exported = {f"{h:016x}{l:016x}" for f in (tmp_path / "uids").glob("*.npy") for h, l in np.load(f)}
    assert exported and not (exported & evals)
    # CLIP_benchmark's layout
    r = out / "eval" / "2019" / "retrieval"
    assert (r / "dataset_type.txt").read_text().strip() == "retrieval"
    assert int((r / "test" / "nshards.txt").read_text()) == len(list((r / "test").glob("*.tar"))) == 1
    c = out / "eval" / "2019" / "classification"
    assert len((c / "classnames.txt").read_text().splitlines()) == doc["vocabulary"]["classes"]
    assert all("{c}" in t for t in (c / "zeroshot_classification_templates.txt").read_text().splitlines())
    # a rerun with the same parameters does nothing; other parameters need --overwrite
    before = (out / "eval" / "evalsets.json").read_bytes()
    assert build_evalsets(EvalConfig(dir=out, retrieval=10, per_class=3, samples_per_shard=16, progress=False), InlineExecutor())["seconds"] == doc["seconds"]
    assert (out / "eval" / "evalsets.json").read_bytes() == before
    with pytest.raises(UserError, match="--overwrite"):
        build_evalsets(EvalConfig(dir=out, retrieval=10, per_class=3, seed=1, progress=False), InlineExecutor())
    # the selection is reproducible: the same seed on a fresh copy picks the same rows; another seed others
    doc2 = build_evalsets(EvalConfig(dir=out, retrieval=10, per_class=3, seed=1, samples_per_shard=16, overwrite=True, progress=False), InlineExecutor())
    assert doc2["buckets"]["2017"]["retrieval"] == 10
    assert _eval_uids(out) != evals
    build_evalsets(EvalConfig(dir=out, retrieval=10, per_class=3, seed=0, samples_per_shard=16, overwrite=True, progress=False), InlineExecutor())
    assert _eval_uids(out) == evals


def test_copies_of_imported_tic_eval_images_are_removed_from_training(tmp_path, server):
    out = _downloaded(tmp_path, server, plant=True)
    man = scan_manifest(out).collect()
    ret_uids = [uid_of(image_url(server.url, 0, y, c, i), caption(0, y, c, i)) for y, c, i in PLANTED]
    (tmp_path / "ret.pkl").write_bytes(pickle.dumps({2017: ret_uids}))
    # DataCompNet: {year: {wordnet id: [uid]}} for two 2019 images of concept 1 (snail)
    from ticdata.classes import imagenet

    vocab = imagenet()
    snail = vocab.wnids[vocab.names.index(world(0).concepts[1].name)]
    dcn = [uid_of(image_url(server.url, 0, 2019, 1, i), caption(0, 2019, 1, i)) for i in (0, 1)]
    (tmp_path / "dcn.pkl").write_bytes(pickle.dumps({"2019": {snail: dcn}}))
    doc = build_evalsets(EvalConfig(dir=out, classes="imagenet", tic_retrieval=tmp_path / "ret.pkl", tic_datacompnet=tmp_path / "dcn.pkl",
                                    progress=False), InlineExecutor())
    assert doc["imports"]["tic_retrieval"]["found"] == 3 and doc["imports"]["tic_datacompnet"]["found"] == 2
    man = scan_manifest(out).collect()
    assert man.schema["excluded_by"] == pl.String and man.schema["excluded_distance"] == pl.Int32
    split = dict(zip(man["uid"], man["split"]))
    assert [split[u] for u in ret_uids] == ["retrieval"] * 3 and [split[u] for u in dcn] == ["classification"] * 2
    cls = pl.read_parquet(out / "eval" / "2019" / "classification" / "samples.parquet")
    assert set(cls["class"]) == {"snail"}
    by_text = {t: r for t, r in zip(man["text"], man.iter_rows(named=True))}
    images = _tar_images(out / "shards")
    for (y, c, i), src in zip(PLANTED, ret_uids):
        same = by_text[f"the same picture, reposted {c} {i}"]
        near = by_text[f"a larger copy {c} {i}"]
        pair = man.filter((pl.col("uid") == hashlib.md5(image_url(server.url, 0, y, c, i).encode()).hexdigest())).row(0, named=True)
        assert (same["split"], same["exclude_reason"], same["excluded_by"], same["excluded_distance"]) == ("excluded", "same_image", src, None)
        assert (near["split"], near["exclude_reason"]) == ("excluded", "near_duplicate")
        assert near["excluded_by"] == src and 0 <= near["excluded_distance"] <= 4
        # the distance is the pHash distance between the two stored images, counted here from the tars
        assert near["excluded_distance"] == int(np.bitwise_count(np.uint64(images[near["uid"]][1]) ^ np.uint64(images[src][1])))
        assert near["sha256"] != same["sha256"]  # really re-encoded, not a byte copy
        assert pair["split"] == "excluded" and pair["exclude_reason"] in ("same_image", "same_pair") and pair["excluded_distance"] is None
    train = _tar_images(out / "train" / "shards")
    assert not (set(train) & {r["uid"] for r in man.filter(pl.col("split") != "train").iter_rows(named=True)})
    counts = doc["buckets"]["2019"]["excluded"]
    assert counts["same_image"] >= 6 and counts["near_duplicate"] >= 3


def test_same_pair_under_another_uid_is_flagged(tmp_path):
    ev = pl.DataFrame({"uid": ["a" * 32], "url": ["http://x/1.jpg"], "text": ["a cat"], "sha256": ["0"], "phash": [1]},
                      schema_overrides={"phash": pl.UInt64})
    ev.write_parquet(tmp_path / "ev.parquet")
    pl.DataFrame({"uid": ["a" * 32, "b" * 32, "c" * 32], "url": ["http://x/1.jpg"] * 3, "text": ["a cat", "a cat", "a dog"]}).write_parquet(tmp_path / "m.parquet")
    flag_training(FlagSpec("pairs", str(tmp_path / "m.parquet"), str(tmp_path / "ev.parquet"), str(tmp_path / "f.parquet"), 4))
    f = pl.read_parquet(tmp_path / "f.parquet")
    assert f.rows() == [("b" * 32, "same_pair", "a" * 32, None)]
    assert f.schema["excluded_distance"] == pl.Int32


class _Boom:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['TIC_PICKLE_CANARY']}",))


def test_a_malicious_pickle_is_refused_without_running_it(tmp_path, monkeypatch):
    canary = tmp_path / "ran"
    monkeypatch.setenv("TIC_PICKLE_CANARY", str(canary))
    bad = tmp_path / "tic-datacomp_retrieval_evals_year2uids.pkl"
    bad.write_bytes(pickle.dumps({2017: [_Boom()]}))
    with pytest.raises(UserError, match=r"ret.*refused.*posix.system|refused.*system"):
        load_retrieval(bad)
    assert not canary.exists()
    arr = tmp_path / "array.pkl"
    arr.write_bytes(pickle.dumps({2017: np.array(["a" * 32])}))
    with pytest.raises(UserError, match="refused"):
        load_retrieval(arr)
    wrong = tmp_path / "wrong.pkl"
    wrong.write_bytes(pickle.dumps({2017: ["not a uid"]}))
    with pytest.raises(UserError, match="not a uid"):
        load_retrieval(wrong)
    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps({2017: {"n01440764": ["0" * 32]}}))
    assert load_datacompnet(good) == {2017: {"n01440764": ["0" * 32]}}
    assert not canary.exists()


def test_clip_benchmark_evaluates_a_random_tiny_model_on_our_sets(tmp_path, server):
    out = _downloaded(tmp_path, server)
    build_evalsets(EvalConfig(dir=out, retrieval=16, per_class=3, train_shards=False, progress=False), InlineExecutor())
    import torch

    from tic_train.tiny import create_model

    model = create_model(seed=0)
    model = model[0] if isinstance(model, tuple) else model
    torch.save(model.state_dict(), tmp_path / "tiny.pt")
    # retrieval through clip_benchmark's own command line (tic's tiny config registered first)
    code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); from tic_train.tiny import register_configs; register_configs(); "
            "from clip_benchmark.cli import main; sys.exit(main())")
    res = tmp_path / "retrieval.json"
    r = subprocess.run([sys.executable, "-c", code, str(REPO), "eval", "--dataset", "wds/tic_2019", "--dataset_root", str(out / "eval" / "2019" / "retrieval"),
                        "--model", "tic-tiny", "--pretrained", str(tmp_path / "tiny.pt"), "--task", "zeroshot_retrieval",
                        "--output", str(res), "--batch_size", "8", "--num_workers", "0"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads(res.read_text())["metrics"]
    assert 0.0 <= metrics["image_retrieval_recall@5"] <= 1.0 and 0.0 <= metrics["text_retrieval_recall@5"] <= 1.0
    # classification through its dataset builder and classifier (its accuracy() breaks on numpy>=2.4)
    import open_clip
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics.zeroshot_classification import run_classification, zero_shot_classifier

    from tic_train.tiny import MODEL_NAME, register_configs

    register_configs()
    _, _, preprocess = open_clip.create_model_and_transforms(MODEL_NAME)
    ds = build_dataset("wds/tic_2019", root=str(out / "eval" / "2019" / "classification"), transform=preprocess, task="zeroshot_classification")
    assert ds.classes == [world(0).concepts[c].name for c in sorted(CONCEPTS, key=lambda c: world(0).concepts[c].name)]
    assert all("{c}" in t for t in ds.templates)
    loader = torch.utils.data.DataLoader(ds.batched(8), batch_size=None, num_workers=0)
    clf = zero_shot_classifier(model.eval(), open_clip.get_tokenizer(MODEL_NAME), ds.classes, ds.templates, "cpu", amp=False)
    logits, target = run_classification(model, clf, loader, "cpu", amp=False)
    expected = pl.read_parquet(out / "eval" / "2019" / "classification" / "samples.parquet")
    assert logits.shape == (expected.height, len(ds.classes))
    assert sorted(target.tolist()) == sorted(expected["label"].to_list())


def test_a_killed_run_resumes_to_the_same_result(tmp_path, server, monkeypatch):
    import shutil

    import ticdata.evalsets as evalsets_mod

    out = _downloaded(tmp_path, server)
    clean = tmp_path / "clean"
    shutil.copytree(out, clean)
    cfg = dict(retrieval=8, per_class=2, samples_per_shard=16, progress=False)
    want = build_evalsets(EvalConfig(dir=clean, **cfg), InlineExecutor())

    real = evalsets_mod.write_eval_set
    calls = []

    def dies_on_third(spec):
        calls.append(spec.out)
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed while writing the eval sets
        return real(spec)

    monkeypatch.setattr(evalsets_mod, "write_eval_set", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        build_evalsets(EvalConfig(dir=out, **cfg), InlineExecutor())
    assert (out / ".tic" / "evalsets" / "completions").is_dir()
    monkeypatch.setattr(evalsets_mod, "write_eval_set", real)
    got = build_evalsets(EvalConfig(dir=out, **cfg), InlineExecutor())
    assert got["buckets"] == {b: v for b, v in want["buckets"].items()}
    assert not (out / ".tic" / "evalsets").exists()
    for b in ("2017", "2019"):
        for kind in ("retrieval", "classification"):
            a = pl.read_parquet(out / "eval" / b / kind / "samples.parquet")
            c = pl.read_parquet(clean / "eval" / b / kind / "samples.parquet")
            assert a.equals(c)
            assert (out / "eval" / b / kind / "test" / "0.tar").read_bytes() == (clean / "eval" / b / kind / "test" / "0.tar").read_bytes()
    key = ["uid", "split", "exclude_reason"]
    assert scan_manifest(out).select(key).collect().sort("uid").equals(scan_manifest(clean).select(key).collect().sort("uid"))


def test_official_maps_place_each_uid_in_their_year_and_count_disagreements(tmp_path, server):
    """The official map's year decides the bucket (two 2017 pairs filed under 2019 go to 2019's set),
    and each such disagreement with tic's own dating is counted per bucket pair."""
    out = _downloaded(tmp_path, server)
    moved = [uid_of(image_url(server.url, 0, 2017, 1, i), caption(0, 2017, 1, i)) for i in (0, 1)]
    kept = [uid_of(image_url(server.url, 0, 2019, 2, i), caption(0, 2019, 2, i)) for i in (0, 1, 2)]
    (tmp_path / "ret.pkl").write_bytes(pickle.dumps({2019: moved + kept}))
    doc = build_evalsets(EvalConfig(dir=out, tic_retrieval=tmp_path / "ret.pkl", per_class=2, progress=False), InlineExecutor())
    got = set(pl.read_parquet(out / "eval" / "2019" / "retrieval" / "samples.parquet")["uid"])
    assert got == set(moved + kept)
    assert doc["imports"]["bucket_disagreements"] == {"2019 -> 2017": 2}
    assert doc["imports"]["placed_by_official_year"] == 5
    assert not (out / "eval" / "2017" / "retrieval" / "samples.parquet").exists() or \
        not set(pl.read_parquet(out / "eval" / "2017" / "retrieval" / "samples.parquet")["uid"]) & set(moved)


def test_a_retrieval_share_holds_out_that_share_of_each_bucket(tmp_path, server):
    """TiC-YFCC/-RedCaps style: 10% of each bucket's downloaded images (of 120) as its retrieval set."""
    out = _downloaded(tmp_path, server)
    doc = build_evalsets(EvalConfig(dir=out, retrieval_share=0.1, per_class=2, progress=False), InlineExecutor())
    for b in ("2017", "2019"):
        c = doc["candidates"][b]
        assert c["retrieval"] == round(0.1 * c["images"]) == 12


def test_a_bucket_left_without_training_samples_is_named_in_a_warning(tmp_path, server, caplog):
    """Fixed set sizes on a small (or link-rotted) bucket can take every image: the table and the log
    say which bucket, what took its images and what to change, before tic train would refuse it."""
    out = _downloaded(tmp_path, server)
    caplog.set_level(logging.WARNING, logger="ticdata")
    doc = build_evalsets(EvalConfig(dir=out, retrieval=1000, per_class=2, progress=False), InlineExecutor())
    starved = [b for b, v in doc["buckets"].items() if v["train"] == 0 and v["images"] > 0]  # empty buckets: nothing to warn
    assert starved == ["2019"]
    table = format_evalsets_table(doc)
    warnings = [ln for ln in table.splitlines() if ln.startswith("warning: ")]
    assert len(warnings) == len(starved)
    for b, line in zip(starved, warnings):
        v = doc["buckets"][b]
        assert line.startswith(f"warning: bucket {b}: no training sample left of its {v['images']:,} images "
                               f"({v['retrieval']:,} retrieval, {v['classification']:,} classification, ")
        assert "--retrieval or --per-class" in line and line[len("warning: "):] in caplog.text
    fed = build_evalsets(EvalConfig(dir=out, retrieval=10, per_class=2, progress=False, overwrite=True), InlineExecutor())
    assert fed["buckets"]["2019"]["train"] > 0
    assert "warning" not in format_evalsets_table(fed)
