"""The synthetic world's pool: `make_world(out)` writes its pairs in DataComp's metadata layout
(`tic curate` reads it), with re-sightings in later crawls, failure URLs and link rot, and
`_world.json`, which says what the world holds and what a correct curation of it must find.

Link rot: the web forgets old pages faster than new ones (Pew Research, 2024: 38% of the pages of
2013 gone by 2023, 8% of those of 2023), so a pair first seen in year y has its image gone (a 404)
with probability `rot_share(y)` = min(ROT_CAP, ROT_BASE + ROT_PER_YEAR x (ROT_NOW - y)): 35% for
2014, 11% for 2022, as if the world were downloaded in 2023. Exactly round(share x pairs) pairs of
each year rot, picked with their own seeded stream, so the hostile failures and re-sightings of a
seed stay the same with or without rot (`link_rot=False`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import polars as pl

from ticdata.errors import UserError
from ticdata.recover import uid_of
from ticdata.snapshots import SnapshotTable
from ticdata.storage import write_json_atomic, write_parquet_atomic
from ticdata.synth.crawlpaths import wat_path
from ticdata.synth.world_concepts import BENCHMARK, HUES, SHAPES, TEXTURES, World, world
from ticdata.synth.world_images import IMAGE_SIZE, MAX_SIZE, MIN_SIZE
from ticdata.synth.world_pairs import (
    PAIRS_PER_STEP,
    S_WAT,
    S_WAT2,
    caption,
    instance_params,
    pair_hash,
    pair_unit,
    snapshot_windows,
    year_counts,
    year_pairs,
)
from ticdata.synth.world_urls import DEFAULT_BASE_URL, FAIL_KINDS, image_url, url_scheme

log = logging.getLogger(__name__)

RESIGHT_SHARE = 0.20  # extra rows re-sighting an earlier pair in a later crawl, per unique pair
FAIL_SHARE = 0.02  # pairs whose URL is a failure URL
ROT_NOW = 2023  # the year the world is downloaded in: a pair of year y is ROT_NOW - y years old
ROT_BASE = 0.08  # share of a year-old pair's images gone (Pew 2024: 8% of 2023's pages)
ROT_PER_YEAR = 0.03  # more gone per year of age (Pew 2024: 38% of 2013's pages after ten years)
ROT_CAP = 0.6
MEAN_LATER_GAP = 6.0  # mean distance, in crawls, of a re-sighting after the first sighting
FILE_NAME = "world-00000.parquet"
FILE_PATTERN = "world-*.parquet"
SUMMARY_NAME = "_world.json"  # underscore: `tic curate out/` skips it


def _wat_path(snapshot: tuple[str, datetime, datetime], *keys: int) -> str:
    """The WAT file of a sighting in `snapshot`: written inside the crawl, named by hashes of `keys`."""
    sid, start, end = snapshot
    dur = max(int((end - start).total_seconds()), 1)
    t1 = int(start.timestamp()) + int(pair_unit(S_WAT, *keys) * dur)
    t2 = t1 + 1800 + int(pair_unit(S_WAT2, *keys) * 3 * 3600)
    h = pair_hash(S_WAT, *keys)
    return wat_path(sid, t1, t2, h % 1000, (h >> 10) % 100, (h >> 20) % 100000)


def rot_share(year: int) -> float:
    """The share of a year's pairs whose image is gone when the world is downloaded (see the module doc)."""
    return min(ROT_CAP, ROT_BASE + ROT_PER_YEAR * max(0, ROT_NOW - int(year)))


def _rotted(seed: int, pairs: list[tuple[int, int, int]], fail_kind: dict[int, str]) -> dict[int, int]:
    """Pair index -> year of the pairs whose image rotted away: per year exactly round(rot_share x
    pairs of that year), among the pairs without a hostile failure URL, from the seed's own stream."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x2074]))
    by_year: dict[int, list[int]] = {}
    for pid, (year, _, _) in enumerate(pairs):
        by_year.setdefault(year, []).append(pid)
    out: dict[int, int] = {}
    for year, pids in sorted(by_year.items()):
        free = [p for p in pids if p not in fail_kind]
        n = min(len(free), int(round(rot_share(year) * len(pids))))
        out.update((int(p), year) for p in rng.choice(free, size=n, replace=False))
    return out


def _check_args(seed, base_url, pairs_per_step, image_size, fail_share, resight_share, link_rot=True) -> None:
    if not isinstance(link_rot, bool):
        raise UserError(f"synthetic world: link_rot={link_rot!r}; expected True or False")
    for name, value, least in (("seed", seed, 0), ("pairs_per_step", pairs_per_step, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
            raise UserError(f"synthetic world: {name}={value!r}; expected a whole number >= {least}")
    if not isinstance(image_size, (int, np.integer)) or not MIN_SIZE <= image_size <= MAX_SIZE:
        raise UserError(f"synthetic world: image_size={image_size!r}; expected a whole number from {MIN_SIZE} to {MAX_SIZE}")
    for name, value in (("fail_share", fail_share), ("resight_share", resight_share)):
        if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise UserError(f"synthetic world: {name}={value!r}; expected a number between 0 and 1")
    parts = urlsplit(str(base_url))
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise UserError(f"synthetic world: base_url={base_url!r}; expected http://HOST[:PORT] (the `tic serve-images` address)")


def make_world(
    out: Path,
    seed: int = 0,
    base_url: str = DEFAULT_BASE_URL,
    pairs_per_step: int = PAIRS_PER_STEP,
    image_size: int = IMAGE_SIZE,
    overwrite: bool = False,
    *,
    fail_share: float = FAIL_SHARE,
    resight_share: float = RESIGHT_SHARE,
    link_rot: bool = True,
) -> dict:
    """Write the world's pool (`out/world-00000.parquet`) and summary (`out/_world.json`); return the summary.

    Columns: uid, url, text, source (a WAT path in the crawl of the sighting), concept, world_year,
    instance. Every pair's first sighting is in a crawl of its year; `resight_share` x pairs extra
    rows re-sight a pair in a later crawl (same uid, url and text), and `fail_share` of the pairs
    get a failure URL (`/fail/<kind>/...`, kinds spread evenly); with `link_rot`, old pairs lose
    their image more often than new ones (`rot_share`; a `/fail/404/` URL). Same arguments, same bytes.
    Refuses a folder that already holds a world unless `overwrite`.
    """
    out = Path(out)
    _check_args(seed, base_url, pairs_per_step, image_size, fail_share, resight_share, link_rot)
    seed, pairs_per_step, image_size = int(seed), int(pairs_per_step), int(image_size)
    base_url = str(base_url).rstrip("/")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; choose another --out")
    old = sorted(out.glob(FILE_PATTERN)) if out.is_dir() else []
    if old and not overwrite:
        raise UserError(f"{out}: already holds a synthetic world ({len(old)} {FILE_PATTERN} files); choose an empty folder or pass --overwrite")
    w = world(seed)
    counts = year_counts(pairs_per_step, seed)
    pairs = [p for y in w.years for p in year_pairs(seed, y, counts[y])]
    n_pairs = len(pairs)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x770D]))

    # Failure URLs: an exact share of the pairs, kinds in turn.
    n_fail = int(round(fail_share * n_pairs))
    fail_kind: dict[int, str] = {}
    for j, pid in enumerate(rng.choice(n_pairs, size=n_fail, replace=False).tolist()):
        fail_kind[pid] = FAIL_KINDS[j % len(FAIL_KINDS)]
    rotted = _rotted(seed, pairs, fail_kind) if link_rot else {}

    windows = snapshot_windows()
    all_snaps = [(s.id, s.start, s.end) for s in SnapshotTable.load().snapshots]
    snap_pos = {s[0]: i for i, s in enumerate(all_snaps)}
    uid, url, text, source, concept, wyear, inst, first_pos = [], [], [], [], [], [], [], []
    for pid, (year, c, i) in enumerate(pairs):
        p = instance_params(seed, year, c, i)
        u = image_url(base_url, seed, year, c, i, image_size, "404" if pid in rotted else fail_kind.get(pid))
        t = caption(seed, year, c, i)
        snap = next(s for s in windows[year] if s[0] == p.snapshot)
        uid.append(uid_of(u, t))
        url.append(u)
        text.append(t)
        source.append(_wat_path(snap, seed, year, c, i, 0))
        concept.append(w.concepts[c].name)
        wyear.append(year)
        inst.append(i)
        first_pos.append(snap_pos[p.snapshot])

    # Re-sightings: a pair seen again in a later crawl (geometric gap, mean MEAN_LATER_GAP crawls).
    # A pair seen again several times is seen in ever later crawls.
    n_re = int(round(resight_share * n_pairs))
    last_pos = list(first_pos)
    seen_again: dict[int, int] = {}
    done = 0
    while done < n_re:
        parent = int(rng.integers(0, n_pairs))
        gap = int(rng.geometric(1.0 / MEAN_LATER_GAP))
        if last_pos[parent] >= len(all_snaps) - 1:
            continue  # already seen in the newest crawl of the index
        at = min(last_pos[parent] + gap, len(all_snaps) - 1)
        last_pos[parent] = at
        k = seen_again[parent] = seen_again.get(parent, 0) + 1
        done += 1
        year, c, i = pairs[parent]
        for col, val in ((uid, uid[parent]), (url, url[parent]), (text, text[parent]), (concept, concept[parent]),
                         (wyear, year), (inst, i)):  # fmt: skip
            col.append(val)
        source.append(_wat_path(all_snaps[at], seed, year, c, i, k))

    order = rng.permutation(len(uid))
    df = pl.DataFrame(
        {
            "uid": uid,
            "url": url,
            "text": text,
            "source": source,
            "concept": concept,
            "world_year": pl.Series(wyear, dtype=pl.Int16),
            "instance": pl.Series(inst, dtype=pl.Int32),
        },
        schema={"uid": pl.String, "url": pl.String, "text": pl.String, "source": pl.String, "concept": pl.String,
                "world_year": pl.Int16, "instance": pl.Int32},  # fmt: skip
    )[order]

    out.mkdir(parents=True, exist_ok=True)
    for f in old:
        f.unlink()
    (out / SUMMARY_NAME).unlink(missing_ok=True)
    write_parquet_atomic(out / FILE_NAME, df, compression="zstd", compression_level=3, statistics=True)

    summary = _summary(w, seed, base_url, image_size, pairs_per_step, counts, n_pairs, n_re, fail_kind, fail_share, resight_share)
    summary["link_rot"] = _rot_summary(link_rot, counts, rotted)
    write_json_atomic(out / SUMMARY_NAME, summary)
    log.info("synthetic world: %d pairs, %d re-sightings, %d failure URLs, %d rotted images, %d concepts -> %s",
             n_pairs, n_re, n_fail, len(rotted), len(w.concepts), out)  # fmt: skip
    return summary


def _rot_summary(on: bool, counts: dict[int, int], rotted: dict[int, int]) -> dict:
    """_world.json's link_rot: the curve and, per year, pairs and rotted images (a `/fail/404/` URL)."""
    lost = {y: 0 for y in counts}
    for y in rotted.values():
        lost[y] += 1
    return {"on": on, "curve": "min(cap, base + per_year x (now - year))",
            "now": ROT_NOW, "base": ROT_BASE, "per_year": ROT_PER_YEAR, "cap": ROT_CAP,
            "years": {str(y): {"pairs": n, "rotted": lost[y], "share": rot_share(y) if on else 0.0} for y, n in counts.items()}}


def _summary(w: World, seed, base_url, image_size, pairs_per_step, counts, n_pairs, n_re, fail_kind, fail_share, resight_share) -> dict:
    concepts = []
    for c in w.concepts:
        concepts.append(
            {
                "index": c.index,
                "name": c.name,
                "appears": w.step_years[c.first_step][0],
                "disappears": w.step_years[c.last_step + 1][0] if c.last_step + 1 < len(w.step_years) else None,
                "steps": [w.step_names[s] for s in range(len(w.step_names)) if c.active(s)],
                "attributes": {
                    w.step_names[s]: {
                        "shape": SHAPES[a[0]],
                        "texture": TEXTURES[a[1]],
                        "hue": HUES[a[2]],
                        "hue_degrees": a[2] * 360 // len(HUES),
                        "changed": c.changes[s],
                    }
                    for s, a in enumerate(c.attrs)
                },
            }
        )
    failures = {k: 0 for k in FAIL_KINDS}
    for k in fail_kind.values():
        failures[k] += 1
    return {
        "seed": seed,
        "base_url": base_url,
        "image_size": image_size,
        "url_scheme": url_scheme(),
        "benchmark": BENCHMARK,
        "steps": [
            {"name": n, "years": list(ys), "concepts": w.active(i), "pairs": sum(counts[y] for y in ys)}
            for i, (n, ys) in enumerate(zip(w.step_names, w.step_years))
        ],
        "concepts": concepts,
        "pairs_per_step": pairs_per_step,
        "pairs_per_year": {str(y): n for y, n in counts.items()},
        "unique_pairs": n_pairs,
        "resightings": n_re,
        "rows": n_pairs + n_re,
        "fail_share": fail_share,
        "resight_share": resight_share,
        "failures": failures,
        "files": [FILE_NAME],
        "expected": {
            "kept": n_pairs,
            "duplicates": n_re,
            "buckets": {n: sum(counts[y] for y in ys) for n, ys in zip(w.step_names, w.step_years)},
        },
    }
