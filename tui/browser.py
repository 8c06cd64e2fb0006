"""The results, seen as a grid of thumbnails or as a list beside the selected picture.

`Browser` holds the results and the one selection both views show; ctrl+g switches views. It
asks for more results (`NeedMore`) when the selection or the scrolling nears the end.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container, Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from clipsearch_onnx.search import Result

from .detail import DetailPane
from .gallery import Gallery
from .paths import display_path
from .results import ResultsTable
from .thumbs import Thumbnails

GRID, LIST = "grid", "list"
NEAR_END = 3  # results from the end of the list at which more are loaded


class Browser(Container):
    class NeedMore(Message):
        """The user is near the end of the results shown: load more if there are more."""

    def __init__(self, *, graphics: bool = False, view: str = GRID, **kwargs) -> None:
        super().__init__(**kwargs)
        self.graphics = graphics
        self.view = view
        self.results: list[Result] = []
        self.selected_index = 0
        self.thumbnails = Thumbnails()

    def compose(self) -> ComposeResult:
        with Vertical(id="grid-view"):
            yield Gallery(graphics=self.graphics, thumbnails=self.thumbnails, id="gallery")
            yield Static("", id="grid-about")
        with Vertical(id="list-view"):
            yield ResultsTable(id="results")
            yield DetailPane(graphics=self.graphics, id="detail")

    def on_mount(self) -> None:
        self._show_view()

    @property
    def selected(self) -> Result | None:
        if 0 <= self.selected_index < len(self.results):
            return self.results[self.selected_index]
        return None

    @property
    def active(self) -> Gallery | ResultsTable:
        """The widget of the view on screen (the one Tab focuses)."""
        if self.view == GRID:
            return self.query_one(Gallery)
        return self.query_one(ResultsTable)

    async def show(self, results: Sequence[Result], *, keep_selection: bool = False) -> None:
        """Show `results`; `keep_selection` when they extend the ones shown (a next page)."""
        self.results = list(results)
        index = min(self.selected_index, len(results) - 1) if keep_selection else 0
        self.selected_index = max(index, 0)
        self.query_one(ResultsTable).show(self.results, cursor=self.selected_index)
        await self.query_one(Gallery).show(self.results, self.selected_index)
        self._show_selected()

    def select(self, index: int) -> None:
        if not self.results:
            return
        index = min(max(index, 0), len(self.results) - 1)
        if index == self.selected_index:
            return
        self.selected_index = index
        table = self.query_one(ResultsTable)
        if table.cursor_row != index:
            table.move_cursor(row=index, animate=False)
        self.query_one(Gallery).select(index)
        self._show_selected()
        if index >= len(self.results) - NEAR_END:
            self.post_message(self.NeedMore())

    def move(self, delta: int) -> None:
        self.select(self.selected_index + delta)

    def page(self, direction: int) -> None:
        if self.view == GRID:
            self.query_one(Gallery).action_page(direction)
        else:
            table = self.query_one(ResultsTable)
            self.move(direction * max(1, table.scrollable_content_region.height - 2))

    def toggle_view(self) -> str:
        had_focus = self.active.has_focus
        self.view = LIST if self.view == GRID else GRID
        self._show_view()
        if had_focus:
            self.active.focus()
        return self.view

    def _show_view(self) -> None:
        self.query_one("#grid-view").display = self.view == GRID
        self.query_one("#list-view").display = self.view == LIST
        self._show_selected()

    def _show_selected(self) -> None:
        result = self.selected
        if self.view == LIST:
            self.query_one(DetailPane).show(result)
            return
        about = self.query_one("#grid-about", Static)
        if result is None:
            about.update("")
            return
        caption = " ".join(result.captions[0].split()) if result.captions else "(no captions)"
        about.update(
            Text.assemble(
                (f"#{result.rank}  ", "bold"),
                (f"{result.score:.3f}  ", "dim"),
                display_path(result.path),
                "\n",
                (caption, "italic"),
            )
        )

    # -- the views' events ---------------------------------------------------------------------

    async def on_gallery_chosen(self, event: Gallery.Chosen) -> None:
        self.select(event.index)
        if event.opened:
            await self.app.run_action("open_selected")

    def on_gallery_near_end(self, event: Gallery.NearEnd) -> None:
        event.stop()
        self.post_message(self.NeedMore())

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Refilling the table highlights row 0 before the cursor is put back: follow the
        # cursor where it is now, not where a queued event says it was.
        if event.cursor_row == event.data_table.cursor_row:
            self.select(event.cursor_row)

    async def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.select(event.cursor_row)
        await self.app.run_action("open_selected")
