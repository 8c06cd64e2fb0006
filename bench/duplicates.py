"""`python -m bench --only dups`: where `clipsearch dups`' default threshold comes from. For each
model at hand, distinct pictures and copies of some of them (re-encoded as JPEG q=60, half size,
5% of width and height cropped off) are indexed, and every pair's cosine is read from the stored
embeddings: the lowest copy score of each kind against the highest distinct score.

Models: the sensitive tiny checkpoint of the tests (60 natural-ish pictures: a gradient, shapes,
noise) and, when `make demo` has made it, the demo model (demo images, one per distinct scene)."""

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

COPIED = 15  # pictures with copies
KINDS = ("q60", "half", "crop5")


def _folder(folder: Path, originals: list[Image.Image]) -> dict[str, int]:
    """Writes the pictures and the copies of the first COPIED; name -> original's number."""
    from tests.factories_dups import cropped, half, reencoded

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
            group.update(
                {f"p{i:03d}-{kind}.{'jpg' if kind == 'q60' else 'png'}": i for kind in KINDS}
            )
    return group


def _scores(folder: Path, model: Path, index: Path) -> tuple[list[str], np.ndarray]:
    from clipsearch_onnx.search import open_searcher
    from clipsearch_onnx.settings import Settings

    cmd = [sys.executable, "-m", "clipsearch_onnx", "index", str(folder), "--model", str(model)]
    subprocess.run([*cmd, "--index", str(index), "--rebuild", "-q"], check=True)
    searcher = open_searcher(Settings(index_dir=index))
    items = list(searcher.catalog.items())
    vectors = np.stack([searcher.vector_of(item.id) for item in items])
    searcher.close()
    return [Path(item.path).name for item in items], vectors @ vectors.T


def _margins(names: list[str], sims: np.ndarray, group: dict[str, int]) -> dict[str, Any]:
    copies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    distinct = []
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            if group[names[a]] != group[names[b]]:
                distinct.append(float(sims[a, b]))
            elif "-" not in names[a] or "-" not in names[b]:  # a copy and its original
                kind = (names[b] if "-" in names[b] else names[a]).split("-")[1].split(".")[0]
                copies[kind].append(float(sims[a, b]))
    return {
        "images": len(names),
        "copies_min": {kind: min(v) for kind, v in copies.items()},
        "copies_max": {kind: max(v) for kind, v in copies.items()},
        "distinct_max": max(distinct),
        "distinct_p99": float(np.percentile(distinct, 99)),
    }


def _demo_originals(n: int = 120) -> list[Image.Image] | None:
    """Demo images of distinct scenes (their captions' attributes differ), if `make demo` ran."""
    data = Path("data/demo")
    if not (data / "captions.txt").exists():
        return None
    from demo.data import mentions

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
    demo = _demo_originals()
    if demo is not None and (Path("models/demo") / "manifest.json").exists():
        runs.append(("demo model", Path("models/demo"), demo))
    for label, model, originals in runs:
        say(f"dups: {label}, {len(originals)} pictures and copies of {COPIED}")
        folder = cache / f"dups-{model.name}-images"
        group = _folder(folder, originals)
        names, sims = _scores(folder, model, cache / f"dups-{model.name}-index")
        figures[label] = _margins(names, sims, group)
    return figures


def render(figures: dict[str, Any]) -> list[str]:
    from clipsearch_onnx.dups import DEFAULT_THRESHOLD

    lines = [
        "## Near-duplicate scores (bench/duplicates.py)",
        "",
        f"Cosine of a copy with its original (lowest) against distinct pictures (highest); "
        f"`clipsearch dups` defaults to {DEFAULT_THRESHOLD}.",
        "",
        "| model | images | JPEG q=60 | half size | 5% crop | distinct max | distinct p99 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, f in figures.items():
        low = f["copies_min"]
        lines.append(
            f"| {label} | {f['images']} | {low['q60']:.4f} | {low['half']:.4f} | "
            f"{low['crop5']:.4f} | {f['distinct_max']:.4f} | {f['distinct_p99']:.4f} |"
        )
    return lines
