"""Every model family, exported and run by the runtime alone, gives PyTorch's embeddings.

The reference is what a transformers user computes: the checkpoint's own processor
(AutoProcessor), called as the family's model card says (SigLIP: padding="max_length",
max_length=64; CLIP: padding to the longest, truncated at 77), then get_text_features /
get_image_features. Ours is `clipsearch embed`, run as a command.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from clipsearch_onnx.manifest import Manifest
from tests.factories import make_images
from tests.fixtures_collection import run_cli

TEXTS = [
    "a dog running on the beach",
    "A PHOTO of a Dog!!!",
    "ein Hund läuft am Strand, naß",
    "犬がビーチを走っている 😀",
    "un chien qui court " * 30,  # longer than either family's context: truncated
    "",
]
LIMITS = {"fp32": 0.9999, "int8": 0.98}
FAMILIES = ["siglip", "siglip_v1", "clip16"]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("family-pictures")
    return make_images(folder, 4, size=(90, 61), seed=21) + make_images(
        folder / "tall", 2, size=(40, 130), seed=22
    )


def _reference(ckpt, texts, paths):
    from transformers import AutoModel, AutoProcessor

    processor = AutoProcessor.from_pretrained(ckpt)
    model = AutoModel.from_pretrained(ckpt).eval()
    if model.config.model_type == "siglip":
        call = {"padding": "max_length", "max_length": 64, "truncation": True}
    else:
        call = {"padding": True, "max_length": 77, "truncation": True}
    with torch.no_grad():
        images = processor(images=[Image.open(p) for p in paths], return_tensors="pt")
        image = model.get_image_features(**images).numpy()
        if not texts:
            return None, image, model
        text = processor(text=texts, return_tensors="pt", **call)
        return model.get_text_features(**text).numpy(), image, model


def _embed(model_dir, precision, texts, paths, home, *options):
    args = ["embed", "--model", model_dir, "--precision", precision, *options]
    args += [a for t in texts for a in ("--text", t)] + [a for p in paths for a in ("--image", p)]
    proc = run_cli(*args, home=home)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    text = np.array([r["embedding"] for r in rows if r["kind"] == "text"])
    image = np.array([r["embedding"] for r in rows if r["kind"] == "image"])
    return text, image


def _cosines(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("family", FAMILIES)
def test_embed_matches_pytorch_with_the_checkpoints_own_processor(
    family, request, pictures, tmp_path
):
    exported = request.getfixturevalue(family)
    want_text, want_image, _ = _reference(exported.checkpoint, TEXTS, pictures)
    for precision, limit in LIMITS.items():
        text, image = _embed(exported.model, precision, TEXTS, pictures, tmp_path)
        assert text.shape == want_text.shape and image.shape == want_image.shape
        assert _cosines(text, want_text).min() >= limit, (family, precision, "text")
        assert _cosines(image, want_image).min() >= limit, (family, precision, "image")


def test_embed_matches_pytorch_on_photo_sized_jpegs_on_a_sensitive_checkpoint(
    sensitive_clip, tmp_path
):
    """JPEGs many times the model's input (S = 32), which the bulk commands decode reduced, on
    a checkpoint that amplifies pixel differences: `embed` decodes them the reference way and
    stays at PyTorch's fp32 vectors (issue 16). With the reduced decoding (`--decoding fast`,
    what `embed` did before) the 800x600 one gets 0.99986."""
    from tests.factories import make_detailed_jpegs

    sizes = [(640, 480), (800, 600), (1024, 768), (480, 640), (1600, 1200)]
    paths = make_detailed_jpegs(tmp_path / "jpegs", sizes, seed=5)
    _, want, _ = _reference(sensitive_clip.checkpoint, [], paths)
    _, image = _embed(sensitive_clip.model, "fp32", [], paths, tmp_path)
    assert _cosines(image, want).min() >= LIMITS["fp32"], _cosines(image, want)
    # the test can tell: the reduced decoding misses the bar on these pictures
    _, reduced = _embed(sensitive_clip.model, "fp32", [], paths, tmp_path, "--decoding", "fast")
    assert _cosines(reduced, want).min() < LIMITS["fp32"], _cosines(reduced, want)


def test_manifests_record_what_the_runtime_must_reproduce(siglip, siglip_v1, clip16):
    import onnx

    sig = json.loads((siglip.model / "manifest.json").read_text())
    assert sig["family"] == "siglip"
    assert sig["source"] == {"model": "someone/tiny-siglip", "revision": sig["source"]["revision"]}
    assert len(sig["source"]["revision"]) == 40  # the hub commit the fake returned
    assert sig["preprocess"] == {"resize": "square", "resample": "bilinear", "center_crop": False}
    assert sig["image_mean"] == sig["image_std"] == [0.5, 0.5, 0.5]
    tok = sig["tokenizer"]
    assert (tok["kind"], tok["length"], tok["padding"], tok["pad_token_id"]) == (
        "fast", 64, "max_length", 0,
    )  # fmt: skip
    assert sig["scores"]["kind"] == "sigmoid"
    assert sig["scores"]["logit_scale"] == pytest.approx(math.exp(4.7), rel=1e-5)
    assert sig["scores"]["logit_bias"] == pytest.approx(-16.5)
    inputs = {}
    for name, exported in (("siglip", siglip), ("siglip_v1", siglip_v1), ("clip16", clip16)):
        graph = onnx.load(str(exported.model / "text.onnx"), load_external_data=False).graph
        inputs[name] = [i.name for i in graph.input]
        assert inputs[name] == json.loads((exported.model / "manifest.json").read_text()).get(
            "text_inputs"
        )
    assert inputs == {
        "siglip": ["input_ids", "attention_mask"],
        "siglip_v1": ["input_ids"],  # the v1 tokenizer returns no mask: the model gets none
        "clip16": ["input_ids", "attention_mask"],
    }
    clip = Manifest.load(clip16.model)
    assert (clip.family, clip.embedding_dim, clip.image_size) == ("clip", 40, 112)
    assert clip.preprocess == {
        "resize": "shortest_edge",
        "resample": "bicubic",
        "center_crop": True,
    }
    assert clip.probability(0.3) is None  # CLIP cosines are not probabilities


def test_siglip_probability_is_pytorchs_sigmoid_logit(siglip, pictures, tmp_path):
    want_text, want_image, model = _reference(siglip.checkpoint, TEXTS[:2], pictures[:2])
    with torch.no_grad():
        t = torch.nn.functional.normalize(torch.from_numpy(want_text), dim=-1)
        i = torch.nn.functional.normalize(torch.from_numpy(want_image), dim=-1)
        logits = t @ i.T * model.logit_scale.exp() + model.logit_bias
    manifest = Manifest.load(siglip.model)
    cos = (t @ i.T).numpy()
    ours = np.vectorize(manifest.probability)(cos)
    np.testing.assert_allclose(ours, torch.sigmoid(logits).numpy(), rtol=1e-4, atol=1e-9)


def test_siglip_v1_sentencepiece_tokenizer_is_reproduced_on_random_text(siglip_v1):
    """The converted tokenizer.json (export/siglip_spm.py), as the runtime applies it, against
    the checkpoint's slow SiglipTokenizer on random mixes of cases, punctuation, spaces, scripts."""
    import random

    from transformers import AutoTokenizer

    from clipsearch_onnx.tokenizer import tokenizer_for

    slow = AutoTokenizer.from_pretrained(siglip_v1.checkpoint)
    assert type(slow).__name__ == "SiglipTokenizer"
    ours = tokenizer_for(Manifest.load(siglip_v1.model))
    rng = random.Random(0)
    alphabet = list(" \t\n  abcdeXYZ0189.,!?'-\"()éüñÅß😀犬が一只狗▁<>/＂！") + ["dog ", "Strand "]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90))) for _ in range(300)]
    want = slow(texts, padding="max_length", max_length=64, truncation=True, return_tensors="np")
    got = ours.feeds(texts)
    assert list(got) == ["input_ids"]
    mismatched = [
        t
        for t, a, b in zip(texts, got["input_ids"], want["input_ids"], strict=True)
        if list(a) != list(b)
    ]
    assert not mismatched, mismatched[:3]
