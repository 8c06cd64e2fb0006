"""Recall arithmetic of `clipsearch eval` against a brute-force computation."""

from __future__ import annotations

import numpy as np
import pytest

from clipsearch_onnx.evaluate import ranks_image_to_text, ranks_text_to_image, recall


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute_force(text, image, owner, k):
    """Recall@k both ways by sorting every similarity list (the definition, spelled out)."""
    t2i_hits = 0
    for c in range(len(text)):
        order = sorted(range(len(image)), key=lambda i: -float(text[c] @ image[i]))
        t2i_hits += owner[c] in order[:k]
    i2t_hits = 0
    for i in range(len(image)):
        order = sorted(range(len(text)), key=lambda c: -float(image[i] @ text[c]))
        i2t_hits += any(owner[c] == i for c in order[:k])
    return 100.0 * t2i_hits / len(text), 100.0 * i2t_hits / len(image)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recall_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_images, per_image, dim = 23, 5, 8
    image = _unit(rng, n_images, dim)
    owner = np.repeat(np.arange(n_images), per_image)
    # Captions near their image, with enough noise that recall is neither 0 nor 100.
    text = image[owner] + rng.normal(scale=0.9, size=(len(owner), dim)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    t2i = recall(ranks_text_to_image(text, image, owner))
    i2t = recall(ranks_image_to_text(image, text, owner))
    for k in (1, 5, 10):
        want_t2i, want_i2t = _brute_force(text, image, owner, k)
        assert t2i[f"R@{k}"] == pytest.approx(want_t2i, abs=0.01)
        assert i2t[f"R@{k}"] == pytest.approx(want_i2t, abs=0.01)
    assert 0 < t2i["R@1"] < 100


def test_perfect_and_hopeless_retrieval():
    image = np.eye(4, dtype=np.float32)
    owner = np.array([0, 0, 1, 2, 3])
    assert recall(ranks_text_to_image(image[owner], image, owner))["R@1"] == 100.0
    assert recall(ranks_image_to_text(image, image[owner], owner))["R@1"] == 100.0
    wrong = image[(owner + 1) % 4]
    assert recall(ranks_text_to_image(wrong, image, owner))["R@1"] == 0.0
