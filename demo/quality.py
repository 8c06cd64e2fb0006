"""How well a model does on the demo data: recall@K and the colour+shape top-10 score.

Numpy only, so the same numbers can be computed from PyTorch embeddings (training) and from the
exported ONNX model or a built index.
"""

from __future__ import annotations

import re

import numpy as np

from demo.data import COLOURS, SHAPES

PHRASINGS = (
    "a {c} {h}",
    "picture of a {c} {h}",
    "{c} {h}",
    "a photo of a small {c} {h}",
    "a big {c} {h}",
    "an image with a {c} {h} in it",
    "there is a {c} {h} on the left",
    "{h}, {c}",
)


def _a(text: str) -> str:
    # "a orange" -> "an orange", "a image" stays as written where the template says "an".
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def colour_shape_queries() -> list[tuple[str, str, str]]:
    """(query, colour, shape) for all colour x shape pairs in every phrasing."""
    return [(_a(p.format(c=c, h=h)), c, h) for c in COLOURS for h in SHAPES for p in PHRASINGS]


def names_both(caption_texts: list[str], colour: str, shape: str) -> bool:
    """Whether one of an image's captions contains both words."""
    for text in caption_texts:
        words = set(re.findall(r"[a-z]+", text.lower()))
        if colour in words and shape in words:
            return True
    return False


def top10_score(
    query_embeds: np.ndarray,
    image_embeds: np.ndarray,
    image_captions: list[list[str]],
    queries: list[tuple[str, str, str]],
) -> float:
    """Mean over queries of how many of the 10 nearest images have a caption with both words."""
    sims = _unit(query_embeds) @ _unit(image_embeds).T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :10]
    hits = [
        sum(names_both(image_captions[j], colour, shape) for j in row)
        for row, (_, colour, shape) in zip(top, queries, strict=True)
    ]
    return float(np.mean(hits))


def recalls(
    image_embeds: np.ndarray, text_embeds: np.ndarray, text_image: np.ndarray, ks=(1, 5, 10)
) -> dict[str, float]:
    """Text-to-image and image-to-text recall@K in percent; `text_image[i]` = image of text i."""
    sims = _unit(text_embeds) @ _unit(image_embeds).T  # [T, I]
    # Rank of the right image for each text: how many images score strictly higher.
    right = sims[np.arange(len(sims)), text_image]
    t2i_rank = (sims > right[:, None]).sum(axis=1)
    # For each image, the best rank among its captions.
    order = np.argsort(-sims.T, axis=1, kind="stable")  # [I, T]
    owner = text_image[order]
    i2t_rank = np.argmax(owner == np.arange(len(order))[:, None], axis=1)
    out = {}
    for k in ks:
        out[f"t2i_R@{k}"] = 100.0 * float(np.mean(t2i_rank < k))
    for k in ks:
        out[f"i2t_R@{k}"] = 100.0 * float(np.mean(i2t_rank < k))
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
