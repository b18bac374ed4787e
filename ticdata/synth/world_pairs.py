"""One pair of the synthetic world, (year, concept, instance), as a pure function of the seed:
where and how large its object is, its caption, the crawl and time of its first sighting; and
which pairs a year or step holds.

Everything about a pair is a counter-based hash (splitmix64) of (seed, year, concept, instance)
and needs no table: the object's size class (small or large), its cell in a 3x3 grid, position
and size jitter, rotation and a small hue jitter; the caption template; the CommonCrawl snapshot
of its first sighting (one of that year's crawls) and its capture time (inside the year, before
that crawl). The caption names the concept, its size and its place ("a photo of a small goldfish
at the top left"), so a model must read the image and not only the concept to retrieve one image
among hundreds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import numpy as np

from ticdata.mix import GOLDEN, MASK64, splitmix64_int
from ticdata.snapshots import SnapshotTable
from ticdata.synth.world_concepts import HUES, World, world

PAIRS_PER_STEP = 3300
EXIF_EVERY = 3  # instances 0, 3, 6, ... carry EXIF DateTimeOriginal
MAX_INSTANCE = 10**9
SIZE_WORDS = ("small", "large")
SIZE_RADIUS = (0.18, 0.32)  # object radius as a share of the image side
CELL_CENTERS = (0.28, 0.5, 0.72)  # x and y of the 3x3 grid
CELL_WORDS = ("at the top left", "at the top", "at the top right",
              "on the left", "in the center", "on the right",
              "at the bottom left", "at the bottom", "at the bottom right")  # fmt: skip
TEMPLATES = (
    "a photo of a {size} {name} {where}",
    "{size} {name} {where}, on the web",
    "my {size} {name} {where}",
    "a picture showing the {size} {name} {where}",
    "{where}: a {size} {name}",
    "look at this {size} {name} {where}!",
    "the {size} {name} {where} in my collection",
    "{size} {name} {where} - stock image",
)

# --- counter-based hashing (splitmix64), stable across platforms and library versions -----------
(S_SIZE, S_CELL, S_DX, S_DY, S_RADIUS, S_ANGLE, S_HUE, S_VALUE, S_TEMPLATE, S_SNAPSHOT, S_TIME,
 S_WAT, S_WAT2) = range(1, 14)  # fmt: skip


def pair_hash(*keys: int) -> int:
    """64 bits from a chain of splitmix64 over `keys` (each taken mod 2**64)."""
    x = 0x243F6A8885A308D3
    for k in keys:
        x = splitmix64_int(x * GOLDEN + (k & MASK64) + 1 - GOLDEN)  # splitmix64 adds GOLDEN back
    return x


def pair_unit(*keys: int) -> float:
    """Uniform in [0, 1)."""
    return (pair_hash(*keys) >> 11) / 2.0**53


# --- one pair -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Instance:
    """Everything about one pair that does not depend on the rest of the pool."""

    seed: int
    year: int
    concept: int
    instance: int
    step: int
    size_class: int  # index into SIZE_WORDS
    cell: int  # 0..8, row-major 3x3 grid
    cx: float  # centre, as a share of the image side
    cy: float
    radius: float  # as a share of the image side
    angle: float  # radians
    hue: float  # 0..1, the concept's hue plus a small jitter
    value_jitter: float
    template: int
    snapshot: str  # the CommonCrawl crawl of the first sighting (one in `year`)
    captured: datetime  # inside `year`, before that crawl started
    exif: bool  # the JPEG carries EXIF DateTimeOriginal = captured


def check_pair(seed: int, year: int, concept: int, instance: int) -> World:
    """The world of a pair that exists; ValueError for a pair it does not hold."""
    for name, v in (("seed", seed), ("year", year), ("concept_index", concept), ("instance", instance)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
            raise ValueError(f"synthetic world: {name}={v!r}; expected a whole number >= 0")
    w = world(int(seed))
    w.step_of(int(year))
    if concept >= len(w.concepts):
        raise ValueError(f"synthetic world: concept_index={concept}; the world has {len(w.concepts)} concepts")
    if instance >= MAX_INSTANCE:
        raise ValueError(f"synthetic world: instance={instance}; expected < {MAX_INSTANCE}")
    return w


@lru_cache(maxsize=1)
def snapshot_windows() -> dict[int, list[tuple[str, datetime, datetime]]]:
    """(id, start, end) of the crawl index's snapshots, by the year they start in."""
    by_year: dict[int, list[tuple[str, datetime, datetime]]] = {}
    for s in SnapshotTable.load().snapshots:
        by_year.setdefault(s.start.year, []).append((s.id, s.start, s.end))
    return by_year


@lru_cache(maxsize=16384)
def instance_params(seed: int, year: int, concept_index: int, instance: int) -> Instance:
    """The pure-function description of pair (year, concept_index, instance) of world `seed`."""
    w = check_pair(seed, year, concept_index, instance)
    k = (int(seed), int(year), int(concept_index), int(instance))
    step = w.step_of(k[1])
    size_class = int(pair_unit(S_SIZE, *k) < 0.5)
    cell = int(pair_unit(S_CELL, *k) * 9)
    cx = CELL_CENTERS[cell % 3] + (pair_unit(S_DX, *k) - 0.5) * 0.08
    cy = CELL_CENTERS[cell // 3] + (pair_unit(S_DY, *k) - 0.5) * 0.08
    radius = SIZE_RADIUS[size_class] * (0.92 + 0.16 * pair_unit(S_RADIUS, *k))
    angle = (pair_unit(S_ANGLE, *k) - 0.5) * math.radians(40)
    base_hue = w.concepts[k[2]].attrs[step][2] / len(HUES)
    hue = (base_hue + (pair_unit(S_HUE, *k) - 0.5) * 0.05) % 1.0
    windows = snapshot_windows().get(k[1])
    if not windows:
        raise ValueError(f"synthetic world: the crawl index has no CommonCrawl snapshot in {year}")
    snap_id, snap_start, _ = windows[int(pair_unit(S_SNAPSHOT, *k) * len(windows))]
    year_start = datetime(k[1], 1, 1, tzinfo=timezone.utc)
    span = max(int((snap_start - year_start).total_seconds()), 1)
    captured = year_start + timedelta(seconds=int(pair_unit(S_TIME, *k) * span))
    return Instance(
        seed=k[0], year=k[1], concept=k[2], instance=k[3], step=step, size_class=size_class, cell=cell,
        cx=cx, cy=cy, radius=radius, angle=angle, hue=hue, value_jitter=(pair_unit(S_VALUE, *k) - 0.5) * 0.1,
        template=int(pair_unit(S_TEMPLATE, *k) * len(TEMPLATES)), snapshot=snap_id, captured=captured,
        exif=k[3] % EXIF_EVERY == 0,
    )  # fmt: skip


def caption(seed: int, year: int, concept_index: int, instance: int) -> str:
    """The alt text of pair (year, concept_index, instance): names the concept, its size and place."""
    p = instance_params(seed, year, concept_index, instance)
    name = world(seed).concepts[concept_index].name
    return TEMPLATES[p.template].format(size=SIZE_WORDS[p.size_class], name=name, where=CELL_WORDS[p.cell])


# --- the pairs of a year / step -----------------------------------------------------------------
def year_counts(pairs_per_step: int = PAIRS_PER_STEP, seed: int = 0) -> dict[int, int]:
    """Unique pairs per year: each step's pairs spread evenly over its years."""
    out = {}
    for years in world(seed).step_years:
        base, extra = divmod(pairs_per_step, len(years))
        for i, y in enumerate(years):
            out[y] = base + (1 if i < extra else 0)
    return out


def year_pairs(seed: int, year: int, n: int) -> list[tuple[int, int, int]]:
    """The first `n` pairs (year, concept, instance) of a year, spread evenly over its concepts."""
    w = world(seed)
    active = w.active(w.step_of(year))
    return [(year, active[j % len(active)], j // len(active)) for j in range(n)]


def step_pairs(seed: int, step: int | str, pairs_per_step: int = PAIRS_PER_STEP) -> list[tuple[int, int, int]]:
    """The pairs (year, concept, instance) of one step (by index or name), as `make_world` writes them."""
    w = world(seed)
    i = w.step_names.index(step) if isinstance(step, str) else int(step)
    counts = year_counts(pairs_per_step, seed)
    return [p for y in w.step_years[i] for p in year_pairs(seed, y, counts[y])]
