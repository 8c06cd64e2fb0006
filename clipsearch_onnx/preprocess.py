"""The models' pixel preprocessing in Pillow + numpy: decoded images -> model input.

Reading and decoding files is clipsearch_onnx/decode.py's; the one way from a file to a vector is
clipsearch_onnx/pipeline.py's.

`Preprocessor` reproduces transformers' `CLIPImageProcessor` (4.57) exactly: bicubic resize of the
shortest side with the long side truncated as `get_resize_output_image_size` does, centre crop
with `center_crop`'s rounding (zero padding when the crop is larger), rescale by 1/255 in float64
then float32, normalise in float32, channels first. With resize="square" and no centre crop it is
`SiglipImageProcessor` (Pillow's resize straight to S x S, bilinear for SigLIP checkpoints). The
export checks it against the checkpoint's own processor (export/verify.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from clipsearch_onnx.decode import to_rgb
from clipsearch_onnx.errors import ModelError

if TYPE_CHECKING:
    from clipsearch_onnx.manifest import Manifest

RESCALE = 1 / 255
RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


class Preprocessor:
    """PIL images -> float32 [B, 3, S, S] pixel values, as transformers' image processors
    compute them: `CLIPImageProcessor` (resize="shortest_edge", bicubic, centre crop) or
    `SiglipImageProcessor` (resize="square": straight to S x S, bilinear, no crop)."""

    def __init__(
        self,
        image_size: int,
        resize_shortest_edge: int,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        resize: str = "shortest_edge",
        resample: str = "bicubic",
        center_crop: bool = True,
    ) -> None:
        if resize not in ("shortest_edge", "square") or resample not in RESAMPLE:
            raise ModelError(f"unknown preprocessing: resize {resize!r}, resample {resample!r}")
        self.image_size = int(image_size)
        self.resize_shortest_edge = int(resize_shortest_edge)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.resize = resize
        self.resample = RESAMPLE[resample]
        self.center_crop = center_crop
        # Every uint8 level of every channel, rescaled and normalised exactly as transformers
        # does it (float64 rescale, float32 normalise): a lookup gives the same bits, faster.
        levels = (np.arange(256, dtype=np.float64) * RESCALE).astype(np.float32)
        self._lut = (levels[None, :] - self.mean[:, None]) / self.std[:, None]

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> Preprocessor:
        spec = manifest.preprocess
        return cls(
            manifest.image_size,
            manifest.resize_shortest_edge,
            manifest.image_mean,
            manifest.image_std,
            resize=spec["resize"],
            resample=spec["resample"],
            center_crop=bool(spec["center_crop"]),
        )

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after the resize: S x S for "square", else the shortest edge to its
        size with the long side truncated like transformers."""
        if self.resize == "square":
            return self.image_size, self.image_size
        short, long = (width, height) if width <= height else (height, width)
        new_short = self.resize_shortest_edge
        new_long = int(new_short * long / short)
        return (new_short, new_long) if width <= height else (new_long, new_short)

    def crop(self, arr: np.ndarray) -> np.ndarray:
        """Centre crop [H, W, C] to S x S with transformers' rounding, zero-padding if smaller."""
        size = self.image_size
        height, width = arr.shape[:2]
        if not self.center_crop or (height, width) == (size, size):
            return arr
        top, left = (height - size) // 2, (width - size) // 2
        if top >= 0 and left >= 0:
            return arr[top : top + size, left : left + size]
        new_h, new_w = max(size, height), max(size, width)
        pad_top, pad_left = -(-(new_h - height) // 2), -(-(new_w - width) // 2)
        padded = np.zeros((new_h, new_w, arr.shape[2]), dtype=arr.dtype)
        padded[pad_top : pad_top + height, pad_left : pad_left + width] = arr
        top, left = top + pad_top, left + pad_left
        return padded[max(0, top) : top + size, max(0, left) : left + size]

    def pixels(
        self,
        image: Image.Image,
        box: tuple[float, float, float, float] | None = None,
        size: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """One image -> float32 [3, S, S]. A reduced decode (clipsearch_onnx.decode) passes the
        region that holds the picture (`box`) and the picture's full `size`, so the geometry is
        that of the full-resolution picture."""
        image = to_rgb(image)
        target = self.resized_size(*(size or image.size))
        resized = image.resize(target, resample=self.resample, box=box)
        arr = self.crop(np.asarray(resized))
        out = np.empty((3, *arr.shape[:2]), dtype=np.float32)
        for channel in range(3):
            np.take(self._lut[channel], arr[..., channel], out=out[channel])
        return out

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        size = self.image_size
        out = np.empty((len(images), 3, size, size), dtype=np.float32)
        for i, image in enumerate(images):
            out[i] = self.pixels(image)
        return out
