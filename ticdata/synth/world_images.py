"""The images of the synthetic world: each pair drawn as pixels and JPEG bytes on request (what
`tic serve-images` sends), and a labelled strip of one concept across the steps for the README.

A picture is the step's background gradient with the concept's shape in its texture and hue at
the pair's place, size and rotation, antialiased; same arguments, same bytes.
"""

from __future__ import annotations

import io
import logging
import math
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np

from ticdata.storage import write_bytes_atomic
from ticdata.synth.world_concepts import HUES, SHAPES, TEXTURES, hsv, world
from ticdata.synth.world_pairs import instance_params

log = logging.getLogger(__name__)

IMAGE_SIZE = 64
JPEG_QUALITY = 90
MIN_SIZE, MAX_SIZE = 8, 1024  # ?size=N accepted by render and the server


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
        light_rgb = np.asarray(hsv(p.hue, 0.85, min(1.0, 0.93 + p.value_jitter)), np.float32)
        dark_rgb = np.asarray(hsv(p.hue, 0.95, 0.42 + p.value_jitter), np.float32)
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
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    out_png = Path(out_png)
    write_bytes_atomic(out_png, buf.getvalue())
    return out_png
