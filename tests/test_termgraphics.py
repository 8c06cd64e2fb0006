"""The terminal-graphics encoders, checked by decoding what they write: Kitty's chunks join into
the PNG asked for, Sixel data decodes back to the picture's palette indices, half-block cells
carry the two pixels they stand for. Plus the choice of mode and the cell geometry."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from clipsearch_onnx import termgraphics as tg

SGR = re.compile(r"\x1b\[([0-9;]*)m")


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def blocks_of(colours: list[tuple[int, int, int]], width: int, height: int) -> Image.Image:
    """Vertical stripes of the given colours (few colours: a palette holds them exactly)."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    for x in range(width):
        pixels[:, x] = colours[x * len(colours) // width]
    pixels[height // 3, :] = colours[0]  # and a row across, so bands differ
    return Image.fromarray(pixels, "RGB")


def test_kitty_sends_the_png_in_chunks_and_asks_for_no_reply():
    out = tg.kitty(noise(120, 90), cols=12, rows=6, cell=(10, 20))
    chunks = re.findall(r"\x1b_G([^;]*);([^\x1b]*)\x1b\\", out)
    assert "".join(f"\x1b_G{k};{p}\x1b\\" for k, p in chunks) == out
    assert len(chunks) > 1  # noise does not compress: several chunks
    first = dict(kv.split("=") for kv in chunks[0][0].split(","))
    assert first == {"a": "T", "f": "100", "q": "2", "c": "12", "r": "6", "m": "1"}
    assert [k for k, _ in chunks[1:-1]] == ["m=1"] * (len(chunks) - 2)
    assert chunks[-1][0] == "m=0"
    assert all(len(p) <= tg.KITTY_CHUNK and len(p) % 4 == 0 for _, p in chunks[:-1])
    png = Image.open(io.BytesIO(base64.standard_b64decode("".join(p for _, p in chunks))))
    assert png.format == "PNG" and png.size == (120, 120)  # 12 x 6 cells of 10 x 20 pixels


def decode_sixel(data: str) -> tuple[tuple[int, int], dict[int, tuple[int, ...]], np.ndarray]:
    """(declared size, palette in percent, colour index per pixel; -1 where none was drawn)."""
    match = re.fullmatch(r'\x1bP0;1;q"1;1;(\d+);(\d+)(.*)\x1b\\', data, re.S)
    assert match, data[:40]
    width, height = int(match[1]), int(match[2])
    body = match[3]
    palette = {
        int(c): tuple(map(int, rgb)) for c, *rgb in re.findall(r"#(\d+);2;(\d+);(\d+);(\d+)", body)
    }
    body = re.sub(r"#\d+;2;\d+;\d+;\d+", "", body)
    pixels = np.full((height, width), -1)
    x = band = colour = 0
    for token in re.findall(r"#\d+|![0-9]+[?-~]|[?-~]|\$|-", body):
        if token.startswith("#"):
            colour = int(token[1:])
        elif token == "$":
            x = 0
        elif token == "-":
            x, band = 0, band + 1
        else:
            count, char = (int(token[1:-1]), token[-1]) if token.startswith("!") else (1, token)
            bits = ord(char) - 63
            for _ in range(count):
                for bit in range(6):
                    if bits >> bit & 1:
                        y = 6 * band + bit
                        assert pixels[y, x] == -1, "two colours drawn on one pixel"
                        pixels[y, x] = colour
                x += 1
    return (width, height), palette, pixels


def test_sixel_data_decodes_back_to_the_picture():
    colours = [(255, 0, 0), (0, 128, 255), (20, 200, 20), (250, 250, 250), (0, 0, 0)]
    img = blocks_of(colours, 40, 46)  # 46 rows: the last band is partial
    size, palette, pixels = decode_sixel(tg.sixel(img, cols=4, rows=2, cell=(10, 23)))
    assert size == (40, 46)
    assert (pixels >= 0).all(), "every pixel drawn"
    assert len(palette) == len(colours)
    drawn = np.array([palette[c] for c in pixels.ravel()]).reshape(46, 40, 3)
    expected = np.round(np.asarray(img, dtype=float) * 100 / 255)
    assert np.array_equal(drawn, expected)


def test_sixel_keeps_to_256_colours_and_codes_runs():
    out = tg.sixel(noise(64, 36, seed=1), cols=8, rows=3, cell=(8, 12))
    _, palette, pixels = decode_sixel(out)
    assert 200 < len(palette) <= 256 and (pixels >= 0).all()
    flat = tg.sixel(Image.new("RGB", (30, 12), (9, 9, 9)), cols=3, rows=1, cell=(10, 12))
    assert "!30~" in flat  # a run of 30 full sixels in one colour, not 30 characters


def parse_half_blocks(line: str) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    cells, fg, bg = [], None, None
    for token in re.findall(r"\x1b\[[0-9;]*m|.", line):
        sgr = SGR.fullmatch(token)
        if sgr:
            values = [int(v) for v in sgr[1].split(";")] if sgr[1] else [0]
            if values == [0]:
                continue
            assert values[:2] == [38, 2] and values[5:7] == [48, 2], token
            fg, bg = tuple(values[2:5]), tuple(values[7:10])
        else:
            assert token == tg.UPPER_HALF and fg is not None and bg is not None
            cells.append((fg, bg))
    return cells


def test_half_blocks_carry_the_pixel_above_and_below():
    img = noise(12, 8, seed=2)  # exactly 12 x 4 cells: no resampling
    lines = tg.half_blocks(img, cols=12, rows=4)
    assert len(lines) == 4 and all(line.endswith("\x1b[0m") for line in lines)
    pixels = np.asarray(img)
    for y, line in enumerate(lines):
        cells = parse_half_blocks(line)
        assert len(cells) == 12
        for x, (top, bottom) in enumerate(cells):
            assert top == tuple(pixels[2 * y, x]) and bottom == tuple(pixels[2 * y + 1, x])
    flat = tg.half_blocks(Image.new("RGB", (5, 2), (1, 2, 3)), cols=5, rows=1)[0]
    assert flat.count("\x1b[38;2") == 1  # colours are set only where they change


def test_cell_grid_keeps_the_aspect_in_cells_twice_as_tall_as_wide():
    assert tg.cell_grid((400, 300), max_cols=80, max_rows=8) == (21, 8)
    assert tg.cell_grid((1000, 100), max_cols=40, max_rows=8) == (40, 2)
    assert tg.cell_grid((10, 1000), max_cols=40, max_rows=8) == (1, 8)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TERM": "xterm-kitty"}, "kitty"),
        ({"KITTY_WINDOW_ID": "3", "TERM": "xterm-256color"}, "kitty"),
        ({"TERM_PROGRAM": "WezTerm"}, "kitty"),
        ({"TERM": "foot"}, "sixel"),
        ({"TERM": "mlterm"}, "sixel"),
        ({"TERM": "xterm-256color"}, "blocks"),
        ({}, "blocks"),
    ],
)
def test_detection_reads_the_environment(env, expected):
    assert tg.detect(env) == expected
    assert tg.choose("auto", True, env) == expected
    assert tg.choose("auto", False, env) is None  # not a terminal: no pictures


def test_an_explicit_mode_or_the_environment_overrides_detection():
    kitty = {"TERM": "xterm-kitty"}
    assert tg.choose("blocks", False, kitty) == "blocks"  # forced, even into a pipe
    assert tg.choose("auto", True, {**kitty, tg.ENV: "sixel"}) == "sixel"
    assert tg.choose("auto", True, {**kitty, tg.ENV: "none"}) is None
    assert tg.choose("sixel", True, {tg.ENV: "none"}) == "sixel"
