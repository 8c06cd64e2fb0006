"""The results table: rank, score, first caption and path, the file name always whole."""

from __future__ import annotations

import os
from collections.abc import Sequence

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widgets import DataTable

from clipsearch_onnx.search import Result

from .paths import display_path, fit_end, fit_path

RANK_WIDTH = 2
SCORE_WIDTH = 6
PATH_SHARE = 0.4  # of the text columns, for paths, when captions and paths both run long


def column_widths(results: Sequence[Result], width: int) -> tuple[int, int]:
    """(caption, path) widths for a table `width` cells wide (cell padding included).

    The path column gets what the longest path needs, but at most PATH_SHARE of the space when
    captions need more, and never less than the longest file name (plus a cell for "…").
    """
    text = max(0, width - 2 * 4 - RANK_WIDTH - SCORE_WIDTH)
    paths = [display_path(r.path) for r in results]
    longest_path = max((cell_len(p) for p in paths), default=4)
    longest_name = max((cell_len(os.path.basename(p)) for p in paths), default=4)
    longest_caption = max((cell_len(_caption(r)) for r in results), default=7)
    if longest_path + longest_caption <= text:
        path = longest_path
    else:
        floor = min(longest_path, longest_name + 1)
        path = max(floor, min(longest_path, max(text - longest_caption, int(text * PATH_SHARE))))
    path = min(path, text)
    caption = text - path
    return caption, path


def _caption(result: Result) -> str:
    return " ".join(result.captions[0].split()) if result.captions else ""


class ResultsTable(DataTable):
    """The results as rows; Tab focuses it (the query box's arrow keys move it too), Enter or
    `o` opens the selected file."""

    BINDINGS = [Binding("o", "app.open_selected", "Open", show=False)]  # the footer has ^o

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self.results: list[Result] = []
        self._widths: tuple[int, int] | None = None

    def show(self, results: Sequence[Result], cursor: int = 0) -> None:
        self.results = list(results)
        self._widths = None
        self._fill(cursor)

    @property
    def selected(self) -> Result | None:
        if not self.results or not 0 <= self.cursor_row < len(self.results):
            return None
        return self.results[self.cursor_row]

    def on_resize(self, event: events.Resize) -> None:
        self._fill(self.cursor_row)

    def _fill(self, cursor: int) -> None:
        widths = column_widths(self.results, self.scrollable_content_region.width)
        if widths == self._widths and self.row_count == len(self.results):
            return
        self._widths = widths
        caption_width, path_width = widths
        self.clear(columns=True)
        self.add_column(Text("#", justify="right"), width=RANK_WIDTH, key="rank")
        self.add_column(Text("score", justify="right"), width=SCORE_WIDTH, key="score")
        self.add_column("caption", width=caption_width, key="caption")
        self.add_column("file", width=path_width, key="file")
        for r in self.results:
            self.add_row(
                Text(str(r.rank), justify="right"),
                Text(f"{r.score:.3f}", justify="right"),
                fit_end(_caption(r), caption_width),
                fit_path(r.path, path_width),
                key=str(r.id),
            )
        if self.results:
            self.move_cursor(row=min(cursor, len(self.results) - 1), animate=False)
