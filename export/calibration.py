"""The pictures the int8 image tower's activation scales are calibrated on.

The image tower is quantised with static activation scales (`quantize.VISION_DEFAULT`): each
activation's range is measured once here, on these pictures, instead of on every batch at run
time. That makes an image's vector independent of the other images in its batch, and costs
nothing per batch. Pictures from `--calibration DIR` (real photos of the kind the model will
index) are best; without it the export's own generated samples are used (seeded, not the ones
the verification step checks on).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.errors import ExportError

COUNT = 64  # 32 and 64 gave the same fidelity on the sensitive tiny CLIP (std 0.2 weights)
BATCH = 8
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


@dataclass
class Calibration:
    feeds: list[dict[str, np.ndarray]]  # batches of pixel_values for the calibrator
    source: str  # what they are, for the manifest


def image_files(folder: Path, count: int = COUNT) -> list[Path]:
    """Up to `count` image files below `folder`, spread evenly over its sorted listing."""
    if not folder.is_dir():
        raise ExportError(f"--calibration {folder}: not a folder")
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not found:
        raise ExportError(f"--calibration {folder}: no image files ({', '.join(EXTENSIONS)})")
    step = max(1, len(found) // count)
    return found[::step][:count]


def load(ckpt, folder: Path | None, count: int = COUNT) -> Calibration:
    """Calibration batches from `folder`'s pictures, else from the generated samples."""
    if folder is None:
        from export import verify

        pixels = verify.sample_inputs(ckpt, images=count, seed=1).pixel_values
        source = f"{len(pixels)} generated sample images (export/samples.py, seed 1)"
    else:
        images = [_open(p) for p in image_files(folder, count)]
        pixels = ckpt.image_processor(images, return_tensors="np")["pixel_values"]
        source = f"{len(images)} images from {folder}"
    pixels = np.asarray(pixels, dtype=np.float32)
    feeds = [{"pixel_values": pixels[i : i + BATCH]} for i in range(0, len(pixels), BATCH)]
    return Calibration(feeds, source)


def _open(path: Path):
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            return ImageOps.exif_transpose(img).convert("RGB")
    except Exception as exc:  # Pillow raises many types for damaged files
        raise ExportError(f"--calibration: cannot read {path}: {exc}") from exc
