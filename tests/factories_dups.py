"""Natural-ish pictures (a gradient, soft shapes, sensor noise) and the copies `clipsearch dups`
must find: re-encoded as JPEG q=60, resized to half, cropped by 5%."""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tests.factories import draw_shapes


def natural_photo(seed: int, width: int = 320, height: int = 240) -> Image.Image:
    rng, nprng = random.Random(seed), np.random.default_rng(seed)
    c0, c1 = (np.array([rng.randrange(256) for _ in range(3)], np.float32) for _ in range(2))
    angle = rng.random() * 2 * np.pi
    yy, xx = np.mgrid[0:height, 0:width]
    t = xx * np.cos(angle) + yy * np.sin(angle)
    t = (t - t.min()) / (t.max() - t.min())
    img = Image.fromarray((c0 + (c1 - c0) * t[..., None]).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    draw_shapes(draw, rng, width, height, rng.randint(3, 8))
    img = img.filter(ImageFilter.GaussianBlur(1))
    noisy = np.asarray(img, np.int16) + nprng.normal(0, 6, (height, width, 1)).astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def reencoded(img: Image.Image, quality: int = 60) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def half(img: Image.Image) -> Image.Image:
    return img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)


def cropped(
    img: Image.Image, seed: int, fraction: float = 0.05, centred: bool = False
) -> Image.Image:
    """`fraction` of the width and of the height cut off, split at random between the sides
    (`centred`: evenly)."""
    rng = random.Random(seed)
    dx, dy = round(fraction * img.width), round(fraction * img.height)
    left, top = (dx // 2, dy // 2) if centred else (rng.randint(0, dx), rng.randint(0, dy))
    return img.crop((left, top, img.width - (dx - left), img.height - (dy - top)))


def side_cropped(img: Image.Image, side: int, fraction: float = 0.05) -> Image.Image:
    """`fraction` of the picture cut off one side: 0 left, 1 top, 2 right, 3 bottom."""
    w, h = img.size
    dx, dy = round(fraction * w), round(fraction * h)
    box = [(dx, 0, w, h), (0, dy, w, h), (0, 0, w - dx, h), (0, 0, w, h - dy)][side % 4]
    return img.crop(box)
