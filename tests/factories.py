"""Build tiny CLIP checkpoints and generated images for tests.

`make_tiny_clip` writes what a hub download of a CLIP model gives (weights, config, slow and fast
tokenizer files, preprocessor config) with a vocabulary learned from a small embedded corpus and
seeded random weights, so export and runtime code run end to end without network access.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from demo.vocab import BOS, EOS, build_clip_vocab

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

DEFAULT_CORPUS = """\
a photo of a dog running on the beach
a black cat sleeping on a red sofa
two children playing football in the park
a man riding a bicycle down a busy street
a woman in a blue dress walking her dog
a brown horse standing in a green field
a group of people sitting around a table eating dinner
a small boat sailing on a calm lake at sunset
a red car parked next to a white building
an old man reading a newspaper on a bench
a little girl jumping into a swimming pool
three birds flying over the mountains
a yellow taxi waiting at a traffic light
snow covered trees in a quiet forest
a surfer catching a big wave in the ocean
a plate of pasta with tomato sauce and basil
a cup of coffee next to a laptop on a wooden desk
the city skyline at night with bright lights
a child holding a balloon at the fair
a dog catching a frisbee in mid air
a close up of a colorful flower in the garden
people waiting for the train at the station
a climber on a steep rock wall
a teenager skateboarding in an empty parking lot
a herd of sheep grazing on a hill
a fisherman pulling a net onto his boat
a baby smiling at the camera
two dogs fighting over a stick
a crowd cheering at a rock concert
a chef cooking in a busy kitchen
an orange and white cat looking out of the window
a girl with long hair wearing sunglasses
boys in uniforms playing basketball indoors
a runner crossing the finish line of a marathon
a snowboarder jumping off a ramp
a bride and groom dancing at their wedding
an airplane taking off from the runway
a bowl of fresh fruit: apples, bananas and grapes
a purple umbrella in the rain
green, blue and gray stripes on a square
a circle, a triangle and a rectangle drawn on paper
the number 7 painted on a door
it's a sunny day; we're going to the zoo!
they've built a castle of sand, haven't they?
i'll meet you at 5 o'clock near the bridge
she'd never seen such a tall giraffe
a pink pig rolling in the mud
a lion resting under a tree in the savanna
an elephant spraying water with its trunk
a monkey eating a banana in the jungle
cars stuck in heavy traffic on the highway
a lighthouse on a rocky coast
children building a snowman in the yard
a woman painting a picture of flowers
a musician playing guitar on the sidewalk
a black and white photo of an old house
a dark room lit by a single candle
noise, gradients and random shapes in many colours
small, large, wide, tall, bright, dark, striped, spotted
"""


def default_corpus() -> list[str]:
    return DEFAULT_CORPUS.splitlines()


def make_tiny_clip(
    out_dir: Path,
    *,
    projection_dim: int = 24,
    image_size: int = 32,
    patch_size: int = 8,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    seed: int = 0,
    vocab_corpus: Iterable[str] | None = None,
    num_merges: int = 300,
    weight_std: float | None = None,
) -> Path:
    """Save a tiny randomly initialised CLIP checkpoint in hub layout into `out_dir`.

    With `weight_std`, every weight matrix and embedding is redrawn from N(0, weight_std) (see
    `make_sensitive_clip`); layer norms and biases keep their initial values."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPTokenizer,
        CLIPTokenizerFast,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = list(vocab_corpus) if vocab_corpus is not None else default_corpus()
    build_clip_vocab(corpus, out_dir, num_merges=num_merges)
    vocab = json.loads((out_dir / "vocab.json").read_text(encoding="utf-8"))
    bos_id, eos_id = vocab[BOS], vocab[EOS]

    common = dict(
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        projection_dim=projection_dim,
    )
    config = CLIPConfig(
        text_config=dict(
            common,
            vocab_size=len(vocab),
            max_position_embeddings=77,
            bos_token_id=bos_id,
            eos_token_id=eos_id,
            pad_token_id=eos_id,
        ),
        vision_config=dict(common, image_size=image_size, patch_size=patch_size),
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    if weight_std is not None:
        with torch.no_grad():
            for param in model.parameters():
                if param.dim() >= 2:
                    param.normal_(0.0, weight_std)
    model.save_pretrained(out_dir, safe_serialization=True)

    slow = CLIPTokenizer(str(out_dir / "vocab.json"), str(out_dir / "merges.txt"))
    slow.save_pretrained(out_dir)
    CLIPTokenizerFast.from_pretrained(out_dir).save_pretrained(out_dir)
    CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    ).save_pretrained(out_dir)
    return out_dir


SENSITIVE_STD = 0.2


def make_sensitive_clip(out_dir: Path, *, image_size: int = 32, seed: int = 0, **kw) -> Path:
    """A tiny CLIP whose weights amplify pixel differences: 4 layers of width 64 whose weight
    matrices are redrawn with std 0.2, so two different pictures have cosine ~0.5 (a stock tiny
    CLIP gives ~0.95 to any pair) and a decoding that moves pixels by a grey level shows in the
    cosine. Decoding fidelity is measured on it (clipsearch_onnx/pipeline.py, bench/decoding.py)."""
    kw = {"patch_size": 8, "hidden": 64, "layers": 4, "heads": 4, **kw}
    return make_tiny_clip(out_dir, image_size=image_size, seed=seed, weight_std=SENSITIVE_STD, **kw)


def draw_shapes(
    draw: ImageDraw.ImageDraw, rng: random.Random, width: int, height: int, count: int
) -> None:
    """`count` rectangles and ellipses of random colours, anywhere in the picture."""
    for _ in range(count):
        x0, x1 = sorted(rng.randrange(width) for _ in range(2))
        y0, y1 = sorted(rng.randrange(height) for _ in range(2))
        fill = tuple(rng.randrange(256) for _ in range(3))
        rng.choice((draw.rectangle, draw.ellipse))((x0, y0, x1, y1), fill=fill)


def _draw_image(rng: random.Random, nprng: np.random.Generator, w: int, h: int) -> Image.Image:
    kind = rng.choice(("shapes", "gradient", "noise"))
    if kind == "gradient":
        c0 = np.array([rng.randrange(256) for _ in range(3)], dtype=np.float32)
        c1 = np.array([rng.randrange(256) for _ in range(3)], dtype=np.float32)
        t = np.linspace(0.0, 1.0, w if rng.random() < 0.5 else h, dtype=np.float32)
        ramp = c0 + (c1 - c0) * t[:, None]
        arr = (
            np.broadcast_to(ramp[None, :, :], (h, w, 3))
            if len(t) == w
            else np.broadcast_to(ramp[:, None, :], (h, w, 3))
        )
        img = Image.fromarray(np.ascontiguousarray(arr).astype(np.uint8), "RGB")
    elif kind == "noise":
        img = Image.fromarray(nprng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    else:
        img = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    draw_shapes(draw, rng, w, h, rng.randint(1, 4))
    return img


def make_images(
    out_dir: Path, n: int, size: tuple[int, int] = (64, 48), seed: int = 0
) -> list[Path]:
    """Write `n` seeded, varied images (shapes, gradients, noise) as JPEG and PNG files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        img = _draw_image(rng, nprng, *size)
        ext = "jpg" if i % 2 == 0 else "png"
        path = out_dir / f"img_{i:04d}.{ext}"
        img.save(path, quality=90) if ext == "jpg" else img.save(path)
        paths.append(path)
    return paths


def detailed_photo(seed: int, width: int, height: int) -> Image.Image:
    """A picture with what makes decoders differ: sharp edges, thin lines, textures of several
    grain sizes and sensor-like noise (harder on a reduced decode than most photos)."""
    rng, nprng = random.Random(seed), np.random.default_rng(seed)
    small = nprng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(small, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    for _ in range(4):
        grain = rng.choice((1, 2, 3, 5, 8))
        tw, th = rng.randrange(width // 8, width // 2), rng.randrange(height // 8, height // 2)
        cells = nprng.integers(0, 256, (max(1, th // grain), max(1, tw // grain), 3), np.uint8)
        texture = Image.fromarray(cells).resize((tw, th), Image.Resampling.NEAREST)
        img.paste(texture, (rng.randrange(width - tw), rng.randrange(height - th)))
    draw = ImageDraw.Draw(img)
    draw_shapes(draw, rng, width, height, rng.randint(10, 30))
    for _ in range(rng.randint(20, 60)):
        ends = [(rng.randrange(width), rng.randrange(height)) for _ in range(2)]
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.line(ends, fill=colour, width=rng.randint(1, max(1, width // 300)))
    noise = nprng.normal(0, 4, (height, width, 1)).astype(np.int16)
    arr = np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def make_detailed_jpegs(
    out_dir: Path, sizes: Iterable[tuple[int, int]], seed: int = 0, quality: int = 90
) -> list[Path]:
    """One `detailed_photo` JPEG per size (kept if already there), seeded."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (width, height) in enumerate(sizes):
        path = out_dir / f"detailed_{seed}_{i:04d}_{width}x{height}.jpg"
        if not path.exists():
            detailed_photo(seed * 100_003 + i, width, height).save(path, quality=quality)
        paths.append(path)
    return paths


def write_captions(path: Path, captions: dict[str, list[str]]) -> Path:
    """A Flickr8k `captions.txt` in token format: `name#k<TAB>caption`."""
    path.write_text(
        "".join(f"{name}#{k}\t{c}\n" for name, cs in captions.items() for k, c in enumerate(cs)),
        encoding="utf-8",
    )
    return path
