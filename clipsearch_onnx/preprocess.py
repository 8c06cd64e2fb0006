"""Reading images into RGB, and the models' pixel preprocessing in Pillow + numpy.

`Preprocessor` reproduces transformers' `CLIPImageProcessor` (4.57) exactly: bicubic resize of the
shortest side with the long side truncated as `get_resize_output_image_size` does, centre crop
with `center_crop`'s rounding (zero padding when the crop is larger), rescale by 1/255 in float64
then float32, normalise in float32, channels first. With resize="square" and no centre crop it is
`SiglipImageProcessor` (Pillow's resize straight to S x S, bilinear for SigLIP checkpoints). The
export checks it against the checkpoint's own processor (export/verify.py).
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

from clipsearch_onnx.errors import ImageError, InputError, ModelError

if TYPE_CHECKING:
    from clipsearch_onnx.manifest import Manifest

MAX_PIXELS_ENV = "CLIPSEARCH_MAX_PIXELS"
RESCALE = 1 / 255
WHITE = (255, 255, 255, 255)


def max_pixels() -> int | None:
    """The pixel limit of `load_image`: $CLIPSEARCH_MAX_PIXELS (0 = none) or Pillow's limit."""
    env = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not env:
        return Image.MAX_IMAGE_PIXELS
    try:
        value = int(float(env))
    except ValueError:
        raise InputError(
            f"{MAX_PIXELS_ENV} must be a number of pixels (0 for no limit), not {env!r}"
        ) from None
    limit = value if value > 0 else None
    # Pillow refuses images above twice its own limit before we see them: lift it to ours.
    Image.MAX_IMAGE_PIXELS = limit
    return limit


def _too_large(detail: str, limit: int | None) -> str:
    return (
        f"too large: {detail}, over the limit of {limit:,} pixels that guards against "
        f"decompression bombs; raise it with {MAX_PIXELS_ENV}=N (0 for no limit) "
        "or PIL.Image.MAX_IMAGE_PIXELS"
    )


def _stretch_to_8bit(img: Image.Image) -> Image.Image:
    """Single-channel 16-bit, 32-bit integer or float image -> "L" without clipping."""
    arr = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16"):
        lo, hi = 0.0, 65535.0  # the type's own range keeps the picture's brightness
    else:
        finite = arr[np.isfinite(arr)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if hi > lo:
        arr = (arr - lo) * (255.0 / (hi - lo))
    arr = np.nan_to_num(arr, nan=0.0, posinf=255.0, neginf=0.0)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")


def _profile_to_srgb(img: Image.Image) -> Image.Image | None:
    """CMYK with an embedded ICC profile, or CIELAB, -> sRGB via littleCMS; None if impossible."""
    try:
        from io import BytesIO

        from PIL import ImageCms

        src: ImageCms.ImageCmsProfile | ImageCms.core.CmsProfile
        if img.mode == "LAB":
            src = ImageCms.createProfile("LAB")
        elif img.info.get("icc_profile"):
            src = ImageCms.ImageCmsProfile(BytesIO(img.info["icc_profile"]))
        else:
            return None
        return ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except Exception:  # no littleCMS, or a broken profile: the plain formula will do
        return None


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparent parts are composited over white."""
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _stretch_to_8bit(img).convert("RGB")
    if mode in ("CMYK", "LAB"):
        # Pillow's own CMYK formula ignores the ink profile and its LAB conversion is wrong.
        converted = _profile_to_srgb(img)
        return converted if converted is not None else img.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", img.size, WHITE), rgba).convert("RGB")
    return img.convert("RGB")


def load_image(
    path: Path | str, *, data: bytes | None = None, draft: bool = False, min_side: int = 224
) -> Image.Image:
    """Open, fully decode and upright an image as RGB, or raise ImageError naming the reason.

    With `data`, decode those bytes (already read from `path`, which then only names the file).

    Animated images give their first frame. With `draft`, JPEGs are decoded at a reduced scale
    (1/2, 1/4 or 1/8) that still leaves both sides at least `min_side` pixels.
    """
    limit = max_pixels()
    try:
        # Our own file handle: Pillow never holds it past this block, even for animations.
        with io.BytesIO(data) if data is not None else open(path, "rb") as fh:
            with warnings.catch_warnings():
                # Between Pillow's limit and twice it Pillow only warns; we refuse below.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(fh)
            width, height = img.size
            if limit is not None and width * height > limit:
                detail = f"{width}x{height} = {width * height:,} pixels"
                raise ImageError(path, _too_large(detail, limit))
            if img.format == "PNG":
                # Decoding skips chunk CRCs; verify() checks them, so damaged PNGs are refused.
                img.verify()
                fh.seek(0)
                img = Image.open(fh)
            if draft and img.format == "JPEG":
                img.draft("RGB", (min_side, min_side))
            img.load()  # decode everything now, so a truncated file fails here
            try:
                ImageOps.exif_transpose(img, in_place=True)
            except Exception:  # unreadable EXIF: keep the stored orientation
                pass
        return to_rgb(img)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageError(path, "is a directory, not an image file") from None
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(path, _too_large(str(exc).split(",")[0], limit)) from None
    except Image.UnidentifiedImageError:
        raise ImageError(path, "not an image, or a format Pillow cannot read") from None
    except OSError as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower() or "broken data stream" in reason:
            reason = f"truncated or damaged image data ({reason})"
        raise ImageError(path, f"cannot decode: {reason}") from None
    except (SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ImageError(path, f"cannot decode: {exc or type(exc).__name__}") from None


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

    def pixels(self, image: Image.Image) -> np.ndarray:
        """One image -> float32 [3, S, S]."""
        image = to_rgb(image)
        resized = image.resize(self.resized_size(*image.size), resample=self.resample)
        arr = self.crop(np.asarray(resized))
        scaled = (arr.astype(np.float64) * RESCALE).astype(np.float32)
        return ((scaled - self.mean) / self.std).transpose(2, 0, 1)

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        size = self.image_size
        out = np.empty((len(images), 3, size, size), dtype=np.float32)
        for i, image in enumerate(images):
            out[i] = self.pixels(image)
        return out
