"""A drifting synthetic image-text world (2014-2022) whose images an HTTP server renders on demand.

The world is a pure function of its seed. It holds 16 concepts named by ordinary nouns (most of
them ImageNet class names): 12 from the first step, one new concept at each later step, and one
of the first twelve that fades out before the last step. Every concept is drawn as
shape x texture x hue; at each step boundary one of those three attributes of every concept
changes (which one rotates per concept, so after four boundaries every attribute has changed),
and each step has its own background. Concepts active in one step differ pairwise in at least two
attributes (in a handful of seeds out of a thousand, one), so a concept is always recognisable
within its step.

A pair is (year, concept, instance). Everything about it is a counter-based hash of
(seed, year, concept, instance) and needs no table: the object's size class (small or large),
its cell in a 3x3 grid, position and size jitter, rotation and a small hue jitter; the caption
template; the CommonCrawl snapshot of its first sighting (one of that year's crawls) and its
capture time (inside the year, before that crawl). The caption names the concept, its size and
its place ("a photo of a small goldfish at the top left"), so a model must read the image and
not only the concept to retrieve one image among hundreds.

`make_world(out)` writes the pool of such pairs in DataComp's metadata layout (`tic curate`
reads it), with ~20% re-sightings in later crawls and ~2% failure URLs, and `out/_world.json`,
which says what the world holds and what a correct curation of it must find. Images are served
by `ticdata.serve`; the URL says everything needed to render them:

    {base_url}/img/{seed}/{year}/c{concept_index}/{instance}.jpg[?size=N]
    {base_url}/fail/{kind}/{seed}/{year}/c{concept_index}/{instance}.jpg[?size=N]
"""

from __future__ import annotations

import colorsys
import io
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import polars as pl

from ticdata.benchmarks import load_benchmark
from ticdata.errors import UserError
from ticdata.recover import uid_of
from ticdata.snapshots import SnapshotTable

log = logging.getLogger(__name__)

# --- shape of the world -------------------------------------------------------------------------
BENCHMARK = "demo"  # the steps (and years) of the world
N_INITIAL = 12  # concepts present from the first step; one more arrives at each later step
FADING = N_INITIAL - 1  # this concept is absent from the last step
MIN_ATTR_DISTANCE = 2  # concepts active in one step differ in at least this many attributes
PAIRS_PER_STEP = 3300
IMAGE_SIZE = 64
DEFAULT_BASE_URL = "http://127.0.0.1:8765"
RESIGHT_SHARE = 0.20  # extra rows re-sighting an earlier pair in a later crawl, per unique pair
FAIL_SHARE = 0.02  # pairs whose URL is a failure URL
FAIL_KINDS = ("404", "500", "slow", "truncated", "corrupt", "redirect", "huge", "noai")
MEAN_LATER_GAP = 6.0  # mean distance, in crawls, of a re-sighting after the first sighting
JPEG_QUALITY = 90
EXIF_EVERY = 3  # instances 0, 3, 6, ... carry EXIF DateTimeOriginal
MIN_SIZE, MAX_SIZE = 8, 1024  # ?size=N accepted by render and the server
MAX_INSTANCE = 10**9
FILE_NAME = "world-00000.parquet"
FILE_PATTERN = "world-*.parquet"
SUMMARY_NAME = "_world.json"  # underscore: `tic curate out/` skips it

# Ordinary nouns, nearly all ImageNet class names; a seed picks 16 of them.
NAMES = ("goldfish", "teapot", "umbrella", "pizza", "banana", "volcano", "tractor", "violin",
         "strawberry", "jellyfish", "snail", "pineapple", "mushroom", "lemon", "castle", "balloon",
         "zebra", "koala", "flamingo", "canoe", "ambulance", "bagel", "pretzel", "hourglass")  # fmt: skip
SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross", "hexagon", "crescent")
TEXTURES = ("solid", "stripes", "checks", "dots", "rings", "halves")
HUES = ("red", "orange", "yellow", "lime", "green", "teal", "cyan", "azure", "blue", "violet",
        "magenta", "pink")  # fmt: skip; 30 degrees apart, starting at 0
ATTRIBUTES = ("shape", "texture", "hue")
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
_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
(S_SIZE, S_CELL, S_DX, S_DY, S_RADIUS, S_ANGLE, S_HUE, S_VALUE, S_TEMPLATE, S_SNAPSHOT, S_TIME,
 S_WAT, S_WAT2) = range(1, 14)  # fmt: skip


def _mix(x: int) -> int:
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _hash(*keys: int) -> int:
    x = 0x243F6A8885A308D3
    for k in keys:
        x = _mix((x * _GOLDEN + (k & _MASK) + 1) & _MASK)
    return x


def _unit(*keys: int) -> float:
    """Uniform in [0, 1)."""
    return (_hash(*keys) >> 11) / 2.0**53


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


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
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
        backgrounds.append((_hsv(h, sat, v), _hsv(h + 0.08, sat, v + dv), float(rng.uniform(0, 2 * math.pi))))
    return World(
        seed=seed,
        step_names=tuple(s.name for s in bench.steps),
        step_years=tuple(tuple(s.years) for s in bench.steps),
        concepts=tuple(concepts),
        backgrounds=tuple(backgrounds),
    )


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


def _check(seed: int, year: int, concept: int, instance: int) -> World:
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
def _snapshot_windows() -> dict[int, list[tuple[str, datetime, datetime]]]:
    by_year: dict[int, list[tuple[str, datetime, datetime]]] = {}
    for s in SnapshotTable.load().snapshots:
        by_year.setdefault(s.start.year, []).append((s.id, s.start, s.end))
    return by_year


@lru_cache(maxsize=16384)
def instance_params(seed: int, year: int, concept_index: int, instance: int) -> Instance:
    """The pure-function description of pair (year, concept_index, instance) of world `seed`."""
    w = _check(seed, year, concept_index, instance)
    k = (int(seed), int(year), int(concept_index), int(instance))
    step = w.step_of(k[1])
    size_class = int(_unit(S_SIZE, *k) < 0.5)
    cell = int(_unit(S_CELL, *k) * 9)
    cx = CELL_CENTERS[cell % 3] + (_unit(S_DX, *k) - 0.5) * 0.08
    cy = CELL_CENTERS[cell // 3] + (_unit(S_DY, *k) - 0.5) * 0.08
    radius = SIZE_RADIUS[size_class] * (0.92 + 0.16 * _unit(S_RADIUS, *k))
    angle = (_unit(S_ANGLE, *k) - 0.5) * math.radians(40)
    base_hue = w.concepts[k[2]].attrs[step][2] / len(HUES)
    hue = (base_hue + (_unit(S_HUE, *k) - 0.5) * 0.05) % 1.0
    windows = _snapshot_windows().get(k[1])
    if not windows:
        raise ValueError(f"synthetic world: the crawl index has no CommonCrawl snapshot in {year}")
    snap_id, snap_start, _ = windows[int(_unit(S_SNAPSHOT, *k) * len(windows))]
    year_start = datetime(k[1], 1, 1, tzinfo=timezone.utc)
    span = max(int((snap_start - year_start).total_seconds()), 1)
    captured = year_start + timedelta(seconds=int(_unit(S_TIME, *k) * span))
    return Instance(
        seed=k[0], year=k[1], concept=k[2], instance=k[3], step=step, size_class=size_class, cell=cell,
        cx=cx, cy=cy, radius=radius, angle=angle, hue=hue, value_jitter=(_unit(S_VALUE, *k) - 0.5) * 0.1,
        template=int(_unit(S_TEMPLATE, *k) * len(TEMPLATES)), snapshot=snap_id, captured=captured,
        exif=k[3] % EXIF_EVERY == 0,
    )  # fmt: skip


def caption(seed: int, year: int, concept_index: int, instance: int) -> str:
    """The alt text of pair (year, concept_index, instance): names the concept, its size and place."""
    p = instance_params(seed, year, concept_index, instance)
    name = world(seed).concepts[concept_index].name
    return TEMPLATES[p.template].format(size=SIZE_WORDS[p.size_class], name=name, where=CELL_WORDS[p.cell])


# --- rendering ----------------------------------------------------------------------------------
def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    rho = np.hypot(u, v)
    if shape == "circle":
        return rho <= 0.95
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.08
    if shape == "cross":
        return ((np.abs(u) < 0.36) & (np.abs(v) < 0.97)) | ((np.abs(v) < 0.36) & (np.abs(u) < 0.97))
    if shape == "crescent":
        return (rho <= 0.97) & (np.hypot(u - 0.42, v + 0.12) > 0.72)
    theta = np.arctan2(v, u) + math.pi / 2  # 0 = pointing up (image y grows down)
    if shape in ("triangle", "hexagon"):
        n, r = (3, 1.1) if shape == "triangle" else (6, 0.98)
        a = np.mod(theta, 2 * math.pi / n) - math.pi / n
        return rho <= r * math.cos(math.pi / n) / np.cos(a)
    if shape == "star":  # five points, straight edges between tip (R) and valley (r)
        big, small, alpha = 1.08, 0.48, math.pi / 5
        phi = np.abs(np.mod(theta, 2 * alpha) - alpha)  # 0 at a valley, alpha at a tip
        phi = alpha - phi  # 0 at a tip
        return rho <= big * small * math.sin(alpha) / (small * np.sin(alpha - phi) + big * np.sin(phi))
    raise ValueError(shape)


def _texture(texture: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """True where the object takes its dark shade."""
    if texture == "solid":
        return np.zeros(u.shape, dtype=bool)
    if texture == "stripes":
        return np.floor((u + 4) * 2.4).astype(np.int64) % 2 == 1
    if texture == "checks":
        return (np.floor((u + 4) * 2.0).astype(np.int64) + np.floor((v + 4) * 2.0).astype(np.int64)) % 2 == 1
    if texture == "dots":
        pu, pv = np.mod(u + 4, 0.8) - 0.4, np.mod(v + 4, 0.8) - 0.4
        return np.hypot(pu, pv) < 0.24
    if texture == "rings":
        return np.floor(np.hypot(u, v) * 3.2).astype(np.int64) % 2 == 1
    if texture == "halves":
        return v > 0
    raise ValueError(texture)


def render_array(seed: int, year: int, concept_index: int, instance: int, size: int = IMAGE_SIZE) -> np.ndarray:
    """The image of a pair as an (size, size, 3) uint8 array (before JPEG encoding)."""
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"synthetic world: size={size!r}; expected {MIN_SIZE}..{MAX_SIZE}")
    p = instance_params(seed, year, concept_index, instance)
    w = world(seed)
    shape, texture, _ = w.concepts[concept_index].attrs[p.step]
    # Background: a linear gradient between the step's two colours.
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    rgb0, rgb1, bg_angle = w.backgrounds[p.step]
    t = (coords[None, :] - 0.5) * math.cos(bg_angle) + (coords[:, None] - 0.5) * math.sin(bg_angle) + 0.5
    t = np.clip(t, 0.0, 1.0)[..., None]
    img = np.asarray(rgb0, np.float32) * (1 - t) + np.asarray(rgb1, np.float32) * t
    # Object: sampled ss x ss times per pixel inside its bounding box (antialiased edges), in its
    # own rotated frame of radius 1.
    ss = 3 if size <= 128 else 2 if size <= 384 else 1
    reach = 1.15 * p.radius
    x0, x1 = max(0, int((p.cx - reach) * size)), min(size, int(math.ceil((p.cx + reach) * size)))
    y0, y1 = max(0, int((p.cy - reach) * size)), min(size, int(math.ceil((p.cy + reach) * size)))
    if x1 > x0 and y1 > y0:
        n = size * ss
        sx = (np.arange(x0 * ss, x1 * ss, dtype=np.float32) + 0.5) / n
        sy = (np.arange(y0 * ss, y1 * ss, dtype=np.float32) + 0.5) / n
        dx, dy = (sx[None, :] - p.cx) / p.radius, (sy[:, None] - p.cy) / p.radius
        ca, sa = math.cos(p.angle), math.sin(p.angle)
        u, v = dx * ca + dy * sa, -dx * sa + dy * ca
        mask = _shape_mask(SHAPES[shape], u, v)
        dark = _texture(TEXTURES[texture], u, v) & mask
        h, wd = y1 - y0, x1 - x0
        cover = mask.reshape(h, ss, wd, ss).mean(axis=(1, 3), dtype=np.float32)[..., None]
        dark_share = dark.reshape(h, ss, wd, ss).mean(axis=(1, 3), dtype=np.float32)[..., None]
        light_rgb = np.asarray(_hsv(p.hue, 0.85, min(1.0, 0.93 + p.value_jitter)), np.float32)
        dark_rgb = np.asarray(_hsv(p.hue, 0.95, 0.42 + p.value_jitter), np.float32)
        box = img[y0:y1, x0:x1]
        img[y0:y1, x0:x1] = box * (1 - cover) + light_rgb * (cover - dark_share) + dark_rgb * dark_share
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def _exif_bytes(when: datetime) -> bytes:
    from PIL import Image

    exif = Image.Exif()
    stamp = when.strftime("%Y:%m:%d %H:%M:%S")
    exif[0x0132] = stamp  # DateTime
    exif.get_ifd(0x8769)[0x9003] = stamp  # DateTimeOriginal, in the Exif IFD
    return exif.tobytes()


@lru_cache(maxsize=2048)
def render(seed: int, year: int, concept_index: int, instance: int, size: int = IMAGE_SIZE) -> bytes:
    """The JPEG bytes of a pair (deterministic: same arguments, same bytes). Every EXIF_EVERY-th
    instance carries EXIF DateTime/DateTimeOriginal set to the pair's capture time."""
    from PIL import Image

    arr = render_array(seed, year, concept_index, instance, size)
    p = instance_params(seed, year, concept_index, instance)
    buf = io.BytesIO()
    kw = {"exif": _exif_bytes(p.captured)} if p.exif else {}
    Image.fromarray(arr, "RGB").save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False, **kw)
    return buf.getvalue()


# --- URLs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageRef:
    """What a world URL asks for; `kind` is None for a plain image, else one of FAIL_KINDS."""

    seed: int
    year: int
    concept: int
    instance: int
    size: int = IMAGE_SIZE
    kind: str | None = None

    def path(self) -> str:
        head = "/img" if self.kind is None else f"/fail/{self.kind}"
        tail = "" if self.size == IMAGE_SIZE else f"?size={self.size}"
        return f"{head}/{self.seed}/{self.year}/c{self.concept}/{self.instance}.jpg{tail}"

    def image(self) -> "ImageRef":
        return ImageRef(self.seed, self.year, self.concept, self.instance, self.size, None)


def image_url(base_url: str, seed: int, year: int, concept_index: int, instance: int,
              size: int = IMAGE_SIZE, kind: str | None = None) -> str:  # fmt: skip
    return base_url.rstrip("/") + ImageRef(seed, year, concept_index, instance, size, kind).path()


# The concept carries a letter ("c11") so that year/concept/instance never reads as a date path
# (/2014/11/12.jpg would be 12 November 2014 to `ticdata.urldates` and to any audit of URL dates).
_PATH_RE = re.compile(r"^/(?:img|fail/([a-z0-9]+))/([0-9]{1,18})/([0-9]{4})/c([0-9]{1,4})/([0-9]{1,10})\.jpg$")


def decode_url(path: str) -> ImageRef | None:
    """The pair a world URL or path (with an optional `?size=N`) names, or None when it names none."""
    parts = urlsplit(path)
    m = _PATH_RE.match(parts.path)
    if not m:
        return None
    kind = m.group(1)
    if kind is not None and kind not in FAIL_KINDS:
        return None
    size = IMAGE_SIZE
    if parts.query:
        q = parse_qs(parts.query, keep_blank_values=True)
        if set(q) != {"size"} or len(q["size"]) != 1 or not q["size"][0].isdigit():
            return None
        size = int(q["size"][0])
        if not MIN_SIZE <= size <= MAX_SIZE:
            return None
    seed, year, concept, instance = (int(m.group(i)) for i in range(2, 6))
    try:
        _check(seed, year, concept, instance)
    except (ValueError, UserError):
        return None
    return ImageRef(seed, year, concept, instance, size, kind)


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


# --- the pool -----------------------------------------------------------------------------------
def _ts14(t: datetime) -> str:
    return t.strftime("%Y%m%d%H%M%S")


def _wat_path(snapshot: tuple[str, datetime, datetime], *keys: int) -> str:
    sid, start, end = snapshot
    dur = max(int((end - start).total_seconds()), 1)
    t1 = start + timedelta(seconds=int(_unit(S_WAT, *keys) * dur))
    t2 = t1 + timedelta(seconds=1800 + int(_unit(S_WAT2, *keys) * 3 * 3600))
    h = _hash(S_WAT, *keys)
    segment = f"{int(t1.timestamp()) * 1000 + h % 1000}.{(h >> 10) % 100}"
    return f"crawl-data/{sid}/segments/{segment}/wat/CC-MAIN-{_ts14(t1)}-{_ts14(t2)}-{(h >> 20) % 100000:05d}.warc.wat.gz"


def _check_args(seed, base_url, pairs_per_step, image_size, fail_share, resight_share) -> None:
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


def url_scheme() -> dict:
    """The URL shapes of this version of the world (recorded in _world.json)."""
    return {
        "image": "{base_url}/img/{seed}/{year}/c{concept_index}/{instance}.jpg[?size=N]",
        "failure": "{base_url}/fail/{kind}/{seed}/{year}/c{concept_index}/{instance}.jpg[?size=N]",
        "failure_kinds": list(FAIL_KINDS),
    }


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
) -> dict:
    """Write the world's pool (`out/world-00000.parquet`) and summary (`out/_world.json`); return the summary.

    Columns: uid, url, text, source (a WAT path in the crawl of the sighting), concept, world_year,
    instance. Every pair's first sighting is in a crawl of its year; `resight_share` x pairs extra
    rows re-sight a pair in a later crawl (same uid, url and text), and `fail_share` of the pairs
    get a failure URL (`/fail/<kind>/...`, kinds spread evenly). Same arguments, same bytes.
    Refuses a folder that already holds a world unless `overwrite`.
    """
    out = Path(out)
    _check_args(seed, base_url, pairs_per_step, image_size, fail_share, resight_share)
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

    windows = _snapshot_windows()
    all_snaps = [(s.id, s.start, s.end) for s in SnapshotTable.load().snapshots]
    snap_pos = {s[0]: i for i, s in enumerate(all_snaps)}
    uid, url, text, source, concept, wyear, inst, first_pos = [], [], [], [], [], [], [], []
    for pid, (year, c, i) in enumerate(pairs):
        p = instance_params(seed, year, c, i)
        u = image_url(base_url, seed, year, c, i, image_size, fail_kind.get(pid))
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
    tmp = out / f".{FILE_NAME}.tmp"
    df.write_parquet(tmp, compression="zstd", compression_level=3, statistics=True)
    os.replace(tmp, out / FILE_NAME)

    summary = _summary(w, seed, base_url, image_size, pairs_per_step, counts, n_pairs, n_re, fail_kind, fail_share, resight_share)
    tmp = out / f".{SUMMARY_NAME}.tmp"
    tmp.write_text(json.dumps(summary, sort_keys=True, indent=2) + "\n")
    os.replace(tmp, out / SUMMARY_NAME)
    log.info("synthetic world: %d pairs, %d re-sightings, %d failure URLs, %d concepts -> %s",
             n_pairs, n_re, n_fail, len(w.concepts), out)  # fmt: skip
    return summary


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


# --- a picture for the README -------------------------------------------------------------------
def sample_strip(out_png: Path, concept_index: int = 0, seed: int = 0, per_step: int = 2, tile: int = 96) -> Path:
    """One PNG: `per_step` instances of a concept in each step, steps left to right, each labelled."""
    from PIL import Image, ImageDraw

    w = world(seed)
    c = w.concepts[concept_index]
    label_h, pad = 14, 4
    n_steps = len(w.step_names)
    width = n_steps * (tile + pad) + pad
    height = label_h + per_step * (tile + pad) + pad + label_h
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 1), f"{c.name} (concept {concept_index}, seed {seed})", fill=(0, 0, 0))
    for s, years in enumerate(w.step_years):
        x = pad + s * (tile + pad)
        for r in range(per_step):
            im = Image.open(io.BytesIO(render(seed, years[0], concept_index, r, tile))).convert("RGB")
            sheet.paste(im, (x, label_h + pad + r * (tile + pad)))
        a = c.attrs[s]
        draw.text((x, height - label_h), f"{w.step_names[s]}", fill=(0, 0, 0))
        log.debug("%s %s: %s %s %s", c.name, w.step_names[s], SHAPES[a[0]], TEXTURES[a[1]], HUES[a[2]])
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png, format="PNG", optimize=True)
    return out_png
