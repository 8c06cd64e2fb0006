"""The gallery: the results as a grid of thumbnails, each with its rank, score and file name.

Tiles are laid out in as many columns as fit; the thumbnails are decoded on a worker thread in
rank order and drawn as they arrive (half blocks, or Sixel/Kitty through textual-image). The
gallery keeps no selection of its own: it draws the one `Browser` holds and asks it to move.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from PIL import Image
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, ScrollableContainer, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static
from textual.worker import get_current_worker

from clipsearch_onnx.search import Result

from .paths import fit_path
from .picture import make_picture
from .thumbs import Thumbnails

TILE_WIDTH = 24  # cells, gutter included: the narrowest a tile gets
TILE_HEIGHT = 11  # rows: border, 8 rows of picture (16 pixels of half blocks), label, border


def tile_label(result: Result, width: int) -> Text:
    """`#rank score name`, the name shortened in the middle when the tile is narrow."""
    head = f"{result.rank} "
    score = f"{result.score:.3f} "
    name = fit_path(os.path.basename(result.path), max(1, width - len(head) - len(score)))
    return Text.assemble((head, "bold"), (score, "dim"), name)


class TileLabel(Widget):
    """The tile's label, fitted to the width it has each time it is drawn."""

    def __init__(self, result: Result) -> None:
        super().__init__(classes="tile-label")
        self.result = result

    def render(self) -> Text:
        return tile_label(self.result, self.size.width)


class Tile(Vertical):
    """One result: its thumbnail above its label."""

    def __init__(self, result: Result, index: int, *, graphics: bool) -> None:
        super().__init__(id=f"tile-{index}", classes="tile")
        self.result = result
        self.index = index
        self.picture = make_picture(graphics, classes="thumb")
        self.loaded = False

    def compose(self) -> ComposeResult:
        with Container(classes="thumb-frame"):
            yield self.picture
            yield Static("", classes="thumb-note")
        yield TileLabel(self.result)

    def set_thumbnail(self, img: Image.Image | str) -> None:
        self.loaded = True
        if isinstance(img, str):
            note = self.query_one(".thumb-note", Static)
            note.update(Text(f"cannot show: {img}", "italic"))
            note.display = True
            self.picture.display = False
        else:
            self.picture.image = img

    def on_click(self, event: events.Click) -> None:
        gallery = self.parent
        if isinstance(gallery, Gallery):
            gallery.focus()
            gallery.post_message(Gallery.Chosen(self.index, opened=event.chain >= 2))


class Gallery(ScrollableContainer, can_focus=True):
    """The results as tiles; arrow keys move the selection, Enter or `o` opens it."""

    BINDINGS = [
        Binding("left", "step(-1, 0)", "Left", show=False),
        Binding("right", "step(1, 0)", "Right", show=False),
        Binding("up", "step(0, -1)", "Up", show=False),
        Binding("down", "step(0, 1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter,o", "app.open_selected", "Open", show=False),  # the footer has ^o
    ]

    class Chosen(Message):
        """The user picked tile `index` (a key or a click); `opened`: asked to open it."""

        def __init__(self, index: int, *, opened: bool = False) -> None:
            super().__init__()
            self.index = index
            self.opened = opened

    class NearEnd(Message):
        """The last row of tiles came into view: time to load more, if there are more."""

    def __init__(self, *, graphics: bool = False, thumbnails: Thumbnails, **kwargs) -> None:
        super().__init__(**kwargs)
        self.graphics = graphics
        self.thumbnails = thumbnails
        self.tiles: list[Tile] = []
        self.selected = 0

    @property
    def columns(self) -> int:
        return max(1, self.scrollable_content_region.width // TILE_WIDTH)

    async def show(self, results: Sequence[Result], selected: int) -> None:
        """Tiles for `results`: the present ones kept when `results` extends them."""
        same = len(results) >= len(self.tiles) and all(
            t.result.id == r.id for t, r in zip(self.tiles, results, strict=False)
        )
        if not same:
            await self.remove_children()
            self.tiles = []
            self.scroll_home(animate=False)
        new = [
            Tile(r, i, graphics=self.graphics)
            for i, r in enumerate(results[len(self.tiles) :], len(self.tiles))
        ]
        if new:
            self.tiles += new
            await self.mount_all(new)
        self._layout_columns()
        self.select(selected)
        self._load_thumbnails()

    def select(self, index: int) -> None:
        previous = self.selected
        self.selected = index
        for i in (previous, index):
            if 0 <= i < len(self.tiles):
                self.tiles[i].set_class(i == index, "-selected")
        if 0 <= index < len(self.tiles):
            self.scroll_to_widget(self.tiles[index], animate=False)

    def action_step(self, dx: int, dy: int) -> None:
        self._choose(self.selected + dx + dy * self.columns)

    def action_page(self, direction: int) -> None:
        rows = max(1, self.scrollable_content_region.height // TILE_HEIGHT)
        self._choose(self.selected + direction * rows * self.columns)

    def action_jump(self, index: int) -> None:
        self._choose(index if index >= 0 else len(self.tiles) - 1)

    def _choose(self, index: int) -> None:
        if self.tiles:
            self.post_message(self.Chosen(min(max(index, 0), len(self.tiles) - 1)))

    def on_resize(self, event: events.Resize) -> None:
        self._layout_columns()

    def _layout_columns(self) -> None:
        self.styles.grid_size_columns = self.columns

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self.tiles and new >= self.max_scroll_y - TILE_HEIGHT:
            self.post_message(self.NearEnd())

    @work(thread=True, exclusive=True, group="thumbnails")
    def _load_thumbnails(self) -> None:
        worker = get_current_worker()
        for tile in list(self.tiles):
            if worker.is_cancelled:
                return
            if tile.loaded:
                continue
            img = self.thumbnails.load(tile.result.path)
            if not worker.is_cancelled:
                self.app.call_from_thread(tile.set_thumbnail, img)
