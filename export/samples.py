"""Sample inputs for verification and calibration: generated images and a fixed set of captions.

No dataset can be downloaded here, so the images are drawn: gradients, shapes, stripes and noise,
seeded, so that a re-export checks the same inputs. The captions vary in length (one is longer
than CLIP's 77-token context, to exercise truncation) and in content.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

CAPTIONS = [
    "a dog running on the beach",
    "A red car parked in front of a house.",
    "two children playing football in a park",
    "a bowl of soup",
    "snow-covered mountains under a clear blue sky at sunrise",
    "a cat",
    "an old man reading a newspaper on a wooden bench next to a lake",
    "people crossing a busy street in the city at night, with neon signs and taxis",
    "a plate with pasta, tomatoes and basil",
    "black and white photo of a bicycle leaning against a brick wall",
    "x",
    "A group of friends laughing around a campfire while the sun sets behind the pine trees, "
    "one of them plays the guitar, another roasts marshmallows on a long stick, and a dog "
    "sleeps curled up on a blanket near the tents at the edge of the quiet mountain lake",
    "the number 42 written in chalk on a blackboard",
    "ein Hund im Schnee",
    "close-up of a yellow flower with a bee",
    "aerial view of a harbour with sailing boats",
]


def images(count: int, seed: int = 0, size: tuple[int, int] = (320, 240)) -> list[Image.Image]:
    """`count` varied RGB images (not square, so resize and crop are exercised too)."""
    rng = np.random.default_rng(seed)
    out = []
    w, h = size
    for i in range(count):
        kind = i % 4
        if kind == 0:  # smooth two-colour gradient
            a, b = rng.integers(0, 256, size=(2, 3))
            t = np.linspace(0, 1, w)[None, :, None]
            arr = np.broadcast_to(a + (b - a) * t, (h, w, 3))
        elif kind == 1:  # stripes at a random frequency
            freq = rng.uniform(2, 30)
            x = np.sin(np.linspace(0, freq * np.pi, w))[None, :, None]
            arr = np.broadcast_to(128 + 127 * x * rng.uniform(0.3, 1, size=3), (h, w, 3))
        elif kind == 2:  # coloured noise, blurred by down/up sampling
            small = rng.integers(0, 256, size=(h // 16, w // 16, 3)).astype(np.uint8)
            arr = np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))
        else:  # flat background with shapes
            arr = np.full((h, w, 3), rng.integers(0, 256, size=3))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(1, 5))):
            x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
            box = [x0, y0, x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))]
            fill = tuple(int(v) for v in rng.integers(0, 256, size=3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
        out.append(img)
    return out


def captions(count: int = len(CAPTIONS)) -> list[str]:
    """The first `count` captions, cycling with variations when more are asked for."""
    return [
        CAPTIONS[i % len(CAPTIONS)] + ("" if i < len(CAPTIONS) else f" ({i})") for i in range(count)
    ]
