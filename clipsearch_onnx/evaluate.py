"""Retrieval quality on a captioned image set: the standard Flickr8k/30k protocol.

Text to image: each caption is a query; it hits at K if its own image ranks within the top K.
Image to text: each image is a query; it hits at K if any of its captions ranks within the top K.
Recall@K in percent, over the test split when one is given (Flickr8k: 1,000 images, 5,000
captions), else over every captioned image. Embeddings are computed afresh (no index involved),
always from the reference decoding (a full decode and the checkpoint's own image processor), so
the figures measure the model and not the decoder's shortcuts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch_onnx.captions import captions_for, read_captions
from clipsearch_onnx.encoder import Encoder
from clipsearch_onnx.errors import ImageError, InputError
from clipsearch_onnx.pipeline import REFERENCE, decoded_batches
from clipsearch_onnx.scan import Found, scan

KS = (1, 5, 10)


@dataclass(frozen=True)
class EvalSet:
    paths: list[str]  # one per image
    captions: list[str]  # every caption, grouped by image
    caption_image: np.ndarray  # index into `paths` of each caption's image

    @classmethod
    def load(
        cls, images: Path, captions_file: Path, split: Path | None = None
    ) -> tuple[EvalSet, list[str]]:
        """The captioned images below `images` (restricted to the names in `split` if given),
        and warnings about captions that could not be used."""
        caption_map, warnings = read_captions(captions_file)
        wanted: set[str] | None = None
        if split is not None:
            try:
                wanted = {ln.strip() for ln in split.read_text(encoding="utf-8").splitlines()}
            except OSError as exc:
                raise InputError(f"cannot read split file {split}: {exc.strerror}") from exc
            wanted.discard("")
        paths: list[str] = []
        caps: list[str] = []
        owners: list[int] = []
        for entry in scan(images):
            if not isinstance(entry, Found):
                continue
            name = entry.relpath.rsplit("/", 1)[-1]
            if wanted is not None and name not in wanted and entry.relpath not in wanted:
                continue
            own = captions_for(entry.relpath, caption_map)
            if not own:
                continue
            owners.extend([len(paths)] * len(own))
            caps.extend(own)
            paths.append(entry.path)
        if not paths:
            raise InputError(f"no captioned images found below {images}")
        return cls(paths, caps, np.array(owners, dtype=np.int64)), warnings


def ranks_text_to_image(text: np.ndarray, image: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """For each caption, how many images score strictly higher than its own image (0 = first)."""
    out = np.empty(len(text), dtype=np.int64)
    for start in range(0, len(text), 4096):
        sims = text[start : start + 4096] @ image.T
        own = sims[np.arange(len(sims)), owner[start : start + 4096]]
        out[start : start + 4096] = (sims > own[:, None]).sum(axis=1)
    return out


def ranks_image_to_text(image: np.ndarray, text: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """For each image, how many captions score strictly higher than its best own caption."""
    out = np.empty(len(image), dtype=np.int64)
    for start in range(0, len(image), 1024):
        sims = image[start : start + 1024] @ text.T
        rows = np.arange(start, start + len(sims))
        own_mask = owner[None, :] == rows[:, None]
        best_own = np.where(own_mask, sims, -np.inf).max(axis=1)
        out[start : start + len(sims)] = (sims > best_own[:, None]).sum(axis=1)
    return out


def recall(ranks: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    return {f"R@{k}": round(100.0 * float((ranks < k).mean()), 2) for k in ks}


def evaluate(
    data: EvalSet,
    encoder: Encoder,
    *,
    batch_size: int = 32,
    workers: int = 2,
    start: Callable[[str, int], None] = lambda stage, total: None,
    advance: Callable[[int], None] = lambda n: None,
) -> dict[str, Any]:
    """Recall@1/5/10 both ways, plus throughput, for one encoder (one model and precision)."""
    start(f"{encoder.precision} images", len(data.paths))
    t0 = time.perf_counter()
    image_emb = np.zeros((len(data.paths), encoder.dim), dtype=np.float32)
    skipped: list[str] = []
    for batch in decoded_batches(
        range(len(data.paths)),
        data.paths.__getitem__,
        encoder.preprocess,
        batch_size,
        workers,
        decoding=REFERENCE,
        fingerprints=False,  # eval stores nothing
    ):
        good = [(i, out) for i, out in batch if not isinstance(out, ImageError)]
        skipped += [
            f"{data.paths[i]}: {out.reason}" for i, out in batch if isinstance(out, ImageError)
        ]
        if good:
            pixels = np.stack([out.pixels for _, out in good])
            image_emb[[i for i, _ in good]] = encoder.embed_pixels(pixels)
        advance(len(batch))
    image_seconds = time.perf_counter() - t0
    start(f"{encoder.precision} captions", len(data.captions))
    t0 = time.perf_counter()
    text_emb = np.concatenate(
        [
            _advance(encoder.embed_texts(data.captions[s : s + 256]), advance)
            for s in range(0, len(data.captions), 256)
        ]
    )
    t2i = ranks_text_to_image(text_emb, image_emb, data.caption_image)
    text_seconds = time.perf_counter() - t0
    i2t = ranks_image_to_text(image_emb, text_emb, data.caption_image)
    return {
        "t2i": recall(t2i),
        "i2t": recall(i2t),
        "images": len(data.paths),
        "captions": len(data.captions),
        "decoding": REFERENCE,
        "images_per_s": round(len(data.paths) / image_seconds, 2),
        "queries_per_s": round(len(data.captions) / text_seconds, 2),
        "skipped": skipped,
    }


def _advance(x: np.ndarray, advance: Callable[[int], None]) -> np.ndarray:
    advance(len(x))
    return x
