"""The synthetic world of a seed: which concepts it holds, what they look like in each step and
how they drift; the part of the world that every pair, image and caption is drawn from.

16 concepts named by ordinary nouns (most of them ImageNet class names): 12 from the first step,
one new concept at each later step, and one of the first twelve that fades out before the last
step. Every concept is drawn as shape x texture x hue; at each step boundary one of those three
attributes of every concept changes (which one rotates per concept, so after four boundaries
every attribute has changed), and each step has its own background. Concepts active in one step
differ pairwise in at least two attributes (in a handful of seeds out of a thousand, one), so a
concept is always recognisable within its step.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ticdata.benchmarks import load_benchmark
from ticdata.errors import UserError

# --- shape of the world -------------------------------------------------------------------------
BENCHMARK = "demo"  # the steps (and years) of the world
N_INITIAL = 12  # concepts present from the first step; one more arrives at each later step
FADING = N_INITIAL - 1  # this concept is absent from the last step
MIN_ATTR_DISTANCE = 2  # concepts active in one step differ in at least this many attributes

# Ordinary nouns, nearly all ImageNet class names; a seed picks 16 of them.
NAMES = ("goldfish", "teapot", "umbrella", "pizza", "banana", "volcano", "tractor", "violin",
         "strawberry", "jellyfish", "snail", "pineapple", "mushroom", "lemon", "castle", "balloon",
         "zebra", "koala", "flamingo", "canoe", "ambulance", "bagel", "pretzel", "hourglass")  # fmt: skip
SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross", "hexagon", "crescent")
TEXTURES = ("solid", "stripes", "checks", "dots", "rings", "halves")
HUES = ("red", "orange", "yellow", "lime", "green", "teal", "cyan", "azure", "blue", "violet",
        "magenta", "pink")  # fmt: skip; 30 degrees apart, starting at 0
ATTRIBUTES = ("shape", "texture", "hue")


# --- the world ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Concept:
    index: int
    name: str
    first_step: int  # index of the step it appears in
    last_step: int  # index of the last step it is present in
    attrs: tuple[tuple[int, int, int], ...]  # (shape, texture, hue) per step, defined for every step
    changes: tuple[str | None, ...]  # the attribute that changed at each step (None for step 0)

    def active(self, step: int) -> bool:
        return self.first_step <= step <= self.last_step


@dataclass(frozen=True)
class World:
    seed: int
    step_names: tuple[str, ...]
    step_years: tuple[tuple[int, ...], ...]
    concepts: tuple[Concept, ...]
    backgrounds: tuple[tuple[tuple[float, float, float], tuple[float, float, float], float], ...]  # rgb0, rgb1, angle

    @property
    def years(self) -> tuple[int, ...]:
        return tuple(y for ys in self.step_years for y in ys)

    def step_of(self, year: int) -> int:
        for i, ys in enumerate(self.step_years):
            if year in ys:
                return i
        raise ValueError(f"year {year} is not in the synthetic world ({self.years[0]}-{self.years[-1]})")

    def active(self, step: int) -> list[int]:
        return [c.index for c in self.concepts if c.active(step)]


def _distance(a: tuple[int, int, int], b: tuple[int, int, int]) -> int:
    return sum(x != y for x, y in zip(a, b))


def hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    return colorsys.hsv_to_rgb(h % 1.0, s, v)


@lru_cache(maxsize=64)
def world(seed: int = 0) -> World:
    """The world of `seed`: steps, concepts with their attributes per step, backgrounds."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UserError(f"synthetic world: seed={seed!r}; expected a whole number >= 0")
    bench = load_benchmark(BENCHMARK)
    n_steps = len(bench.steps)
    n_concepts = N_INITIAL + n_steps - 1
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    names = [NAMES[int(i)] for i in rng.permutation(len(NAMES))[:n_concepts]]
    sizes = (len(SHAPES), len(TEXTURES), len(HUES))

    attrs: list[list[tuple[int, int, int]]] = [[] for _ in range(n_concepts)]
    changes: list[list[str | None]] = [[None] for _ in range(n_concepts)]
    # Step 0: distinct, well-separated attributes for every concept (also the ones that arrive
    # later: they exist "off screen" and keep drifting, so any step can be rendered).
    for c in range(n_concepts):
        for _ in range(10_000):
            cand = tuple(int(rng.integers(0, n)) for n in sizes)
            if all(_distance(cand, attrs[o][0]) >= MIN_ATTR_DISTANCE for o in range(c)):
                break
        else:  # pragma: no cover - the attribute space is far larger than the concept count
            raise AssertionError("cannot place concepts")
        attrs[c].append(cand)
    # Each later step: concept c changes attribute (c + step) % 3 to a value it never had (nothing
    # drifts back; a new hue is at least 90 degrees away), keeping every two concepts at least
    # MIN_ATTR_DISTANCE apart; a step whose draw cannot is drawn again (and at worst kept distinct).
    for s in range(1, n_steps):
        for attempt in range(200):
            need = MIN_ATTR_DISTANCE if attempt < 199 else 1
            new: list[tuple[int, int, int]] = []
            for c in range(n_concepts):
                which = (c + s) % 3
                prev = attrs[c][s - 1]
                used = {a[which] for a in attrs[c]}
                options = [v for v in rng.permutation(sizes[which]).tolist() if v not in used]
                if which == 2:
                    options = [v for v in options if min((v - prev[2]) % 12, (prev[2] - v) % 12) >= 3]
                cands = [prev[:which] + (v,) + prev[which + 1 :] for v in options]
                fit = [cand for cand in cands if all(_distance(cand, o) >= need for o in new)]
                if not fit:
                    break
                new.append(fit[0])
            if len(new) == n_concepts:
                break
        else:  # pragma: no cover - never seen over thousands of seeds
            raise AssertionError("cannot drift concepts")
        for c in range(n_concepts):
            attrs[c].append(new[c])
            changes[c].append(ATTRIBUTES[(c + s) % 3])

    concepts = []
    for c in range(n_concepts):
        first = 0 if c < N_INITIAL else c - N_INITIAL + 1
        last = n_steps - 2 if c == FADING else n_steps - 1
        concepts.append(Concept(c, names[c], first, last, tuple(attrs[c]), tuple(changes[c])))

    backgrounds = []
    for s in range(n_steps):
        h = float(rng.random())
        sat = float(rng.uniform(0.10, 0.30))
        v = (0.82, 0.35, 0.65, 0.22, 0.92)[s % 5] + float(rng.uniform(-0.05, 0.05))
        dv = float(rng.uniform(0.10, 0.20)) * (1 if v < 0.6 else -1)
        backgrounds.append((hsv(h, sat, v), hsv(h + 0.08, sat, v + dv), float(rng.uniform(0, 2 * math.pi))))
    return World(
        seed=seed,
        step_names=tuple(s.name for s in bench.steps),
        step_years=tuple(tuple(s.years) for s in bench.steps),
        concepts=tuple(concepts),
        backgrounds=tuple(backgrounds),
    )
