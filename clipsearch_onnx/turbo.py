"""JPEG decoding at M/8 scale, by libjpeg-turbo through simplejpeg (a dependency).

libjpeg-turbo decodes a JPEG at any scale M/8 (1/8, 1/4, 3/8, 1/2 ... 7/8) in the DCT domain,
where Pillow's draft mode offers 1/2, 1/4 and 1/8 only. The finer steps let a reduced decode stop
closer to the size FAST decoding needs (clipsearch_onnx/pipeline.py), so the decode and the resize
after it handle fewer pixels: 1.8x fewer for a 12 MP photo at S = 224 (3/8 instead of 1/2).
Without simplejpeg, clipsearch_onnx/decode.py uses Pillow's draft mode. At full scale both give
the same pixels (the same libjpeg-turbo, islow DCT, fancy upsampling); scaled, both stay within the
pipeline's bar.
"""

from __future__ import annotations

from PIL import Image

try:
    import simplejpeg
except ImportError:  # a platform without a simplejpeg wheel
    simplejpeg = None

COLOURSPACES = ("YCbCr", "Gray")  # CMYK and YCCK JPEGs go through Pillow (ink profiles)


def available() -> bool:
    return simplejpeg is not None


def decode_scaled(
    data: bytes, least: tuple[int, int]
) -> tuple[Image.Image, tuple[float, float, float, float]] | None:
    """`data`, a JPEG, decoded at the smallest scale M/8 (M < 8) that leaves it at least `least`
    (width, height) as stored, with the region that holds the whole picture; None when no scale
    below 1 does, for colour spaces left to Pillow, and when libjpeg-turbo reports damage (Pillow
    then decides, as the reference decoding does)."""
    if simplejpeg is None:
        return None
    try:
        height, width, colourspace, _ = simplejpeg.decode_jpeg_header(data)
        if colourspace not in COLOURSPACES or least[0] * 8 > width * 7 or least[1] * 8 > height * 7:
            return None
        arr = simplejpeg.decode_jpeg(data, "RGB", min_width=least[0], min_height=least[1])
    except ValueError:
        return None
    h, w = arr.shape[:2]
    m = next((m for m in range(1, 8) if -(-width * m // 8) == w and -(-height * m // 8) == h), 0)
    if not m:
        return None
    image = Image.frombuffer("RGB", (w, h), arr, "raw", "RGB", 0, 1)  # shares arr's memory
    return image, (0.0, 0.0, width * m / 8, height * m / 8)
