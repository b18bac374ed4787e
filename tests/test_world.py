"""The synthetic image world: deterministic bytes, DataComp-layout pool with re-sightings dated in the
right years, concepts that arrive, fade and drift, and a pool that `tic curate` buckets exactly."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from ticdata.benchmarks import load_benchmark
from ticdata.curate import CurateConfig, curate
from ticdata.errors import UserError
from ticdata.executor import InlineExecutor
from ticdata.recover import uid_of
from ticdata.snapshots import SNAPSHOT_REGEX, SnapshotTable
from ticdata.synth import world as W

REPO = Path(__file__).resolve().parents[1]
SEED = 3


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, dict, pl.DataFrame]:
    out = tmp_path_factory.mktemp("world") / "w"
    summary = W.make_world(out, seed=SEED)
    return out, summary, pl.read_parquet(out / W.FILE_NAME)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_differs(tmp_path, made):
    out, summary, _ = made
    again = W.make_world(tmp_path / "again", seed=SEED)
    assert again == summary
    for name in (W.FILE_NAME, W.SUMMARY_NAME):
        assert _digest(tmp_path / "again" / name) == _digest(out / name)
    W.make_world(tmp_path / "other", seed=SEED + 1)
    assert _digest(tmp_path / "other" / W.FILE_NAME) != _digest(out / W.FILE_NAME)

    first = W.render(SEED, 2019, 2, 7)
    W.render.cache_clear()
    W.instance_params.cache_clear()
    assert W.render(SEED, 2019, 2, 7) == first  # re-rendered from scratch
    assert first[:2] == b"\xff\xd8"
    assert W.render(SEED + 1, 2019, 2, 7) != first
    assert W.render(SEED, 2019, 2, 8) != first
    assert W.caption(SEED, 2019, 2, 7) == W.caption(SEED, 2019, 2, 7)


def test_layout_uids_and_carried_columns(made):
    out, summary, df = made
    assert df.columns == ["uid", "url", "text", "source", "concept", "world_year", "instance"]
    assert df.schema["world_year"] == pl.Int16 and df.schema["instance"] == pl.Int32
    assert df.height == summary["rows"] == summary["unique_pairs"] + summary["resightings"]
    assert all(uid_of(u, t) == uid for uid, u, t in df.select("uid", "url", "text").iter_rows())
    assert df["uid"].str.contains(r"^[0-9a-f]{32}$").all()
    names = {c["index"]: c["name"] for c in summary["concepts"]}
    for url, text, concept, year, instance in df.select("url", "text", "concept", "world_year", "instance").iter_rows():
        ref = W.decode_url(url)
        assert ref is not None, url
        assert (ref.seed, ref.year, ref.instance, names[ref.concept]) == (SEED, year, instance, concept)
        assert text == W.caption(SEED, year, ref.concept, instance)
        assert concept in text
    assert json.loads((out / W.SUMMARY_NAME).read_text()) == summary


def test_first_sightings_in_their_year_and_later_resightings(made):
    _, summary, df = made
    table = SnapshotTable.load()
    start = {s.id: s.start for s in table.snapshots}
    df = df.with_columns(snapshot=pl.col("source").str.extract(SNAPSHOT_REGEX, 1))
    assert df["snapshot"].null_count() == 0
    df = df.with_columns(snap_start=pl.col("snapshot").replace_strict(start, return_dtype=pl.Datetime("us", "UTC")))
    first = df.sort("snap_start").group_by("uid", maintain_order=True).first()
    assert first.height == summary["unique_pairs"]
    assert (first["snap_start"].dt.year() == first["world_year"].cast(pl.Int32)).all()
    for row in first.head(200).iter_rows(named=True):
        assert row["snapshot"] in table.ids_in_year(row["world_year"])
    # Re-sightings: same uid, url and text in a strictly later crawl; about 20% of the pairs.
    n_seen = df.group_by("uid").agg(pl.len().alias("n"), pl.col("snap_start").n_unique().alias("crawls"),
                                    pl.col("url").n_unique().alias("urls"), pl.col("text").n_unique().alias("texts"))  # fmt: skip
    assert (n_seen["n"] - 1).sum() == summary["resightings"] == round(0.2 * summary["unique_pairs"])
    assert (n_seen["crawls"] == n_seen["n"]).all()  # every sighting of a pair is in a different crawl
    later = df.join(first.select("uid", first_start="snap_start"), on="uid").filter(pl.col("snap_start") != pl.col("first_start"))
    assert later.height == summary["resightings"] and (later["snap_start"] > later["first_start"]).all()
    assert (n_seen["urls"] == 1).all() and (n_seen["texts"] == 1).all()
    assert (n_seen["n"] > 1).sum() > 0.15 * summary["unique_pairs"]


def test_years_steps_and_concepts_appear_and_fade(made):
    _, summary, df = made
    bench = load_benchmark("demo")
    w = W.world(SEED)
    assert w.step_names == tuple(s.name for s in bench.steps)
    first = df.unique("uid")
    per_year = dict(first.group_by("world_year").len().iter_rows())
    assert per_year == {int(y): n for y, n in summary["pairs_per_year"].items()}
    assert {2014: 1100, 2017: 1650, 2019: 3300, 2022: 1650}.items() <= per_year.items()
    by_step = []
    for step in bench.steps:
        sub = first.filter(pl.col("world_year").is_in(list(step.years)))
        assert sub.height == 3300
        counts = dict(sub.group_by("concept").len().iter_rows())
        assert max(counts.values()) - min(counts.values()) <= len(step.years)  # spread evenly
        by_step.append(set(counts))
    assert len(by_step[0]) == W.N_INITIAL
    for s in range(1, len(by_step)):
        arrived = by_step[s] - by_step[s - 1]
        assert len(arrived) == 1, (s, arrived)
    faded = by_step[-2] - by_step[-1]
    assert faded == {w.concepts[W.FADING].name}
    assert len(set().union(*by_step)) == len(w.concepts) == 16
    meta = {c["name"]: c for c in summary["concepts"]}
    for s, names in enumerate(by_step):
        for name in names - (by_step[s - 1] if s else set()):
            assert meta[name]["appears"] == bench.steps[s].years[0]
    assert meta[w.concepts[W.FADING].name]["disappears"] == bench.steps[-1].years[0]
    assert sum(c["disappears"] is not None for c in summary["concepts"]) == 1
    assert all(len(c["attributes"]) == len(bench.steps) for c in summary["concepts"])


def test_attributes_drift_and_stay_distinct():
    w = W.world(SEED)
    for c in w.concepts:
        for s in range(1, len(w.step_names)):
            assert sum(a != b for a, b in zip(c.attrs[s], c.attrs[s - 1])) == 1  # one attribute per step
        assert all(a != b for a, b in zip(c.attrs[0], c.attrs[-1]))  # all three changed by the end
    for s in range(len(w.step_names)):
        active = [w.concepts[i].attrs[s] for i in w.active(s)]
        for a, b in itertools.combinations(active, 2):
            assert sum(x != y for x, y in zip(a, b)) >= W.MIN_ATTR_DISTANCE
    assert len({bg[0] for bg in w.backgrounds}) == len(w.step_names)


def _mean_image(pairs) -> np.ndarray:
    return np.mean([W.render_array(SEED, *p).astype(np.float32) for p in pairs], axis=0)


def test_drift_is_visible_in_mean_images():
    """A concept's mean image moves far more between the first and the last step than between the
    two halves of one step."""
    w = W.world(SEED)
    c = 0
    first = [p for p in W.step_pairs(SEED, 0) if p[1] == c][:120]
    last = [p for p in W.step_pairs(SEED, len(w.step_names) - 1) if p[1] == c][:60]
    a, b = _mean_image(first[0::2]), _mean_image(first[1::2])
    z = _mean_image(last)
    within = float(np.abs(a - b).mean())
    across = float(np.abs(a - z).mean())
    assert across > 4 * within, (within, across)
    # The object alone (not only the background) changes: its mean colour at the image centre
    # differs between concepts' first and last appearance once the background is subtracted.
    bg_first = _mean_image([p for p in W.step_pairs(SEED, 0) if p[1] != c][:120])
    bg_last = _mean_image([p for p in W.step_pairs(SEED, len(w.step_names) - 1) if p[1] != c][:60])
    assert float(np.abs((a - bg_first) - (z - bg_last)).mean()) > 2 * within


def test_captions_name_concept_size_and_place():
    w = W.world(SEED)
    templates = set()
    for year, c, i in W.step_pairs(SEED, 2)[:400]:
        p = W.instance_params(SEED, year, c, i)
        text = W.caption(SEED, year, c, i)
        assert w.concepts[c].name in text
        assert W.SIZE_WORDS[p.size_class] in text and W.CELL_WORDS[p.cell] in text
        templates.add(p.template)
    assert len(templates) == len(W.TEMPLATES) >= 6


def test_urls_failures_and_decode(made):
    _, summary, df = made
    first = df.unique("uid")
    rotted = sum(y["rotted"] for y in summary["link_rot"]["years"].values())
    fails = first.filter(pl.col("url").str.contains("/fail/"))
    kinds = dict(fails.select(pl.col("url").str.extract(r"/fail/([a-z0-9]+)/", 1)).group_by("url").len().iter_rows())
    kinds["404"] -= rotted  # link rot's 404s (test_link_rot_follows_the_age_curve); the rest are the hostile failures
    assert kinds == summary["failures"]
    assert sum(kinds.values()) == round(0.02 * summary["unique_pairs"])
    assert set(kinds) == set(W.FAIL_KINDS)
    assert max(kinds.values()) - min(kinds.values()) <= 1
    ref = W.decode_url("http://127.0.0.1:8765/img/3/2019/c2/7.jpg?size=32")
    assert ref == W.ImageRef(3, 2019, 2, 7, 32, None)
    assert W.decode_url(ref.path()) == ref
    assert W.decode_url("/fail/truncated/3/2019/c2/7.jpg") == W.ImageRef(3, 2019, 2, 7, 64, "truncated")
    assert W.image_url("http://h:1/", 3, 2019, 2, 7) == "http://h:1/img/3/2019/c2/7.jpg"
    for bad in ("/", "/img/3/2019/c2/7.png", "/img/3/2013/c2/7.jpg", "/img/3/2019/c16/7.jpg", "/fail/nope/3/2019/c2/7.jpg",
                "/img/3/2019/c2/7.jpg?size=4", "/img/3/2019/c2/7.jpg?w=3", "/img/x/2019/2/7.jpg", "/img/3/2019/c2/7.jpg/x"):
        assert W.decode_url(bad) is None, bad


def test_link_rot_follows_the_age_curve(made):
    """Per year exactly round(rot_share x pairs) images gone, old years more than new, each a 404
    among the pairs that have no hostile failure URL; the curve is the one the docs state."""
    _, summary, df = made
    first = df.unique("uid")
    rot = summary["link_rot"]
    assert rot["on"] and rot["now"] == 2023
    assert W.rot_share(2014) == pytest.approx(0.35) and W.rot_share(2022) == pytest.approx(0.11)
    assert W.rot_share(1990) == W.ROT_CAP
    per_year = dict(first.group_by("world_year").len().iter_rows())
    gone = dict(first.filter(pl.col("url").str.contains("/fail/404/")).group_by("world_year").len().iter_rows())
    hostile = first.filter(pl.col("url").str.contains("/fail/")).height - sum(gone.values()) + summary["failures"]["404"]
    assert hostile == sum(summary["failures"].values())
    for y, r in rot["years"].items():
        assert r["pairs"] == per_year[int(y)]
        assert r["rotted"] == round(W.rot_share(int(y)) * r["pairs"])
        assert gone.get(int(y), 0) >= r["rotted"]  # plus that year's hostile 404s
    shares = [rot["years"][str(y)]["rotted"] / rot["years"][str(y)]["pairs"] for y in sorted(map(int, rot["years"]))]
    assert shares == sorted(shares, reverse=True) and shares[0] > 3 * shares[-1]


def test_link_rot_off_keeps_the_other_failures(tmp_path, made):
    _, summary, df = made
    s = W.make_world(tmp_path / "w", seed=SEED, link_rot=False)
    off = pl.read_parquet(tmp_path / "w" / W.FILE_NAME)
    assert s["failures"] == summary["failures"] and not s["link_rot"]["on"]
    assert all(y["rotted"] == 0 for y in s["link_rot"]["years"].values())
    assert off.height == df.height and off["uid"].n_unique() == df["uid"].n_unique()
    assert off.unique("uid").filter(pl.col("url").str.contains("/fail/")).height == round(0.02 * s["unique_pairs"])
    with pytest.raises(UserError, match="link_rot"):
        W.make_world(tmp_path / "bad", link_rot="yes")


def test_no_failures_and_image_size_in_urls(tmp_path):
    s = W.make_world(tmp_path / "w", seed=1, base_url="http://127.0.0.1:9/", pairs_per_step=100, image_size=32, fail_share=0.0,
                     link_rot=False)
    df = pl.read_parquet(tmp_path / "w" / W.FILE_NAME)
    assert s["failures"] == {k: 0 for k in W.FAIL_KINDS}
    assert df["url"].str.starts_with("http://127.0.0.1:9/img/1/").all()
    assert df["url"].str.ends_with(".jpg?size=32").all()
    assert s["image_size"] == 32 and s["rows"] == 600


def test_exif_on_a_subset_and_sizes():
    for instance in range(6):
        im = Image.open(io.BytesIO(W.render(SEED, 2017, 4, instance)))
        assert im.size == (64, 64)
        stamp = im.getexif().get_ifd(0x8769).get(0x9003)
        if instance % W.EXIF_EVERY == 0:
            assert stamp and stamp.startswith("2017:"), stamp
        else:
            assert stamp is None
    assert Image.open(io.BytesIO(W.render(SEED, 2017, 4, 0, size=32))).size == (32, 32)
    with pytest.raises(ValueError):
        W.render(SEED, 2013, 4, 0)
    with pytest.raises(ValueError):
        W.render(SEED, 2017, 99, 0)


def test_guards(tmp_path, made):
    out, _, _ = made
    with pytest.raises(UserError, match="already holds"):
        W.make_world(out, seed=SEED)
    for kw in ({"seed": -1}, {"pairs_per_step": 0}, {"image_size": 3}, {"base_url": "ftp://x"}, {"fail_share": 2.0}):
        with pytest.raises(UserError):
            W.make_world(tmp_path / "bad", **kw)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        W.make_world(tmp_path / "file")
    small = W.make_world(tmp_path / "small", pairs_per_step=50)
    again = W.make_world(tmp_path / "small", pairs_per_step=60, overwrite=True)
    assert again["unique_pairs"] == 300 != small["unique_pairs"]


def test_tic_curate_buckets_the_world_exactly(tmp_path, made):
    out, summary, _ = made
    doc = curate(CurateConfig(inputs=(str(out),), out=tmp_path / "cur", benchmark="demo", progress=False), InlineExecutor())
    ledger = doc["ledger"]
    assert ledger["rows_in"] == summary["rows"]
    assert ledger["duplicates"] == summary["resightings"] == summary["expected"]["duplicates"]
    assert ledger["kept"] == summary["unique_pairs"] == summary["expected"]["kept"]
    assert sum(ledger["dropped"].values()) == 0
    assert {b: v["rows"] for b, v in doc["buckets"].items()} == summary["expected"]["buckets"]
    assert all(v["rows"] == summary["pairs_per_step"] for v in doc["buckets"].values())
    assert doc["outside_buckets"]["rows"] == 0
    man = pl.read_parquet(tmp_path / "cur" / "manifest", hive_partitioning=True)
    assert (man["year"].cast(pl.Int32) == man["world_year"].cast(pl.Int32)).all()
    assert {"concept", "world_year", "instance"} <= set(man.columns)


def test_sample_strip(tmp_path):
    png = W.sample_strip(tmp_path / "strip.png", concept_index=0, seed=0)
    im = Image.open(png)
    assert im.format == "PNG" and im.width > im.height and png.stat().st_size < 100_000
    shipped = REPO / "docs" / "world-samples.png"
    assert shipped.exists() and shipped.stat().st_size < 100_000
