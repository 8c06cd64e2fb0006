"""Generate the demo data set: one coloured shape per image, five captions each, Flickr8k layout.

    dest/Images/demo_00000.jpg ...
    dest/captions.txt                   "demo_00000.jpg#0<TAB>A big red circle on the left ."
    dest/Flickr_8k.trainImages.txt      one file name a line (also dev, test)

Every caption names the shape's colour and shape with those words (the shape in the plural in
two templates of 21); size, position and the framing of the sentence are paraphrased. The output
depends only on (n_images, seed).
"""

from __future__ import annotations

import argparse
import colorsys
import json
import math
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 30, 35),
    "green": (40, 165, 55),
    "blue": (35, 75, 215),
    "yellow": (245, 220, 35),
    "purple": (135, 45, 175),
    "orange": (250, 135, 20),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
SHAPES = ("circle", "square", "triangle", "star")
SIZES = ("small", "large")
POSITIONS = ("left", "right", "top", "bottom", "center")

SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}
POSITION_PHRASES = {
    "left": (
        "on the left",
        "at the left",
        "to the left",
        "on the left side",
        "in the left part of the picture",
        "near the left edge",
    ),
    "right": (
        "on the right",
        "at the right",
        "to the right",
        "on the right side",
        "in the right part of the picture",
        "near the right edge",
    ),
    "top": (
        "at the top",
        "near the top",
        "in the upper part",
        "at the top of the image",
        "up at the top",
        "near the top edge",
    ),
    "bottom": (
        "at the bottom",
        "near the bottom",
        "in the lower part",
        "at the bottom of the image",
        "down at the bottom",
        "near the bottom edge",
    ),
    "center": (
        "in the center",
        "in the middle",
        "in the centre",
        "right in the middle",
        "in the center of the picture",
        "in the middle of the frame",
    ),
}
FRAMES = (
    "",
    "a picture of ",
    "a photo of ",
    "an image of ",
    "there is ",
    "this shows ",
    "a drawing of ",
    "you can see ",
    "a close up of ",
    "someone drew ",
)
BACKGROUND_WORDS = {
    "dark": ("a dark background", "a dark backdrop"),
    "light": ("a light background", "a pale backdrop"),
}
# {f} framing, {a} article + following words, {s} size, {c} colour, {h} shape, {p} position,
# {b} background phrase. Every template contains {c} and {h}.
TEMPLATES = (
    "{f}{a:s c h} {p}",
    "{f}{a:c h} {p}",
    "{f}{a:s c h}",
    "{f}{a:s c h} {p} on {b}",
    "{P}, {f}{a:s c h}",
    "{P} there is {a:s c h}",
    "{f}{a:c h}, {s}, {p}",
    "{a:c h} on {b}, {p}",
    "the {h} is {c} and {s} , {p}",
    "{a:s h} in {c} {p}",
    "{a:s h} coloured {c} , {p}",
    "{c} {h} {p}",
    "{s} {c} {h}",
    "one {s} {c} {h} placed {p}",
    "{a:c h} sits {p}",
    "{f}{a:s c h} shown {p} on {b}",
    "{f}{a:c h}",
    "{a:c h} on {b}",
    "{f}{a:c h} on {b}",
    # plurals, so that "red circles" means something to the model too
    "one of the {c} {h}s , {s} , {p}",
    "{c} {h}s : this one is {s} , {p}",
)


@dataclass(frozen=True)
class Scene:
    colour: str
    shape: str
    size: str
    position: str
    dark_background: bool


def _article(words: str) -> str:
    return ("an " if words[0] in "aeiou" else "a ") + words


ATTRIBUTES = ("colour", "shape", "size", "position", "background")


def _phrases() -> dict[str, dict[str, tuple[str, ...]]]:
    return {
        "colour": {c: (c,) for c in COLOURS},
        "shape": {h: (h, h + "s") for h in SHAPES},
        "size": SIZE_WORDS,
        "position": POSITION_PHRASES,
        "background": {
            k: tuple(p.split(" ", 1)[1] for p in v) for k, v in BACKGROUND_WORDS.items()
        },
    }


def attribute_values() -> dict[str, tuple[str, ...]]:
    """Each attribute's possible values, in a fixed order."""
    return {attribute: tuple(values) for attribute, values in _phrases().items()}


def mentions(text: str) -> dict[str, str]:
    """The attributes a caption names, read back from its words: {"colour": "red", ...}."""
    padded = " " + " ".join(re.findall(r"[a-z]+", text.lower())) + " "
    out = {}
    for attribute, values in _phrases().items():
        found = {v for v, phrases in values.items() if any(f" {p} " in padded for p in phrases)}
        if len(found) == 1:
            out[attribute] = found.pop()
    return out


def caption(scene: Scene, template: str, rng: random.Random) -> str:
    size = rng.choice(SIZE_WORDS[scene.size])
    position = rng.choice(POSITION_PHRASES[scene.position])
    background = rng.choice(BACKGROUND_WORDS["dark" if scene.dark_background else "light"])
    words = {"s": size, "c": scene.colour, "h": scene.shape}
    fields = dict(f=rng.choice(FRAMES), p=position, P=position, b=background, **words)
    text = template
    # "{a:s c h}" -> article + those words, so "an orange" / "a huge" come out right.
    while "{a:" in text:
        start = text.index("{a:")
        end = text.index("}", start)
        spec = " ".join(words[k] for k in text[start + 3 : end].split())
        text = text[:start] + _article(spec) + text[end + 1 :]
    text = text.format_map(fields)
    text = " ".join(text.split())
    text = text[0].upper() + text[1:]
    return text + (" ." if rng.random() < 0.5 else "")


def captions(scene: Scene, rng: random.Random, n: int = 5) -> list[str]:
    out: list[str] = []
    for template in rng.sample(TEMPLATES, len(TEMPLATES)):
        text = caption(scene, template, rng)
        if text.lower().rstrip(" .") not in {c.lower().rstrip(" .") for c in out}:
            out.append(text)
        if len(out) == n:
            break
    return out


def _jitter_colour(rgb: tuple[int, int, int], rng: random.Random) -> tuple[int, int, int]:
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    h = (h + rng.uniform(-0.02, 0.02)) % 1.0
    s = min(1.0, max(0.0, s * rng.uniform(0.85, 1.05)))
    v = min(1.0, max(0.0, v * rng.uniform(0.85, 1.05) if v > 0.1 else v + rng.uniform(0, 0.08)))
    return tuple(round(c * 255) for c in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


def _background_colour(fill: tuple[int, int, int], dark: bool, rng: random.Random) -> np.ndarray:
    """A muted colour, dark or light, far enough from the shape's colour to see the shape."""
    while True:
        h, s = rng.random(), rng.uniform(0.0, 0.35)
        v = rng.uniform(0.12, 0.45) if dark else rng.uniform(0.6, 0.95)
        rgb = np.array(colorsys.hsv_to_rgb(h, s, v)) * 255
        if np.linalg.norm(rgb - np.array(fill)) > 110:
            return rgb


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        corners, radii = 4, [r * 0.85 * math.sqrt(2)] * 4
        angle += math.pi / 4
    elif shape == "triangle":
        corners, radii = 3, [r * 1.1] * 3
    else:  # star
        corners, radii = 10, [r * 1.1 if i % 2 == 0 else r * 0.45 for i in range(10)]
    return [
        (
            cx + radii[i] * math.sin(angle + 2 * math.pi * i / corners),
            cy - radii[i] * math.cos(angle + 2 * math.pi * i / corners),
        )
        for i in range(corners)
    ]


def render(scene: Scene, rng: random.Random, size: int = 96) -> Image.Image:
    fill = _jitter_colour(COLOURS[scene.colour], rng)
    # Backgrounds: dark under light shapes and vice versa for white/black; others vary.
    top = _background_colour(fill, scene.dark_background, rng)
    bottom = np.clip(
        top + rng.uniform(-40, 40) + np.array([rng.uniform(-15, 15) for _ in "rgb"]), 0, 255
    )
    theta = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:size, 0:size] / (size - 1) - 0.5
    t = (xs * math.cos(theta) + ys * math.sin(theta) + 0.71) / 1.42
    background = top * (1 - t[..., None]) + bottom * t[..., None]

    r = size * (rng.uniform(0.14, 0.17) if scene.size == "small" else rng.uniform(0.26, 0.31))
    mid = size / 2
    off = {"left": (-1, 0), "right": (1, 0), "top": (0, -1), "bottom": (0, 1), "center": (0, 0)}
    dx, dy = off[scene.position]
    far = rng.uniform(r + 1, r + size * 0.06)  # distance from the edge: never cut off
    cx = mid + dx * (mid - far) + (0 if dx else rng.uniform(-0.07, 0.07) * size)
    cy = mid + dy * (mid - far) + (0 if dy else rng.uniform(-0.07, 0.07) * size)

    scale = 3  # draw the mask large and shrink it: anti-aliased edges
    mask = Image.new("L", (size * scale, size * scale), 0)
    draw = ImageDraw.Draw(mask)
    if scene.shape == "circle":
        rx, ry = r * scale, r * scale * rng.uniform(0.92, 1.08)
        x, y = cx * scale, cy * scale
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=255)
    else:
        points = _polygon(
            scene.shape,
            cx * scale,
            cy * scale,
            r * scale,
            rng.uniform(-0.3, 0.3),
        )
        draw.polygon(points, fill=255)
    alpha = np.asarray(mask.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255
    shade = 1 + rng.uniform(-0.12, 0.12) * (ys - (cy / size - 0.5)) * 4
    shape_px = np.clip(np.array(fill, dtype=np.float32) * shade[..., None], 0, 255)
    pixels = background * (1 - alpha[..., None]) + shape_px * alpha[..., None]
    nprng = np.random.default_rng(rng.getrandbits(32))
    pixels += nprng.normal(0, rng.uniform(3, 12), pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _scene(rng: random.Random) -> Scene:
    colour = rng.choice(list(COLOURS))
    if colour == "white":
        dark = True
    elif colour == "black":
        dark = False
    elif colour == "yellow":
        dark = rng.random() < 0.7
    else:
        dark = rng.random() < 0.5
    return Scene(colour, rng.choice(SHAPES), rng.choice(SIZES), rng.choice(POSITIONS), dark)


DEFAULT_IMAGES = 8000  # Flickr8k's size
MARKER = ".complete"
SPLITS = {
    "train": "Flickr_8k.trainImages.txt",
    "dev": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}


def generate(dest: Path, n_images: int = DEFAULT_IMAGES, seed: int = 0) -> Path:
    """Write the data set into `dest` (skipped if a complete one with these settings is there)."""
    dest = Path(dest)
    stamp = json.dumps({"n_images": n_images, "seed": seed, "format": 3})
    marker = dest / MARKER
    if marker.is_file() and marker.read_text(encoding="utf-8") == stamp:
        return dest
    images = dest / "Images"
    images.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    for stale in images.glob("demo_*.jpg"):
        stale.unlink()

    rng = random.Random(seed)
    names: list[str] = []
    lines: list[str] = []
    for i in range(n_images):
        scene = _scene(rng)
        name = f"demo_{i:05d}.jpg"
        render(scene, rng).save(images / name, quality=rng.randint(80, 95))
        names.append(name)
        lines += [f"{name}#{k}\t{text}" for k, text in enumerate(captions(scene, rng))]
    (dest / "captions.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    order = names[:]
    random.Random(seed + 1).shuffle(order)
    n_test = n_dev = n_images // 10
    parts = {
        "test": order[:n_test],
        "dev": order[n_test : n_test + n_dev],
        "train": order[n_test + n_dev :],
    }
    for split, file in SPLITS.items():
        (dest / file).write_text("".join(f"{n}\n" for n in sorted(parts[split])), encoding="utf-8")
    marker.write_text(stamp, encoding="utf-8")
    return dest


def read_captions(data_dir: Path) -> dict[str, list[str]]:
    """captions.txt -> {image name: its captions in order}."""
    out: dict[str, list[str]] = {}
    for line in (Path(data_dir) / "captions.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            key, text = line.split("\t", 1)
            out.setdefault(key.rsplit("#", 1)[0], []).append(text)
    return out


def read_split(data_dir: Path, split: str) -> list[str]:
    text = (Path(data_dir) / SPLITS[split]).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.data", description=__doc__.split("\n")[0])
    parser.add_argument("--dest", type=Path, default=Path("data/demo"))
    parser.add_argument("--n-images", type=int, default=DEFAULT_IMAGES)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(generate(args.dest, args.n_images, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
