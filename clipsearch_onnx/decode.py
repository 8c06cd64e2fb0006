"""Reading image files: bytes -> an upright RGB Pillow image plus the file's facts.

Every failure while reading or decoding one file, whatever Pillow or the codec libraries raise,
becomes an `ImageError(path, reason)`: a bad file is the file's problem, never the run's.

`decode(..., reduce_to=...)` lets libjpeg scale a JPEG down by 1/2, 1/4 or 1/8 while decoding
(its DCT scaling), never below the size `reduce_to` asks for, and says which region of the
smaller image covers the whole picture (`Decoded.box`) so the final resize can be exact in
geometry. How close that stays to a full decode is measured in clipsearch_onnx/pipeline.py.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from clipsearch_onnx import turbo
from clipsearch_onnx.errors import ImageError, InputError

MAX_PIXELS_ENV = "CLIPSEARCH_MAX_PIXELS"
WHITE = (255, 255, 255, 255)
EXIF_IFD, DATE_TIME_ORIGINAL, ORIENTATION = 0x8769, 0x9003, 0x0112
# EXIF orientation -> the turn that makes the picture upright (as ImageOps.exif_transpose does)
TURNS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_DATE = re.compile(r"(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")

# Between Pillow's pixel limit and twice it Pillow only warns; `decode` refuses those itself, so
# the warning would only repeat the refusal. A filter, not catch_warnings(): decoding runs in
# threads and catch_warnings() is not thread-safe.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class FileFacts:
    """What a file says about its picture: the upright full-resolution size, and when it was
    taken (EXIF DateTimeOriginal as 'YYYY-MM-DDTHH:MM:SS', None when absent or malformed)."""

    width: int
    height: int
    taken: str | None = None


@dataclass(frozen=True)
class Decoded:
    """An upright RGB image, possibly reduced while decoding. `box` is the region of `image`
    (in its own pixel coordinates) that holds the whole picture: a reduced decode rounds its
    size up, so the last row or column may cover only part of a pixel of the original."""

    image: Image.Image
    box: tuple[float, float, float, float]
    facts: FileFacts


def max_pixels() -> int | None:
    """The pixel limit of `decode`: $CLIPSEARCH_MAX_PIXELS (0 = none) or Pillow's limit."""
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
        from PIL import ImageCms

        src: ImageCms.ImageCmsProfile | ImageCms.core.CmsProfile
        if img.mode == "LAB":
            src = ImageCms.createProfile("LAB")
        elif img.info.get("icc_profile"):
            src = ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"]))
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


def _exif(img: Image.Image) -> tuple[int, str | None]:
    """(EXIF orientation 1-8, DateTimeOriginal as ISO 8601) of an opened image."""
    try:
        exif = img.getexif()
        orientation = exif.get(ORIENTATION, 1)
        raw = exif.get_ifd(EXIF_IFD).get(DATE_TIME_ORIGINAL)
    except Exception:  # damaged EXIF: no facts from it
        return 1, None
    orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    match = _EXIF_DATE.match(raw.strip()) if isinstance(raw, str) else None
    if match is None:
        return orientation, None
    y, mo, d, h, mi, s = (int(g) for g in match.groups())
    valid = 1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61 and y > 0
    return orientation, f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}" if valid else None


def _stored_size(img: Image.Image) -> tuple[int, int]:
    """The picture's size as stored, before any EXIF turn. Pillow reports a TIFF's size already
    turned (it turns TIFFs while loading), so a TIFF's own width and length tags say it."""
    if img.format == "TIFF":
        tags = getattr(img, "tag_v2", {})
        width, length = tags.get(256), tags.get(257)
        if isinstance(width, int) and isinstance(length, int):
            return width, length
    return img.size


def _whole(size: tuple[int, int]) -> tuple[float, float, float, float]:
    return (0.0, 0.0, float(size[0]), float(size[1]))


def _upright_box(
    box: tuple[float, float, float, float], size: tuple[int, int], orientation: int
) -> tuple[float, float, float, float]:
    """Where `box` (in an image of `size`) lies once the image is turned upright as
    `ImageOps.exif_transpose` does for this EXIF orientation."""
    x0, y0, x1, y1 = box
    w, h = size
    if orientation in (2, 3, 7, 8):  # these mirror x (before any swap of the axes)
        x0, x1 = w - x1, w - x0
    if orientation in (3, 4, 6, 7):  # these mirror y
        y0, y1 = h - y1, h - y0
    if orientation in (5, 6, 7, 8):  # these swap the axes
        x0, y0, x1, y1 = y0, x0, y1, x1
    return (x0, y0, x1, y1)


def _open(path: Path | str, fh, limit: int | None) -> Image.Image:
    img = Image.open(fh)
    width, height = img.size
    if limit is not None and width * height > limit:
        raise ImageError(path, _too_large(f"{width}x{height} = {width * height:,} pixels", limit))
    if img.format == "PNG":
        # Decoding skips chunk CRCs; verify() checks them, so damaged PNGs are refused.
        img.verify()
        fh.seek(0)
        img = Image.open(fh)
    return img


def decode(
    path: Path | str,
    *,
    data: bytes | None = None,
    reduce_to: Callable[[int, int], tuple[int, int]] | None = None,
) -> Decoded:
    """Open and fully decode an image file (or `data`, the bytes of `path`), upright and RGB;
    raise ImageError naming the reason for anything that goes wrong.

    Animated images give their first frame. With `reduce_to`, a JPEG is decoded at a reduced
    scale (M/8 with simplejpeg, else 1/2, 1/4 or 1/8) if that leaves it at least
    `reduce_to(width, height)` (upright full size in, smallest acceptable upright size out)."""
    limit = max_pixels()
    try:
        if data is None:
            data = Path(path).read_bytes()
        # Our own file handle: Pillow never holds it past this block, even for animations.
        with io.BytesIO(data) as fh:
            img = header = _open(path, fh, limit)
            stored = _stored_size(img)
            reduced = None
            if reduce_to is not None and img.format == "JPEG":
                # A JPEG's EXIF is in its header. (Other formats may decode the whole picture to
                # find theirs, and hide a decoding error while at it: they are read after load.)
                turned = _exif(img)[0] >= 5
                w, h = reduce_to(*(stored[::-1] if turned else stored))
                least = (h, w) if turned else (w, h)
                scaled = turbo.decode_scaled(data, least) if img.mode in ("RGB", "L") else None
                if scaled is not None:
                    img, reduced = scaled
                else:  # Pillow's draft mode: 1/2, 1/4 or 1/8 only
                    drafted = img.draft("RGB", least)
                    reduced = drafted[1] if drafted is not None else None
            img.load()  # decode everything now, so a truncated file fails here
            box = reduced or _whole(img.size)
            orientation, taken = _exif(header)  # Pillow may have turned it while loading (TIFF)
            full = stored[::-1] if orientation >= 5 else stored
            if orientation != 1:
                box = _upright_box(box, img.size, orientation)
                img = img.transpose(TURNS[orientation])
            if reduced is None:
                full = img.size  # exactly what was decoded, upright
            facts = FileFacts(full[0], full[1], taken)
        return Decoded(to_rgb(img), box, facts)
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of one file is that file's
        raise ImageError(path, reason(exc, limit)) from None


def reason(exc: BaseException, limit: int | None = None) -> str:
    """One line saying why a file could not be read or decoded."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not an image file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, Image.DecompressionBombError):
        return _too_large(text.split(",")[0], limit)
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not an image, or a format Pillow cannot read"
    if isinstance(exc, MemoryError):
        return "cannot decode: out of memory"
    if isinstance(exc, OSError):
        text = text or type(exc).__name__
        if "truncated" in text.lower() or "broken data stream" in text:
            return f"cannot decode: truncated or damaged image data ({text})"
        return f"cannot decode: {text}"
    if isinstance(exc, (SyntaxError, ValueError, EOFError)):
        return f"cannot decode: {text or type(exc).__name__}"
    # Anything else is a decoder's own bug tripped by this file's data (IndexError, struct.error,
    # ZeroDivisionError...): name the exception, it is all the user can report upstream.
    return f"cannot decode: {type(exc).__name__}: {text}" if text else type(exc).__name__


def load_image(
    path: Path | str, *, data: bytes | None = None, draft: bool = False, min_side: int = 224
) -> Image.Image:
    """The upright RGB image in a file (raises ImageError). With `draft`, a JPEG may be decoded
    at a reduced scale that leaves both sides at least `min_side` pixels (for pictures to look
    at, not to embed: embedding goes through clipsearch_onnx.pipeline)."""
    reduce_to = (lambda w, h: (min_side, min_side)) if draft else None
    return decode(path, data=data, reduce_to=reduce_to).image


def check_header(fh: BinaryIO, path: Path | str) -> None:
    """Raise ImageError unless an open file's header is one Pillow can decode (reads the header
    alone, not the file), or it states more pixels than the limit allows."""
    limit = max_pixels()
    try:
        with Image.open(fh) as img:
            width, height = img.size
    except Exception as exc:  # noqa: BLE001 - whatever the header does, it is this file's
        raise ImageError(path, reason(exc, limit)) from None
    if limit is not None and width * height > limit:
        raise ImageError(path, _too_large(f"{width}x{height} = {width * height:,} pixels", limit))


def read_facts(path: Path | str) -> FileFacts:
    """A file's facts from its header alone (no pixel decoding); raises ImageError."""
    try:
        with open(path, "rb") as fh:
            img = Image.open(fh)
            orientation, taken = _exif(img)
            width, height = _stored_size(img)
    except Exception as exc:  # noqa: BLE001
        raise ImageError(path, reason(exc)) from None
    return FileFacts(*((height, width) if orientation >= 5 else (width, height)), taken)
