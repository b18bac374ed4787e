"""The word lists and host names of the synthetic pool, and the tables built from them once per
pool: caption templates with their vocabulary, and N_DOMAINS web hosts. Data, not logic: a
caption or url is a lookup into these tables by a hashed index (see pool_rows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import polars as pl

N_DOMAINS = 2000

# --- caption words ------------------------------------------------------------------------------
_ADJ = ["red", "blue", "green", "vintage", "modern", "rustic", "tiny", "giant", "handmade", "wooden",
        "golden", "silver", "bright", "dark", "cozy", "elegant", "minimalist", "colorful", "old",
        "new", "beautiful", "cute", "funny", "abstract", "classic", "crème", "naïve", "hand-painted",
        "Scandinavian", "retro", "misty", "frozen", "sunny", "organic", "luxury", "cheap"]  # fmt: skip
_NOUN = ["sofa", "chair", "lamp", "dog", "cat", "mountain", "beach", "car", "bicycle", "house",
         "kitchen", "garden", "wedding dress", "pizza", "coffee mug", "sunset", "bridge", "guitar",
         "sneakers", "watch", "necklace", "book cover", "poster", "logo", "t-shirt", "backpack",
         "tent", "sailboat", "train", "skyline", "forest", "waterfall", "cake", "salad", "bouquet",
         "puppy", "kitten", "horse", "owl", "robot", "laptop", "phone case", "crème brûlée",
         "façade", "piñata", "smørrebrød", "croissant", "ramen", "lighthouse", "cathedral"]  # fmt: skip
_PLACE = ["Paris", "London", "New York", "Zürich", "São Paulo", "Kraków", "Reykjavík", "東京",
          "Москва", "Αθήνα", "Ciudad de México", "Düsseldorf", "Malmö", "Bogotá", "İstanbul",
          "Québec", "القاهرة", "Mumbai", "Cape Town", "Sydney", "Berlin", "Lisbon", "Seoul",
          "서울", "Kyoto", "Oslo", "Nairobi", "Lima", "Hà Nội", "Chicago"]  # fmt: skip
_PREP = [" in ", " at ", " near ", " on ", " over ", " above "]
_VERB = ["sitting", "standing", "resting", "glowing", "waiting", "floating", "running", "sleeping",
         "reflected", "covered in snow"]  # fmt: skip
_BRAND = ["Acme", "Nordic", "Zenith", "Blue Fern", "Kōda", "Lumière", "Ironwood", "Vega", "Pixelworks",
          "Maison Rouge", "Hōkū", "Fjällräv"]  # fmt: skip
_SIZE = ["Size S", "Size M", "Size L", "Size XL", "10 x 8 in", "A4", "1080p", "4K", "Pack of 3", "500 ml"]
_SHOP = ["Free Shipping", "Buy Online", "Sale", "New Arrival", "Best Price", "In Stock", "Shop Now",
         "£19.99", "€24,95", "$9.99", "¥1,280"]  # fmt: skip
_EMOJI = ["", "", "", "", " 🌅", " ❤️", " ✨", " 🐶", " 🔥", " 😍"]
_TAIL = ["", "", "", "", "", "", "", "", " - stock photo", " | Pinterest", " (2 of 5)",
         " #travel #photography", ", high resolution wallpaper for desktop and mobile devices",
         " — royalty-free image", " - Etsy", " on Flickr - Photo Sharing!", " ☆ Free download"]  # fmt: skip
_CLASSES = {
    "adj": _ADJ,
    "Adj": [w[:1].upper() + w[1:] for w in _ADJ],
    "noun": _NOUN,
    "Noun": [w[:1].upper() + w[1:] for w in _NOUN],
    "place": _PLACE,
    "prep": _PREP,
    "verb": _VERB,
    "brand": _BRAND,
    "size": _SIZE,
    "shop": _SHOP,
    "emoji": _EMOJI,
    "tail": _TAIL,
    "digit": list("0123456789"),
}
# (weight, template): {class} is a word of that class, everything else is literal.
_TEMPLATES = (
    (22, "{Adj} {noun}{prep}{place}{tail}"),
    (16, "photo of a {adj} {noun}{tail}"),
    (12, "{brand} {noun} - {size} | {shop}"),
    (12, "{Noun} {verb}{prep}the {noun}{emoji}"),
    (4, "IMG_{digit}{digit}{digit}{digit}.JPG"),
    (14, "{Adj} {noun} and {noun}{prep}{place}, {adj} {noun} {verb}{tail}{tail}"),
    (4, "{place}"),
    (16, "{adj} {noun} {noun} {noun} {adj} {noun} {noun} {noun} {noun}{emoji}{tail}"),
)
# --- urls and images ----------------------------------------------------------------------------
_DOMAIN_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "ve", "zo", "bri", "sha", "pix", "flo", "gra",
                     "don", "mar", "tel", "qui", "sun", "wex", "yor", "bel", "cor", "dan", "fen",
                     "hal", "jin", "kor", "lux", "nor", "pol"]  # fmt: skip
_TLDS = [".com", ".com", ".com", ".net", ".org", ".de", ".co.uk", ".fr", ".jp", ".io", ".info", ".shop", ".blog"]
_HOST_PREFIXES = ["www.", "www.", "", "images.", "cdn.", "static.", "media."]
SECTIONS = ["images", "wp-content/uploads/2019/07", "photos", "media/catalog/product", "img", "files",
            "assets/i", "uploads"]  # fmt: skip
EXTS = [".jpg", ".jpg", ".jpg", ".jpg", ".png", ".jpeg", ".webp", ".gif", ".JPG", ".jpg?w=800"]
WIDTHS = [128, 200, 256, 320, 400, 480, 500, 600, 640, 700, 750, 800, 1000, 1024, 1200, 1280, 1600,
          1920, 2048, 3000, 4000]  # fmt: skip
ASPECTS = [1.0, 1.0, 4 / 3, 4 / 3, 3 / 2, 16 / 9, 3 / 4, 2 / 3, 9 / 16, 2.0]


@dataclass(frozen=True)
class CaptionTable:
    """Every caption template, flattened: a caption is one vocab entry per slot of its template."""

    vocab: pl.Series  # every (literal prefix + word + literal suffix) string of every template slot
    weights_cdf: np.ndarray  # template choice
    slots: tuple[tuple[tuple[int, int], ...], ...]  # per template: (base, size) into vocab per slot


def caption_table() -> CaptionTable:
    """The caption table of _TEMPLATES (the same for every seed)."""
    vocab: list[str] = []
    slots = []
    for _, tpl in _TEMPLATES:
        parts = re.split(r"\{(\w+)\}", tpl)  # literal, class, literal, class, ..., literal
        literals, classes = parts[0::2], parts[1::2]
        assert classes, tpl
        t_slots = []
        for i, cls in enumerate(classes):
            prefix = literals[i]
            suffix = literals[-1] if i == len(classes) - 1 else ""
            words = [prefix + w + suffix for w in _CLASSES[cls]]
            t_slots.append((len(vocab), len(words)))
            vocab.extend(words)
        slots.append(tuple(t_slots))
    w = np.array([w for w, _ in _TEMPLATES], dtype=np.float64)
    return CaptionTable(pl.Series("v", vocab, dtype=pl.String), np.cumsum(w) / w.sum(), tuple(slots))


def domains() -> list[str]:
    """N_DOMAINS distinct host names, the same for every seed."""
    rng = np.random.default_rng(20140101)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < N_DOMAINS:
        k = int(rng.integers(2, 4))
        name = "".join(_DOMAIN_SYLLABLES[int(i)] for i in rng.integers(0, len(_DOMAIN_SYLLABLES), k))
        if rng.random() < 0.3:
            name += "-" + _DOMAIN_SYLLABLES[int(rng.integers(0, len(_DOMAIN_SYLLABLES)))] + "shop"
        host = _HOST_PREFIXES[int(rng.integers(0, len(_HOST_PREFIXES)))] + name + _TLDS[int(rng.integers(0, len(_TLDS)))]
        if host not in seen:
            seen.add(host)
            out.append(host)
    return out
