"""The default int8 model, through `clipsearch embed` (default backend and decoder), stays at
cosine >= 0.99 of PyTorch fp32 per image and per text on a checkpoint built to amplify any
difference (tiny CLIP, weights redrawn with std 0.2: two pictures have cosine ~0.5)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.factories import make_detailed_jpegs, make_sensitive_clip
from tests.fixtures_collection import run_cli

TEXTS = [
    "a dog running on the beach",
    "two red squares on a white background",
    "ein Hund im Schnee",
    "the number 42 written in chalk on a blackboard, next to a small yellow flower",
]
SIZES = [(500, 375), (640, 480), (375, 500), (1600, 1200)]  # web-sized and a photo

pytestmark = pytest.mark.slow


def test_int8_embed_stays_close_to_pytorch_fp32_on_a_sensitive_checkpoint(tmp_path):
    import torch
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizerFast

    from clipsearch_onnx.decode import load_image
    from export.__main__ import main

    ckpt = make_sensitive_clip(tmp_path / "ckpt", image_size=32, seed=3)
    assert main(["--model", str(ckpt), "--out", str(tmp_path / "model")]) == 0
    paths = make_detailed_jpegs(tmp_path / "jpegs", SIZES, seed=11)
    args = ["embed", "--model", tmp_path / "model", "--precision", "int8"]
    args += [a for t in TEXTS for a in ("--text", t)]
    args += [a for p in paths for a in ("--image", p)]
    proc = run_cli(*args, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    ours = {
        k: np.array([r["embedding"] for r in rows if r["kind"] == k]) for k in ("text", "image")
    }

    model = CLIPModel.from_pretrained(ckpt).eval()
    pixels = CLIPImageProcessor.from_pretrained(ckpt)(
        [load_image(p) for p in paths], return_tensors="pt"
    )["pixel_values"]
    enc = CLIPTokenizerFast.from_pretrained(ckpt)(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = {
            "image": torch.nn.functional.normalize(model.get_image_features(pixel_values=pixels)),
            "text": torch.nn.functional.normalize(model.get_text_features(**enc)),
        }
    for kind in ("image", "text"):
        cos = (ours[kind] * want[kind].numpy()).sum(axis=1)
        assert cos.min() >= 0.99, (kind, cos)
    # sensitive indeed: different pictures are far apart
    sims = want["image"].numpy() @ want["image"].numpy().T
    assert sims[~np.eye(len(paths), dtype=bool)].mean() < 0.8
