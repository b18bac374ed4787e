"""The URLs of the synthetic world's images, which say everything needed to render them:

    {base_url}/img/{seed}/{year}/c{concept_index}/{instance}.jpg[?size=N]
    {base_url}/fail/{kind}/{seed}/{year}/c{concept_index}/{instance}.jpg[?size=N]

written into the world's pool by `make_world` and read back by `tic serve-images`; the two sides
share this one spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from ticdata.errors import UserError
from ticdata.synth.world_images import IMAGE_SIZE, MAX_SIZE, MIN_SIZE
from ticdata.synth.world_pairs import check_pair

DEFAULT_BASE_URL = "http://127.0.0.1:8765"
FAIL_KINDS = ("404", "500", "slow", "truncated", "corrupt", "redirect", "huge", "noai")


def url_scheme() -> dict:
    """The URL shapes of this version of the world (recorded in _world.json)."""
    return {
        "image": "{base_url}/img/{seed}/{year}/c{concept_index}/{instance}.jpg[?size=N]",
        "failure": "{base_url}/fail/{kind}/{seed}/{year}/c{concept_index}/{instance}.jpg[?size=N]",
        "failure_kinds": list(FAIL_KINDS),
    }


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
        check_pair(seed, year, concept, instance)
    except (ValueError, UserError):
        return None
    return ImageRef(seed, year, concept, instance, size, kind)

