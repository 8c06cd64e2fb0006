"""The export's self-check: do the ONNX graphs reproduce PyTorch's embeddings?

Each tower, at each precision, embeds generated images / a fixed set of captions and is compared
row by row (cosine) with PyTorch fp32 `get_image_features` / `get_text_features`. Captions are
run as three batches of different lengths, so the dynamic sequence axis and eos pooling are
checked too. Below a threshold the export is refused (`FidelityError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from export import samples
from export.errors import FidelityError

MIN_FP32_COSINE = 0.9999
MIN_INT8_COSINE = 0.98


@dataclass(frozen=True)
class Thresholds:
    fp32: float = MIN_FP32_COSINE  # per-row minimum, both towers
    int8: float = MIN_INT8_COSINE  # per-row minimum, both towers


@dataclass
class Inputs:
    pixel_values: np.ndarray  # float32 [N,3,S,S]
    texts: list[dict[str, np.ndarray]]  # the tokenizer's feeds, distinct L each for CLIP


def text_feeds(ckpt, texts: list[str]) -> dict[str, np.ndarray]:
    """What the checkpoint's own tokenizer returns for `texts`, as the runtime calls it."""
    enc = ckpt.tokenizer(texts, **ckpt.tokenizer_call, return_tensors="np")
    return {name: np.asarray(enc[name], dtype=np.int64) for name in ckpt.text_inputs}


def sample_inputs(ckpt, images: int = 16, seed: int = 0) -> Inputs:
    pixels = ckpt.image_processor(samples.images(images, seed), return_tensors="np")["pixel_values"]
    caps = samples.captions()
    batches = [caps, caps[:5], ["a cat"]]  # CLIP: padded to 77 (the long one), ~15, 4 tokens
    return Inputs(pixels.astype(np.float32), [text_feeds(ckpt, b) for b in batches])


def reference(ckpt, inputs: Inputs) -> tuple[np.ndarray, list[np.ndarray]]:
    """PyTorch fp32 embeddings of `inputs`: image [N,D], and one [B,D] per text batch."""
    with torch.no_grad():
        image = ckpt.model.get_image_features(pixel_values=torch.from_numpy(inputs.pixel_values))
        texts = [
            ckpt.model.get_text_features(**{k: torch.from_numpy(v) for k, v in f.items()}).numpy()
            for f in inputs.texts
        ]
    return image.numpy(), texts


def check_preprocessing(ckpt, entry: dict, limit: float = 1e-4) -> float:
    """The runtime's pixels (clipsearch_onnx.preprocess, from the manifest's entry) against the
    checkpoint's image processor, on the sample images; raises FidelityError beyond `limit`."""
    from clipsearch_onnx.preprocess import Preprocessor

    pictures = samples.images(8, seed=2) + samples.images(4, seed=3, size=(97, 411))
    want = ckpt.image_processor(pictures, return_tensors="np")["pixel_values"]
    ours = Preprocessor(
        ckpt.image_size,
        entry["resize_shortest_edge"],
        entry["image_mean"],
        entry["image_std"],
        resize=entry["resize"],
        resample=entry["resample"],
        center_crop=entry["center_crop"],
    )(pictures)
    worst = float(np.abs(ours - want).max()) if ours.shape == want.shape else float("inf")
    if not worst <= limit:
        raise FidelityError(
            f"the runtime's preprocessing differs from the checkpoint's image processor "
            f"(max |difference| {worst:.3g}, shapes {ours.shape} vs {want.shape})"
        )
    return worst


def session(path: Path, threads: int = 0):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(den, 1e-30)


def measure(
    vision: Path,
    text: Path,
    inputs: Inputs,
    ref: tuple[np.ndarray, list[np.ndarray]],
    backend: str = "onnxruntime",
) -> dict[str, dict[str, float]]:
    """min/mean cosine of the two graphs, run by `backend` as the runtime runs them, against
    the reference embeddings."""
    from clipsearch_onnx import backends

    ref_image, ref_texts = ref
    got = backends.load(backend, vision, threads=0).run({"pixel_values": inputs.pixel_values})
    _check_shape("vision", got, ref_image)
    image_cos = row_cosines(got, ref_image)
    tower = backends.load(backend, text, threads=0)
    text_cos = []
    for feed, want in zip(inputs.texts, ref_texts, strict=True):
        got = tower.run(feed)
        _check_shape("text", got, want)
        text_cos.append(row_cosines(got, want))
    return {"vision": _summary(image_cos), "text": _summary(np.concatenate(text_cos))}


def backends_to_check() -> list[str]:
    """ONNX Runtime, and OpenVINO where it is installed: every backend that may run the files
    passes the same gate."""
    from clipsearch_onnx import backends

    return [b for b in backends.BACKENDS if b == backends.ONNXRUNTIME or backends.installed(b)]


def check(
    model_dir: Path,
    ckpt,
    files: dict[str, dict[str, str]],
    thresholds: Thresholds,
    backend_files: dict[str, dict[str, dict[str, str]]] | None = None,
) -> dict:
    """Measure every precision in `files` ({precision: {tower: name}}) on every installed
    backend, each running its own files where `backend_files` ({backend: {precision: {tower:
    name}}}) names one; raise below thresholds. A backend's own file below its threshold is
    listed in the result's "rejected" (with its figures) and that backend is measured on the
    usual file instead: the caller must not ship the rejected file."""
    inputs = sample_inputs(ckpt)
    ref = reference(ckpt, inputs)
    result: dict = {
        "reference": f"PyTorch fp32 {type(ckpt.model).__name__}.get_image_features / "
        "get_text_features",
        "metric": "cosine similarity per row, min and mean over the samples",
        "samples": {
            "images": int(inputs.pixel_values.shape[0]),
            "images_from": "generated (gradients, stripes, noise, shapes; seeded)",
            "captions": int(sum(f["input_ids"].shape[0] for f in inputs.texts)),
            "sequence_lengths": [int(f["input_ids"].shape[1]) for f in inputs.texts],
        },
        "text_pooling": ckpt.text_pooling,
        "thresholds": {"fp32_min": thresholds.fp32, "int8_min": thresholds.int8},
    }
    failures = []
    rejected = []
    for backend in backends_to_check():
        # ONNX Runtime's figures stay where they always were; other backends' under their name
        into = result if backend == "onnxruntime" else result.setdefault(backend, {})
        for precision, usual in files.items():
            own = dict((backend_files or {}).get(backend, {}).get(precision, {}))
            limit = thresholds.fp32 if precision == "fp32" else thresholds.int8
            got = _measure_files(model_dir, {**usual, **own}, inputs, ref, backend)
            missed = [tower for tower in own if not got[tower]["min"] >= limit]
            if missed:
                # A backend's own file only makes it faster: one below the gate is not shipped,
                # and the backend runs the usual file instead, which must pass like any other.
                for tower in missed:
                    rejected.append(
                        {"backend": backend, "precision": precision, "tower": tower}
                        | {"file": own.pop(tower), **got[tower], "limit": limit}
                    )
                got = _measure_files(model_dir, {**usual, **own}, inputs, ref, backend)
            for tower, stats in got.items():
                into.setdefault(tower, {})[precision] = stats
                if not stats["min"] >= limit:
                    failures.append(
                        f"{tower} {precision} on {backend}: min cosine {stats['min']:.6f} < {limit}"
                    )
    if rejected:
        result["rejected"] = rejected
    if failures:
        flag = "--min-fp32-cosine / --min-int8-cosine"
        raise FidelityError(
            "exported model drifts from PyTorch: " + "; ".join(failures) + f" (thresholds: {flag})"
        )
    return result


def _measure_files(model_dir: Path, towers: dict[str, str], inputs, ref, backend: str) -> dict:
    return measure(model_dir / towers["vision"], model_dir / towers["text"], inputs, ref, backend)


def _summary(cos: np.ndarray) -> dict[str, float]:
    return {"min": round(float(cos.min()), 6), "mean": round(float(cos.mean()), 6)}


def _check_shape(tower: str, got: np.ndarray, want: np.ndarray) -> None:
    if got.shape != want.shape:
        raise FidelityError(f"{tower} graph returns shape {got.shape}, PyTorch {want.shape}")
