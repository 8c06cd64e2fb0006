"""A seeded corpus of damaged image files: truncations, bit flips, garbled headers and damaged
chunks, segments, blocks and tags of PNG, APNG, JPEG, GIF, TIFF, WebP and BMP files (some damage
passes the format's own checksums, so it reaches the decoders), plus a few known troublemakers.
`make_fuzz_corpus(folder)` writes it; nothing of it is committed."""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

Damage = Callable[[bytes, random.Random], bytes]


def _picture(seed: int, size: tuple[int, int] = (40, 30)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    img = Image.fromarray(small, "RGB").resize(size, Image.Resampling.BICUBIC)
    arr = np.asarray(img).copy()
    arr[::7] = rng.integers(0, 256, 3, dtype=np.uint8)  # some stripes, so codecs have work
    return Image.fromarray(arr, "RGB")


def _save(img: Image.Image | list[Image.Image], fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    if isinstance(img, list):
        img[0].save(out, fmt, save_all=True, append_images=img[1:], **kw)
    else:
        img.save(out, fmt, **kw)
    return out.getvalue()


def originals() -> list[tuple[str, str, bytes]]:
    """(name, extension, bytes): valid files of many kinds, the material the damage works on."""
    pic, frames = _picture(1), [_picture(i) for i in (2, 3, 4)]
    rgba = pic.convert("RGBA")
    rgba.putalpha(128)
    deep = Image.fromarray(np.asarray(pic.convert("L"), dtype=np.uint16) * 257)
    return [
        ("png-rgb", "png", _save(pic, "PNG")),
        ("png-rgba", "png", _save(rgba, "PNG")),
        ("png-palette", "png", _save(pic.convert("P"), "PNG", transparency=0)),
        ("png-16bit", "png", _save(deep, "PNG")),
        ("png-interlaced", "png", _save(pic, "PNG", interlace=1)),
        ("apng", "png", _save(frames, "PNG", duration=100, loop=0)),
        ("jpeg", "jpg", _save(pic, "JPEG", quality=85)),
        ("jpeg-progressive", "jpg", _save(pic, "JPEG", progressive=True)),
        ("jpeg-grey", "jpg", _save(pic.convert("L"), "JPEG")),
        ("jpeg-cmyk", "jpg", _save(pic.convert("CMYK"), "JPEG")),
        ("jpeg-exif", "jpg", _save(pic, "JPEG", exif=_exif_bytes())),
        ("jpeg-large", "jpg", _save(_picture(8, (400, 300)), "JPEG")),  # decoded reduced
        ("gif", "gif", _save(pic.convert("P"), "GIF")),
        ("gif-animated", "gif", _save([f.convert("P") for f in frames], "GIF", duration=50)),
        ("tiff-raw", "tif", _save(pic, "TIFF")),
        ("tiff-lzw", "tif", _save(pic, "TIFF", compression="tiff_lzw")),
        ("tiff-deflate", "tiff", _save(rgba, "TIFF", compression="tiff_adobe_deflate")),
        ("tiff-jpeg", "tif", _save(pic, "TIFF", compression="jpeg")),
        ("tiff-packbits", "tif", _save(pic.convert("L"), "TIFF", compression="packbits")),
        ("tiff-pages", "tif", _save(frames, "TIFF")),
        ("webp-lossy", "webp", _save(pic, "WEBP", quality=80)),
        ("webp-lossless", "webp", _save(rgba, "WEBP", lossless=True)),
        ("webp-animated", "webp", _save(frames, "WEBP", duration=50)),
        ("bmp", "bmp", _save(pic, "BMP")),
        ("bmp-palette", "bmp", _save(pic.convert("P"), "BMP")),
        ("bmp-1bit", "bmp", _save(pic.convert("1"), "BMP")),
    ]


def _exif_bytes() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0x9003] = "2020:02:29 23:59:59"
    return exif.tobytes()


# -- generic damage ------------------------------------------------------------------------------


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(1, len(data))]


def truncate_header(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(1, min(len(data), 40))]


def flip_bits(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def garble_header(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    start = rng.randrange(0, min(len(out) - 1, 32))
    for i in range(start, min(len(out), start + rng.randint(1, 6))):
        out[i] = rng.randrange(256)
    return bytes(out)


def zero_run(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    start = rng.randrange(len(out))
    end = min(len(out), start + rng.randint(1, 64))
    out[start:end] = bytes(end - start)
    return bytes(out)


def repeat_run(data: bytes, rng: random.Random) -> bytes:
    start = rng.randrange(len(data))
    piece = data[start : start + rng.randint(1, 200)]
    return data[:start] + piece * rng.randint(2, 5) + data[start:]


def _big_or_odd(rng: random.Random, width: int) -> int:
    return rng.choice((0, 1, 2**width - 1, 2 ** (width - 1), rng.randrange(2**width)))


# -- format-aware damage -------------------------------------------------------------------------


def _png_chunks(data: bytes) -> list[tuple[int, int, bytes]]:
    """(offset, length, type) of each chunk of a PNG."""
    chunks, pos = [], 8
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        chunks.append((pos, length, data[pos + 4 : pos + 8]))
        pos += 12 + length
    return chunks


def png_chunk(data: bytes, rng: random.Random) -> bytes:
    """Damage one chunk: its length, its type, its CRC, or its data with a valid CRC (so the
    damage passes verify() and reaches the decoder)."""
    out = bytearray(data)
    pos, length, kind = rng.choice(_png_chunks(data))
    how = rng.choice(("length", "type", "crc", "data", "data", "fields"))
    if how == "length":
        out[pos : pos + 4] = struct.pack(">I", _big_or_odd(rng, 31))
    elif how == "type":
        out[pos + 4 + rng.randrange(4)] = rng.randrange(65, 123)
    elif how == "crc" or length == 0:
        out[pos + 8 + length + rng.randrange(4)] ^= 0xFF
    else:
        body = bytearray(out[pos + 8 : pos + 8 + length])
        if how == "fields" and kind in (b"IHDR", b"acTL", b"fcTL") and len(body) >= 8:
            field = rng.randrange(0, len(body) - 3, 4)  # a 32-bit field (size, frame count...)
            body[field : field + 4] = struct.pack(">I", _big_or_odd(rng, 32))
        else:
            for _ in range(rng.randint(1, 4)):
                body[rng.randrange(len(body))] = rng.randrange(256)
        out[pos + 8 : pos + 8 + length] = body
        crc = zlib.crc32(kind + bytes(body)) & 0xFFFFFFFF
        out[pos + 8 + length : pos + 12 + length] = struct.pack(">I", crc)
    return bytes(out)


def jpeg_segment(data: bytes, rng: random.Random) -> bytes:
    """Damage one marker segment (SOF sizes, Huffman and quantisation tables, SOS, APP)."""
    marks = [i for i in range(2, len(data) - 4) if data[i] == 0xFF and 0xC0 <= data[i + 1] <= 0xFE]
    out = bytearray(data)
    i = rng.choice(marks)
    how = rng.choice(("length", "body", "drop"))
    length = struct.unpack(">H", data[i + 2 : i + 4])[0]
    if how == "length":
        out[i + 2 : i + 4] = struct.pack(">H", _big_or_odd(rng, 16))
    elif how == "drop":
        del out[i : i + 2 + length]
    else:
        for _ in range(rng.randint(1, 4)):
            out[i + 4 + rng.randrange(max(1, length - 2))] = rng.randrange(256)
    return bytes(out)


def gif_block(data: bytes, rng: random.Random) -> bytes:
    """Damage the screen size, the LZW code size, or a sub-block's length."""
    out = bytearray(data)
    how = rng.choice(("screen", "lzw", "block"))
    if how == "screen":
        out[6 + 2 * rng.randrange(2) : 8 + 2 * rng.randrange(2)] = struct.pack(
            "<H", _big_or_odd(rng, 16)
        )
    else:
        at = data.find(b"\x2c")  # image descriptor; the LZW minimum code size follows it
        spot = at + 10 if at >= 0 and how == "lzw" else rng.randrange(13, len(out) - 1)
        out[min(spot, len(out) - 1)] = rng.choice((0, 1, 12, 255, rng.randrange(256)))
    return bytes(out)


def tiff_tag(data: bytes, rng: random.Random) -> bytes:
    """Damage one entry of the first IFD: its tag, type, count or value/offset."""
    endian = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(endian + "I", data[4:8])[0]
    count = struct.unpack(endian + "H", data[ifd : ifd + 2])[0]
    out = bytearray(data)
    entry = ifd + 2 + 12 * rng.randrange(count)
    field = rng.choice(((0, "H", 16), (2, "H", 16), (4, "I", 32), (8, "I", 32)))
    offset, fmt, width = field
    value = _big_or_odd(rng, width) if rng.random() < 0.7 else rng.randrange(0, 4 * len(data))
    out[entry + offset : entry + offset + struct.calcsize(fmt)] = struct.pack(
        endian + fmt, value % 2**width
    )
    return bytes(out)


def webp_chunk(data: bytes, rng: random.Random) -> bytes:
    """Damage the RIFF size, a chunk size, or the bitstream header (frame size and flags)."""
    out = bytearray(data)
    how = rng.choice(("riff", "chunk", "header"))
    if how == "riff":
        out[4:8] = struct.pack("<I", _big_or_odd(rng, 32))
    elif how == "chunk":
        out[16:20] = struct.pack("<I", _big_or_odd(rng, 32))
    else:
        for _ in range(rng.randint(1, 3)):
            out[20 + rng.randrange(min(20, len(out) - 20))] = rng.randrange(256)
    return bytes(out)


def bmp_header(data: bytes, rng: random.Random) -> bytes:
    """Damage one header field: pixel offset, width, height, planes, depth, compression,
    palette size."""
    out = bytearray(data)
    offset, fmt, width = rng.choice(
        ((10, "<I", 32), (18, "<i", 32), (22, "<i", 32), (26, "<H", 16), (28, "<H", 16),
         (30, "<I", 32), (46, "<I", 32))
    )  # fmt: skip
    value = _big_or_odd(rng, width)
    if fmt == "<i":
        value = value - 2**32 if value >= 2**31 else value
    out[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(out)


FORMAT_DAMAGE: dict[str, Damage] = {
    "png": png_chunk,
    "jpg": jpeg_segment,
    "gif": gif_block,
    "tif": tiff_tag,
    "tiff": tiff_tag,
    "webp": webp_chunk,
    "bmp": bmp_header,
}
GENERIC_DAMAGE: list[Damage] = [
    truncate,
    truncate_header,
    flip_bits,
    garble_header,
    zero_run,
    repeat_run,
]


def _chunk(kind_and_body: bytes) -> bytes:
    crc = zlib.crc32(kind_and_body) & 0xFFFFFFFF
    return struct.pack(">I", len(kind_and_body) - 4) + kind_and_body + struct.pack(">I", crc)


def troublemakers() -> list[tuple[str, bytes]]:
    """Known trouble: an APNG claiming zero frames (Pillow's verify() raises IndexError), a
    PNG header claiming a giant picture, an empty file, text named like a picture."""
    png = _save(_picture(7), "PNG")
    ihdr = png[8:33]
    actl = b"acTL" + struct.pack(">II", 0, 0)  # an animation of zero frames, and no image data
    zero_frames = png[:8] + ihdr + _chunk(actl) + png[-12:]
    ihdr = bytearray(png[16:29])
    ihdr[0:8] = struct.pack(">II", 100_000, 100_000)
    giant = png[:16] + bytes(ihdr) + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + png[33:]
    return [
        ("apng-zero-frames.png", zero_frames),
        ("png-giant-header.png", giant),
        ("empty.jpg", b""),
        ("notes.gif", b"this is not a picture\n"),
    ]


def make_fuzz_corpus(folder: Path, per_original: int = 18, seed: int = 0) -> list[Path]:
    """Writes every original, `per_original` damaged versions of each (a third of them
    format-aware) and the troublemakers into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    files: list[tuple[str, bytes]] = []
    for name, ext, data in originals():
        files.append((f"{name}.{ext}", data))
        for k in range(per_original):
            damage = FORMAT_DAMAGE[ext] if k % 3 == 0 else rng.choice(GENERIC_DAMAGE)
            files.append((f"{name}-{damage.__name__}-{k:02d}.{ext}", damage(data, rng)))
    files += troublemakers()
    paths = []
    for name, data in files:
        path = folder / name
        path.write_bytes(data)
        paths.append(path)
    return paths
