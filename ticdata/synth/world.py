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

This module is the world's front door: what callers import lives in the modules below, by
responsibility, and is re-exported here.

    world_concepts  the world of a seed: concepts, their drift, backgrounds
    world_pairs     one pair (hash-drawn parameters, caption) and the pairs of a year or step
    world_images    pixels and JPEG bytes of a pair; the README strip
    world_urls      the image and failure URLs, both ways
    world_pool      make_world: the pool of pairs and _world.json
"""

from ticdata.synth.world_concepts import (
    ATTRIBUTES,
    BENCHMARK,
    FADING,
    HUES,
    MIN_ATTR_DISTANCE,
    N_INITIAL,
    NAMES,
    SHAPES,
    TEXTURES,
    Concept,
    World,
    world,
)
from ticdata.synth.world_images import (
    IMAGE_SIZE,
    JPEG_QUALITY,
    MAX_SIZE,
    MIN_SIZE,
    render,
    render_array,
    sample_strip,
)
from ticdata.synth.world_pairs import (
    CELL_CENTERS,
    CELL_WORDS,
    EXIF_EVERY,
    MAX_INSTANCE,
    PAIRS_PER_STEP,
    SIZE_RADIUS,
    SIZE_WORDS,
    TEMPLATES,
    Instance,
    caption,
    instance_params,
    step_pairs,
    year_counts,
    year_pairs,
)
from ticdata.synth.world_pool import (
    FAIL_SHARE,
    FILE_NAME,
    FILE_PATTERN,
    MEAN_LATER_GAP,
    RESIGHT_SHARE,
    ROT_BASE,
    ROT_CAP,
    ROT_NOW,
    ROT_PER_YEAR,
    SUMMARY_NAME,
    make_world,
    rot_share,
)
from ticdata.synth.world_urls import (
    DEFAULT_BASE_URL,
    FAIL_KINDS,
    ImageRef,
    decode_url,
    image_url,
    url_scheme,
)

__all__ = [
    # the world of a seed
    "BENCHMARK", "N_INITIAL", "FADING", "MIN_ATTR_DISTANCE", "NAMES", "SHAPES", "TEXTURES", "HUES", "ATTRIBUTES",
    "Concept", "World", "world",
    # one pair, and the pairs of a year or step
    "PAIRS_PER_STEP", "EXIF_EVERY", "MAX_INSTANCE", "SIZE_WORDS", "SIZE_RADIUS", "CELL_CENTERS", "CELL_WORDS",
    "TEMPLATES", "Instance", "instance_params", "caption", "year_counts", "year_pairs", "step_pairs",
    # images
    "IMAGE_SIZE", "JPEG_QUALITY", "MIN_SIZE", "MAX_SIZE", "render_array", "render", "sample_strip",
    # URLs
    "DEFAULT_BASE_URL", "FAIL_KINDS", "ImageRef", "image_url", "decode_url", "url_scheme",
    # the pool
    "RESIGHT_SHARE", "FAIL_SHARE", "MEAN_LATER_GAP", "FILE_NAME", "FILE_PATTERN", "SUMMARY_NAME", "make_world",
    "ROT_NOW", "ROT_BASE", "ROT_PER_YEAR", "ROT_CAP", "rot_share",
]  # fmt: skip
