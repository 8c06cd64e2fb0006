"""`python -m bench --only dups`: where `clipsearch dups`' default threshold comes from. For each
model at hand, distinct pictures and copies of some of them (re-encoded as JPEG q=60, half size,
5% cropped off: off one side, off all sides, split at random between the sides, off one side then
halved) are indexed, and every pair's cosine and fingerprint distance (Hamming, bits) is read from
the index: the lowest copy score and the largest copy distance of each kind against the highest
distinct score and the smallest distinct distance, and the distinct pairs the fingerprint rule
would link (within FINGERPRINT_BITS and at least CROP_COSINE).

Models: the sensitive tiny checkpoint of the tests (60 natural-ish pictures: a gradient, shapes,
noise) and the demo model (120 demo images, one per distinct scene: `make demo`'s, else generated)."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.run import say
from clipsearch_onnx.fingerprint import hamming

COPIED = 15  # pictures with copies
KINDS = ("q60", "half", "crop5", "side", "centre", "sidehalf")


def _folder(folder: Path, originals: list[Image.Image]) -> dict[str, int]:
    """Writes the pictures and the copies of the first COPIED; name -> original's number."""
    from tests.factories_dups import cropped, half, reencoded, side_cropped

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    group = {}
    for i, img in enumerate(originals):
        img.save(folder / f"p{i:03d}.png")
        group[f"p{i:03d}.png"] = i
        if i < COPIED:
            reencoded(img).save(folder / f"p{i:03d}-q60.jpg", quality=60)
            half(img).save(folder / f"p{i:03d}-half.png")
            cropped(img, i).save(folder / f"p{i:03d}-crop5.png")
            side_cropped(img, i).save(folder / f"p{i:03d}-side.png")
            cropped(img, i, centred=True).save(folder / f"p{i:03d}-centre.png")
            half(side_cropped(img, i + 1)).save(folder / f"p{i:03d}-sidehalf.png")
            group.update(
                {f"p{i:03d}-{kind}.{'jpg' if kind == 'q60' else 'png'}": i for kind in KINDS}
            )
    return group


def _scores(folder: Path, model: Path, index: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    from clipsearch_onnx.search import open_searcher
    from clipsearch_onnx.settings import Settings

    cmd = [sys.executable, "-m", "clipsearch_onnx", "index", str(folder), "--model", str(model)]
    subprocess.run([*cmd, "--index", str(index), "--rebuild", "-q"], check=True)
    searcher = open_searcher(Settings(index_dir=index))
    items = list(searcher.catalog.items())
    vectors = np.stack([searcher.vector_of(item.id) for item in items])
    searcher.close()
    prints = np.array([item.fingerprint for item in items], dtype=np.int64)
    bits = hamming(prints[:, None], prints[None, :])
    return [Path(item.path).name for item in items], vectors @ vectors.T, bits


def _margins(
    names: list[str], sims: np.ndarray, bits: np.ndarray, group: dict[str, int]
) -> dict[str, Any]:
    from clipsearch_onnx.dups import CROP_COSINE, FINGERPRINT_BITS

    copies: dict[str, list[tuple[float, int]]] = {kind: [] for kind in KINDS}
    distinct = []
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            pair = (float(sims[a, b]), int(bits[a, b]))
            if group[names[a]] != group[names[b]]:
                distinct.append(pair)
            elif "-" not in names[a] or "-" not in names[b]:  # a copy and its original
                kind = (names[b] if "-" in names[b] else names[a]).split("-")[1].split(".")[0]
                copies[kind].append(pair)
    scores = [s for s, _ in distinct]
    return {
        "images": len(names),
        "copies_min": {kind: min(s for s, _ in v) for kind, v in copies.items()},
        "copies_max": {kind: max(s for s, _ in v) for kind, v in copies.items()},
        "copies_bits_max": {kind: max(h for _, h in v) for kind, v in copies.items()},
        "distinct_max": max(scores),
        "distinct_p99": float(np.percentile(scores, 99)),
        "distinct_bits_min": min(h for _, h in distinct),
        "distinct_pairs": len(distinct),
        "distinct_linked": sum(
            1 for s, h in distinct if h <= FINGERPRINT_BITS and s >= CROP_COSINE
        ),
    }


def _demo_originals(cache: Path, n: int = 120) -> list[Image.Image]:
    """Demo images of distinct scenes (their captions' attributes differ): `make demo`'s, else
    600 generated in the cache."""
    from demo.data import generate, mentions

    data = Path("data/demo")
    if not (data / "captions.txt").exists():
        data = generate(cache / "dups-demo-data", n_images=600, seed=0)

    attributes: dict[str, dict[str, str]] = {}
    for line in (data / "captions.txt").read_text().splitlines():
        name, text = line.split("\t", 1)
        attributes.setdefault(name.split("#")[0], {}).update(mentions(text))
    seen, files = set(), []
    for name, attrs in sorted(attributes.items()):
        key = tuple(sorted(attrs.items()))
        if len(attrs) >= 4 and key not in seen:
            seen.add(key)
            files.append(data / "Images" / name)
    random.Random(0).shuffle(files)
    return [Image.open(p).convert("RGB") for p in files[:n]]


def measure(cache: Path) -> dict[str, Any]:
    from export.__main__ import main as export
    from tests.factories import make_sensitive_clip
    from tests.factories_dups import natural_photo

    figures: dict[str, Any] = {}
    sensitive = cache / "dups-sensitive-model"
    if not (sensitive / "manifest.json").exists():
        say("dups: exporting the sensitive tiny checkpoint")
        ckpt = make_sensitive_clip(cache / "dups-sensitive-ckpt", image_size=32)
        export(["--model", str(ckpt), "--out", str(sensitive), "--overwrite"])
    runs = [("sensitive tiny checkpoint", sensitive, [natural_photo(s) for s in range(60)])]
    demo = Path("models/demo")
    if not (demo / "manifest.json").exists():
        from demo.__main__ import COMMITTED

        demo = cache / "dups-demo-model"
        if not (demo / "manifest.json").exists():
            say("dups: exporting the demo model")
            export(["--model", str(COMMITTED), "--out", str(demo), "--overwrite"])
    runs.append(("demo model", demo, _demo_originals(cache)))
    for label, model, originals in runs:
        say(f"dups: {label}, {len(originals)} pictures and copies of {COPIED}")
        folder = cache / f"dups-{model.name}-images"
        group = _folder(folder, originals)
        names, sims, bits = _scores(folder, model, cache / f"dups-{model.name}-index")
        figures[label] = _margins(names, sims, bits, group)
    return figures


def render(figures: dict[str, Any]) -> list[str]:
    from clipsearch_onnx.dups import CROP_COSINE, DEFAULT_THRESHOLD, FINGERPRINT_BITS

    lines = [
        "## Near-duplicate scores (bench/duplicates.py)",
        "",
        f"Cosine of a copy with its original (lowest) against distinct pictures (highest); "
        f"`clipsearch dups` defaults to {DEFAULT_THRESHOLD}.",
        "",
        "| model | images | JPEG q=60 | half size | 5% crop | one side | all sides | "
        "side, halved | distinct max | distinct p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, f in figures.items():
        low = f["copies_min"]
        lines.append(
            f"| {label} | {f['images']} | "
            + " | ".join(f"{low[k]:.4f}" for k in KINDS)
            + f" | {f['distinct_max']:.4f} | {f['distinct_p99']:.4f} |"
        )
    lines += [
        "",
        f"Fingerprint distance (bits of 64) of a copy from its original (largest) against "
        f"distinct pictures (smallest); the fingerprint rule links pairs within "
        f"{FINGERPRINT_BITS} bits scoring >= {CROP_COSINE}.",
        "",
        "| pictures | JPEG q=60 | half size | 5% crop | one side | all sides | side, halved | "
        "distinct min | distinct pairs linked |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, f in figures.items():
        high = f["copies_bits_max"]
        lines.append(
            f"| {label} | "
            + " | ".join(str(high[k]) for k in KINDS)
            + f" | {f['distinct_bits_min']} | {f['distinct_linked']} of {f['distinct_pairs']} |"
        )
    return lines
