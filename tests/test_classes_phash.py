"""Caption-to-class matching (whole words, plurals, ambiguity, longest synonym) and perceptual hashes."""

from __future__ import annotations

import io

import numpy as np
import polars as pl
import pytest
from PIL import Image

from ticdata.classes import from_file, imagenet, load_vocabulary, match_captions
from ticdata.errors import UserError
from ticdata.evalselect import SelectParams, rank_of, select_bucket
from ticdata.phash import informative, near_pairs, phash_bytes
from ticdata.synth.world import render

CASES = [
    ("A tiger-shark swimming near the reef", "tiger shark"),  # longest synonym wins over "tiger"
    ("my GOLDFISH, at home", "goldfish"),
    ("three goldfishes in a bowl", "goldfish"),  # plural of the last word
    ("Great white shark!", "great white shark"),
    ("a man-eater in the water", "great white shark"),  # WordNet lemma as synonym, hyphen ignored
    ("strawberries", "strawberry"),  # -y -> -ies
    ("cartoon of a cart", None),  # 'cart' is not a class; 'cartoon' must not match anything by substring
    ("a crane lifting steel", None),  # 'crane' names two classes (bird, machine): ambiguous
    ("a tench and a goldfish", None),  # two classes
    ("goldfishing trip", None),  # not a whole word
    ("", None),
    (None, None),
]


def test_captions_match_one_class_by_whole_words():
    v = imagenet()
    assert len(v.names) == 1000 and len(v.wnids) == 1000 and v.wnids[0] == "n01440764"
    df = match_captions(pl.DataFrame({"text": [c for c, _ in CASES]}, schema={"text": pl.String}), v)
    got = [v.names[i] if i is not None else None for i in df["label"].to_list()]
    assert got == [want for _, want in CASES]
    assert df["class_match"].to_list()[7:9] == ["ambiguous", "ambiguous"]
    assert df["class_match"].to_list()[-1] == "none"


def test_vocabulary_files_and_bad_specs(tmp_path):
    txt = tmp_path / "v.txt"
    txt.write_text("# my classes\nsedan, saloon car\nbicycle\n\n")
    v = from_file(txt)
    assert v.names == ("sedan", "bicycle") and v.synonyms[0] == ("sedan", "saloon car")
    df = match_captions(pl.DataFrame({"text": ["a red saloon cars", "two bicycles", "a sedan and a bicycle"]}), v)
    assert df["label"].to_list() == [0, 1, None]
    dup = tmp_path / "d.txt"
    dup.write_text("a\na\n")
    with pytest.raises(UserError, match="unique"):
        from_file(dup)
    with pytest.raises(UserError, match="not 'imagenet'"):
        load_vocabulary(str(tmp_path / "missing.json"))


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def test_phash_survives_reencoding_and_resizing_but_separates_pictures():
    data = render(0, 2019, 3, 5, size=128)
    img = Image.open(io.BytesIO(data)).convert("RGB")
    h = phash_bytes(data)
    for variant in (_jpeg(img, 50), _jpeg(img.resize((64, 64)), 80), _jpeg(img.resize((200, 200)), 90)):
        assert np.bitwise_count(np.uint64(h ^ phash_bytes(variant))) <= 4
    others = [phash_bytes(render(0, 2019, c, 5, size=128)) for c in (0, 1, 2, 4)]
    assert min(int(np.bitwise_count(np.uint64(h ^ o))) for o in others) > 8
    assert not informative(np.array([0, (1 << 63) - 1], dtype=np.uint64)).any()


def test_near_pairs_equals_brute_force():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, size=300, dtype=np.uint64)
    flips = np.array([sum(1 << int(b) for b in rng.choice(63, size=k, replace=False)) for k in rng.integers(0, 7, size=300)], dtype=np.uint64)
    q = base ^ flips
    for d in (0, 2, 4, 6):
        got = set(map(tuple, near_pairs(q, base, d).select("q", "r").rows()))
        dist = np.bitwise_count(q[:, None] ^ base[None, :])
        want = set(zip(*np.nonzero(dist <= d)))
        assert got == {(int(a), int(b)) for a, b in want}


def test_selection_depends_on_seed_and_uids_only():
    n = 400
    rng = np.random.default_rng(1)
    uids = [f"{x:032x}" for x in rng.integers(0, 2**62, size=n)]
    rows = pl.DataFrame({
        "uid": uids,
        "text": [f"photo number {i} of a goldfish in a bowl" if i % 2 else f"a tench caught on day {i}" for i in range(n)],
        "sha256": [f"{i:064x}" for i in range(n)],
        "phash": rng.integers(0, 2**63, size=n, dtype=np.uint64),
    })
    p = SelectParams(retrieval=20, per_class=5, seed=3)
    a, counts = select_bucket(rows, p, imagenet())
    b, _ = select_bucket(rows.reverse(), p, imagenet())
    assert a.sort("uid").equals(b.sort("uid"))
    assert counts["retrieval"] == 20 and counts["classification"] == 10 and counts["classes"] == 2
    c, _ = select_bucket(rows, SelectParams(retrieval=20, per_class=5, seed=4), imagenet())
    assert set(a["uid"]) != set(c["uid"])
    # the retrieval picks are the lowest seeded ranks among eligible rows
    ranks = dict(zip(uids, rank_of(pl.Series(uids), 3)))
    picked = a.filter(pl.col("split") == "retrieval")["uid"]
    assert max(ranks[u] for u in picked) < min(ranks[u] for u in uids if u not in set(a["uid"]))
