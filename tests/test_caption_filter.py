"""DataCompNet's caption filter (TiC-CLIP after LAIONet): a class-naming caption is held out for
classification only when a text encoder puts it close to its class's text. The selection asks the
filter about candidates in rank order and widens per class until the quota is met; the CLI loads a
real open_clip text tower from a local weights file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import open_clip
import polars as pl
import pytest
import torch

from ticdata.classes import Vocabulary, class_text, imagenet
from ticdata.manifest import scan_manifest
from ticdata.evalselect import CANDIDATE_FACTOR, SelectParams, caption_check, rank_of, select_bucket
from tic_train.caption_scorer import CaptionScorer
from tic_train.tiny import MODEL_NAME, create_model, register_configs

from refusals import one_line
from ticdata.cli import main

VOCAB = Vocabulary(names=("snail", "tiger shark"), synonyms=(("snail",), ("tiger shark",)), templates=("a {c}.",), source="test")


def _bucket(n_per_class: int, seed: int = 7) -> pl.DataFrame:
    """Rows whose captions name one of VOCAB's classes, with distinct random images."""
    rng = np.random.default_rng(seed)
    uids = [f"{x:032x}" for x in rng.integers(0, 2**63, size=2 * n_per_class, dtype=np.int64)]
    texts = [f"a {'snail' if i % 2 == 0 else 'tiger shark'} seen on day {i}" for i in range(2 * n_per_class)]
    return pl.DataFrame({"uid": uids, "text": texts, "sha256": uids,
                         "phash": pl.Series(rng.integers(0, 2**63, size=2 * n_per_class, dtype=np.int64).astype(np.uint64) * 3 + 1)})


def test_the_filter_keeps_the_first_passing_captions_in_rank_order_and_asks_only_what_it_needs():
    rows = _bucket(200)
    asked: list[str] = []

    def check(texts, labels):  # rejects every caption whose day number is divisible by 3
        asked.extend(texts)
        return np.array([int(t.rsplit(" ", 1)[1]) % 3 != 0 for t in texts])

    params = SelectParams(retrieval=0, per_class=5, distance=0)
    picks, counts = select_bucket(rows, params, VOCAB, check)
    ranked = rows.with_columns(rank=pl.Series(rank_of(rows["uid"], 0))).sort("rank")
    expected = set()
    for name in VOCAB.names:  # by hand: per class, the 5 best-ranked captions the check passes
        mine = [t for t in ranked["text"] if f" {name} " in t and int(t.rsplit(" ", 1)[1]) % 3 != 0][:5]
        expected |= set(ranked.filter(pl.col("text").is_in(mine))["uid"])
    assert set(picks.filter(pl.col("split") == "classification")["uid"]) == expected
    assert counts["caption_not_similar"] == sum(int(t.rsplit(" ", 1)[1]) % 3 == 0 for t in asked)
    # each class needs per_class x CANDIDATE_FACTOR = 20 passing candidates (the near-duplicate
    # check's margin); its first 20 hold only ~13, so its window doubles once, to 40: 80 asked of 400
    need = params.per_class * CANDIDATE_FACTOR
    assert len(asked) == 2 * 2 * need
    assert len(asked) == len(set(asked))  # nobody asked twice

    # a check that rejects almost everything: the window widens until the class runs out
    asked.clear()
    _, counts = select_bucket(rows, params, VOCAB, lambda t, lab: (asked.extend(t), np.zeros(len(t), bool))[1])
    assert len(asked) == rows.height and counts["caption_not_similar"] == rows.height and counts["classification"] == 0


def test_a_filter_that_passes_everything_changes_nothing():
    rows = _bucket(60)
    params = SelectParams(retrieval=3, per_class=4, distance=2)
    plain, _ = select_bucket(rows, params, VOCAB)
    checked, counts = select_bucket(rows, params, VOCAB, lambda t, lab: np.ones(len(t), bool))
    assert plain.sort("uid").equals(checked.sort("uid")) and counts["caption_not_similar"] == 0


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    register_configs()
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    torch.save(create_model(seed=3)[0].state_dict(), path)
    return path


def test_scorer_similarity_is_the_cosine_of_the_text_towers_embeddings(tiny_weights):
    scorer = CaptionScorer(MODEL_NAME, str(tiny_weights))
    texts = ["a snail on a leaf", "tiger shark in the deep", "an unrelated sentence"]
    classes = [class_text(VOCAB, 0), class_text(VOCAB, 1), class_text(VOCAB, 0)]
    got = scorer(texts, classes)
    model = open_clip.create_model(MODEL_NAME, pretrained=str(tiny_weights)).eval()
    tok = open_clip.get_tokenizer(MODEL_NAME)
    with torch.no_grad():
        want = torch.nn.functional.cosine_similarity(model.encode_text(tok(texts)), model.encode_text(tok(classes))).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    cut = float(np.median(got))
    keep = caption_check(scorer, VOCAB, cut)(texts, np.array([0, 1, 0]))
    assert keep.tolist() == (got >= cut).tolist() and 0 < keep.sum() < 3
    assert class_text(imagenet(), imagenet().names.index("tiger shark")).startswith("tiger shark, ")


def test_evalsets_with_the_filter_holds_out_only_captions_close_to_their_class(small_run, tmp_path, tiny_weights, capsys):
    cur = tmp_path / "cur"
    shutil.copytree(small_run[0], cur, symlinks=True)
    base = ["evalsets", str(cur), "--classes", "imagenet", "--retrieval", "0", "--no-train-shards", "--overwrite", "--executor", "inline", "--quiet"]
    assert main(base) == 0
    def held():
        man = scan_manifest(cur).filter(pl.col("split") == "classification").select("uid", "text", "eval_class").collect()
        return man.sort("uid")

    unfiltered = held()
    assert unfiltered.height > 4
    vocab = imagenet()
    scorer = CaptionScorer(MODEL_NAME, str(tiny_weights))
    sims = scorer(unfiltered["text"].to_list(), [class_text(vocab, vocab.names.index(c)) for c in unfiltered["eval_class"]])
    cut = float(np.median(sims))
    flags = ["--caption-model", MODEL_NAME, "--caption-pretrained", str(tiny_weights)]

    assert main([*base, *flags, "--caption-threshold", "-1"]) == 0  # passes everything: the same sets
    assert held().equals(unfiltered)

    capsys.readouterr()
    assert main([*base, *flags, "--caption-threshold", repr(cut)]) == 0
    assert "caption filter: tic-tiny text similarity >=" in capsys.readouterr().out
    kept = held()
    ksims = scorer(kept["text"].to_list(), [class_text(vocab, vocab.names.index(c)) for c in kept["eval_class"]])
    assert kept.height and (ksims >= cut - 1e-6).all()
    doc = json.loads((cur / "eval" / "evalsets.json").read_text())
    assert doc["plan"]["caption_filter"] == {"model": MODEL_NAME, "pretrained": str(tiny_weights), "threshold": cut}
    assert sum(c["caption_not_similar"] for c in doc["candidates"].values()) >= int((sims < cut).sum()) > 0


def test_the_filter_is_refused_where_labels_come_from_a_column_or_weights_are_missing(small_run, tmp_path, tiny_weights, capsys):
    cur = tmp_path / "cur"
    shutil.copytree(small_run[0], cur, symlinks=True)
    base = ["evalsets", str(cur), "--executor", "inline", "--overwrite", "--caption-model", MODEL_NAME]
    one_line(capsys, main([*base, "--caption-pretrained", str(tiny_weights)]), "manifest column 'concept'")
    one_line(capsys, main([*base, "--classes", "imagenet"]), "--caption-pretrained")
    one_line(capsys, main([*base, "--classes", "imagenet", "--caption-pretrained", str(tmp_path / "nope.pt")]), "nope.pt")
