"""Photo-sized JPEGs, seeded: smooth colour fields, soft shapes and sensor-like noise at the sizes
cameras and phones produce, saved at quality 90 (what makes decoding cost what it costs)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tests.factories import draw_shapes

# (width, height): 12 MP and 8 MP phones, 5 MP, 3 MP, 2 MP, 1 MP; every fifth turned portrait.
PHOTO_SIZES = [(4000, 3000), (3264, 2448), (2592, 1944), (2048, 1536), (1600, 1200), (1024, 768)]
# Web-sized pictures (Flickr8k's are ~500x375): decoding is cheap, the model dominates.
WEB_SIZES = [(800, 600), (640, 480), (500, 375)]


def photo(rng: random.Random, nprng: np.random.Generator, width: int, height: int) -> Image.Image:
    small = nprng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(small, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    draw_shapes(draw, rng, width, height, rng.randint(3, 8))
    img = img.filter(ImageFilter.GaussianBlur(radius=max(1, width // 800)))
    arr = np.asarray(img, dtype=np.int16)
    noise = nprng.normal(0, 5, (height, width, 1)).astype(np.int16)
    return Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8), "RGB")


def make_photos(
    out_dir: Path, n: int, sizes: list[tuple[int, int]] = PHOTO_SIZES, seed: int = 0
) -> list[Path]:
    """`n` JPEGs in `out_dir` (kept if already there), sizes cycling through `sizes`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        width, height = sizes[i % len(sizes)]
        if i % 5 == 4:
            width, height = height, width
        path = out_dir / f"photo_{i:04d}.jpg"
        if not path.exists():
            rng, nprng = random.Random(seed * 100_003 + i), np.random.default_rng([seed, i])
            photo(rng, nprng, width, height).save(path, quality=90)
        paths.append(path)
    return paths


def linked(paths: list[Path], dest: Path, prefix: str = "") -> Path:
    """A folder of hard links to `paths` (named `prefix` + their names), so that a subset can be
    indexed as a folder."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in paths:
        link = dest / f"{prefix}{path.name}"
        if not link.exists():
            os.link(path, link)
    return dest
