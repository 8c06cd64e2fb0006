"""The selected image, drawn in the terminal.

Terminals with a graphics protocol (Sixel, Kitty's) get real pixels through textual-image; every
other terminal gets half-block characters (two pixels per cell, coloured foreground and
background), rendered here from Pillow so that the result is the same on every run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
from PIL import Image
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from clipsearch_onnx.decode import load_image

if TYPE_CHECKING:
    from textual_image.widget import AutoImage, SixelImage

THUMBNAIL_SIDE = 640
UPPER_HALF = "▀"


def load_thumbnail(path: str | Path) -> Image.Image:
    """The image at `path`, upright, RGB, at most THUMBNAIL_SIDE pixels on a side (raises
    ImageError)."""
    img = load_image(path, draft=True, min_side=THUMBNAIL_SIDE)
    img.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    return img


def half_blocks(
    img: Image.Image, width: int, height: int, blank: Style | None = None
) -> list[Strip]:
    """`img` scaled to fit `width` x `height` cells, aspect kept, centred: `height` lines of
    `width` cells, two pixels per cell (upper half block, foreground over background)."""
    if width < 1 or height < 1:
        return []
    scale = min(width / img.width, 2 * height / img.height)
    w = max(1, min(width, round(img.width * scale)))
    h = max(1, min(2 * height, round(img.height * scale)))
    pixels = np.asarray(img.convert("RGB").resize((w, h), Image.Resampling.BOX))
    if h % 2:
        pixels = np.concatenate([pixels, np.zeros((1, w, 3), dtype=np.uint8)])
    rows = pixels.shape[0] // 2
    top_pad = (height - rows) // 2
    left = Segment(" " * ((width - w) // 2), blank)
    right = Segment(" " * (width - w - (width - w) // 2), blank)
    empty = Strip([Segment(" " * width, blank)], width)
    styles: dict[tuple[int, ...], Style] = {}
    strips = [empty] * top_pad
    for y in range(0, pixels.shape[0], 2):
        cells = [left]
        for top, bottom in zip(pixels[y].tolist(), pixels[y + 1].tolist(), strict=True):
            key = (*top, *bottom)
            style = styles.get(key)
            if style is None:
                style = styles[key] = Style(
                    color=Color.from_rgb(*top), bgcolor=Color.from_rgb(*bottom)
                )
            cells.append(Segment(UPPER_HALF, style))
        cells.append(right)
        strips.append(Strip(cells, width))
    strips += [empty] * (height - len(strips))
    return strips


class HalfBlockPicture(Widget):
    """Shows `image` (a Pillow image or None) as large as the widget allows."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._image: Image.Image | None = None
        self._strips: list[Strip] = []
        self._strips_key: tuple[int, int, int] | None = None

    @property
    def image(self) -> Image.Image | None:
        return self._image

    @image.setter
    def image(self, value: Image.Image | None) -> None:
        self._image = value
        self._strips_key = None
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width, height = self.content_size
        if self._image is None:
            return Strip.blank(width, self.rich_style)
        key = (id(self._image), width, height)
        if key != self._strips_key:
            self._strips = half_blocks(self._image, width, height, self.rich_style)
            self._strips_key = key
        return self._strips[y] if y < len(self._strips) else Strip.blank(width, self.rich_style)


Picture: TypeAlias = "HalfBlockPicture | AutoImage | SixelImage"
"""A widget that shows the Pillow image its `image` attribute is set to."""


def make_picture(graphics: bool, **kwargs) -> Picture:
    """textual-image's picture widget when `graphics`, else ours."""
    if graphics:
        from textual_image.widget import Image as GraphicsPicture

        picture = GraphicsPicture(**kwargs)
        picture.add_class("graphics")
        return picture
    return HalfBlockPicture(**kwargs)
