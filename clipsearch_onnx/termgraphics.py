"""Pictures in a terminal: which way to draw them, and the encoders for each way.

- `kitty`: the Kitty graphics protocol (kitty, WezTerm, Ghostty): a PNG, base64 in chunks.
- `sixel`: DEC Sixel (foot, mlterm, recent xterm, iTerm2, Windows Terminal...): a palette of up to
  256 colours, six pixel rows per band, run-length coded.
- `blocks`: every other colour terminal: the upper half block `▀` with 24-bit foreground (top
  pixel) and background (bottom pixel) colours, two pixels per cell.

Detection reads the environment only (asking the terminal means reading its answer from stdin,
which a pipeline may own): graphics where the terminal is known to have them, half blocks
elsewhere; `CLIPSEARCH_GRAPHICS` overrides it. Shared by the CLI's `--preview` and the TUI
(Pillow and the standard library only).
"""

from __future__ import annotations

import base64
import io
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from PIL import Image

KITTY, SIXEL, BLOCKS = "kitty", "sixel", "blocks"
MODES = (KITTY, SIXEL, BLOCKS)
ENV = "CLIPSEARCH_GRAPHICS"  # kitty | sixel | blocks | none: overrides detection
CELL_PIXELS = (10, 20)  # a cell's size in pixels when the terminal does not say
KITTY_CHUNK = 4096  # payload bytes per escape sequence (the protocol's limit)
UPPER_HALF = "▀"

_SIXEL_TERMS = ("foot", "mlterm", "yaft", "contour", "xterm-sixel")
_SIXEL_PROGRAMS = ("iTerm.app", "mintty", "Black Box")


def detect(environ: Mapping[str, str] | None = None) -> str:
    """The way to draw pictures in the terminal `environ` describes (default: os.environ)."""
    env = os.environ if environ is None else environ
    term, program = env.get("TERM", ""), env.get("TERM_PROGRAM", "")
    if (
        env.get("KITTY_WINDOW_ID")
        or term in ("xterm-kitty", "xterm-ghostty")
        or program in ("WezTerm", "ghostty")
    ):
        return KITTY
    if term.startswith(_SIXEL_TERMS) or program in _SIXEL_PROGRAMS:
        return SIXEL
    return BLOCKS


def choose(
    requested: str | None, is_tty: bool, environ: Mapping[str, str] | None = None
) -> str | None:
    """The mode to draw in, or None for no pictures. `requested` is a mode (forced, even when
    the output is not a terminal) or None/"auto" (detected, and only on a terminal); a mode in
    CLIPSEARCH_GRAPHICS ("none" for no pictures) replaces detection."""
    if requested in MODES:
        return requested
    env = os.environ if environ is None else environ
    override = env.get(ENV, "").strip().lower()
    if override == "none" or not is_tty:
        return None
    if override in MODES:
        return override
    return detect(env)


def cell_pixels(stream: IO[Any]) -> tuple[int, int]:
    """A cell's size in pixels as the terminal `stream` writes to reports it, else CELL_PIXELS."""
    try:
        import fcntl
        import struct
        import termios

        packed = fcntl.ioctl(stream.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        rows, cols, xpix, ypix = struct.unpack("HHHH", packed)
    except (ImportError, OSError, ValueError):  # no terminal, or no file descriptor at all
        return CELL_PIXELS
    if rows and cols and xpix >= cols and ypix >= rows:
        return xpix // cols, ypix // rows
    return CELL_PIXELS


def cell_grid(size: tuple[int, int], max_cols: int, max_rows: int) -> tuple[int, int]:
    """Columns and rows that show a picture of `size` pixels as large as fits, aspect kept, in
    cells twice as tall as wide."""
    w, h = size
    scale = min(max_cols / w, 2 * max_rows / h)
    return max(1, min(max_cols, round(w * scale))), max(1, min(max_rows, round(h * scale / 2)))


def thumbnail(path: str | Path, side: int = 640) -> Image.Image:
    """The upright RGB picture at `path`, at most `side` pixels on a side (raises ImageError)."""
    from clipsearch_onnx.decode import load_image

    img = load_image(path, draft=True, min_side=side)
    img.thumbnail((side, side), Image.Resampling.LANCZOS)
    return img


def render(mode: str, img: Image.Image, cols: int, rows: int, cell: tuple[int, int]) -> str:
    """`img` drawn in `cols` x `rows` cells from the cursor; the cursor ends on the picture's
    last row (write a newline to go on below it)."""
    if mode == KITTY:
        return kitty(img, cols, rows, cell)
    if mode == SIXEL:
        return sixel(img, cols, rows, cell)
    return "\n".join(half_blocks(img, cols, rows))


def half_blocks(img: Image.Image, cols: int, rows: int) -> list[str]:
    """`rows` lines of `cols` cells, each `▀` coloured with the pixel above (foreground) and
    below (background); colours are set only where they change, and reset at each line end."""
    rgb = img.convert("RGB").resize((cols, 2 * rows), Image.Resampling.BOX).tobytes()
    line_bytes = 3 * cols
    lines = []
    for y in range(rows):
        top = rgb[2 * y * line_bytes : (2 * y + 1) * line_bytes]
        bottom = rgb[(2 * y + 1) * line_bytes : (2 * y + 2) * line_bytes]
        parts, previous = [], b""
        for x in range(0, line_bytes, 3):
            colours = top[x : x + 3] + bottom[x : x + 3]
            if colours != previous:
                r, g, b, r2, g2, b2 = colours
                parts.append(f"\x1b[38;2;{r};{g};{b};48;2;{r2};{g2};{b2}m")
                previous = colours
            parts.append(UPPER_HALF)
        lines.append("".join(parts) + "\x1b[0m")
    return lines


def kitty(img: Image.Image, cols: int, rows: int, cell: tuple[int, int] = CELL_PIXELS) -> str:
    """The Kitty graphics protocol: transmit a PNG and show it in `cols` x `rows` cells. `q=2`
    keeps the terminal from answering on stdin."""
    png = io.BytesIO()
    img.convert("RGB").resize(_pixels(cols, rows, cell), Image.Resampling.LANCZOS).save(png, "PNG")
    data = base64.standard_b64encode(png.getvalue()).decode("ascii")
    chunks = [data[i : i + KITTY_CHUNK] for i in range(0, len(data), KITTY_CHUNK)] or [""]
    out = []
    for i, chunk in enumerate(chunks):
        more = int(i < len(chunks) - 1)
        keys = f"a=T,f=100,q=2,c={cols},r={rows},m={more}" if i == 0 else f"m={more}"
        out.append(f"\x1b_G{keys};{chunk}\x1b\\")
    return "".join(out)


def sixel(img: Image.Image, cols: int, rows: int, cell: tuple[int, int] = CELL_PIXELS) -> str:
    """DEC Sixel: `img` in `cols` x `rows` cells, at most 256 colours (median cut, no dither)."""
    width, height = _pixels(cols, rows, cell)
    rgb = img.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    indexed = rgb.quantize(256, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    index = indexed.tobytes()
    palette = indexed.getpalette() or []
    used = sorted(set(index))
    head = [f'\x1bP0;1;q"1;1;{width};{height}']
    for c in used:
        r, g, b = palette[3 * c : 3 * c + 3]
        head.append(f"#{c};2;{round(r * 100 / 255)};{round(g * 100 / 255)};{round(b * 100 / 255)}")
    bands = []
    for top in range(0, height, 6):
        band = [index[y * width : (y + 1) * width] for y in range(top, min(top + 6, height))]
        codes = []
        for c in sorted(set(b"".join(band))):
            bits = 0
            for bit, line in enumerate(band):  # one bit per row: a column's six pixels as an int
                bits |= int.from_bytes(line.translate(_bit_table(bit, c)), "big")
            sixels = bits.to_bytes(width, "big").translate(_SIXEL_CHARS)
            codes.append(f"#{c}" + _run_length(sixels.decode("ascii")))
        bands.append("$".join(codes))  # `$`: back to the band's left edge for the next colour
    return "".join(head) + "-".join(bands) + "\x1b\\"  # `-`: down to the next band


def _pixels(cols: int, rows: int, cell: tuple[int, int]) -> tuple[int, int]:
    return max(1, cols * cell[0]), max(1, rows * cell[1])


@lru_cache(maxsize=6 * 256)
def _bit_table(bit: int, colour: int) -> bytes:
    """A translate table mapping `colour` to 1 << bit and every other byte to 0."""
    table = bytearray(256)
    table[colour] = 1 << bit
    return bytes(table)


_SIXEL_CHARS = bytes(63 + v if v < 64 else 0 for v in range(256))
_RUN = re.compile(r"(.)\1{3,}")


def _run_length(sixels: str) -> str:
    """Runs of four or more equal sixels as `!<count><sixel>`; a trailing run of empty ones
    (`?`) dropped, as the next band starts from the left anyway."""
    sixels = sixels.rstrip("?")
    return _RUN.sub(lambda m: f"!{len(m.group(0))}{m.group(1)}", sixels)
