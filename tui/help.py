"""The help screen: the keys, the query syntax, and how results come."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from .query import SYNTAX

KEYS = [
    ("Enter", "in the query box: search; on a result: open it in the picture viewer"),
    ("Tab", "move between the query box and the results (the focused one is lit)"),
    ("Escape, /", "in the results: back to the query box"),
    ("Up / Down", "in the query box: the previous / next result"),
    ("arrows", "in the grid: move through the tiles; in the list: the rows"),
    ("PgUp / PgDn", "a page of results; Home / End in the grid: the first / last one"),
    ("o, ctrl+o", "open the selected image (xdg-open, or macOS's open)"),
    ("ctrl+g", "switch between the grid of thumbnails and the list with details"),
    ("F2", "show / hide the filters: folder, file names, dates, size, sort, duplicates"),
    ("ctrl+f", "find similar: search with the selected image"),
    ("ctrl+y", "copy the selected image's path (OSC 52; the terminal must allow it)"),
    ("Escape", "in the query box: clear it"),
    ("F1", "this help (Escape closes it)"),
    ("ctrl+q", "quit"),
]


def help_text() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for key, what in KEYS:
        table.add_row(key, what)
    table.add_row("", "")
    table.add_row("Queries", "the same syntax as `clipsearch search`:")
    for example, what in SYNTAX:
        table.add_row(Text(example, "italic"), what)
    table.add_row("", "")
    table.add_row(
        "Results",
        "20 at a time; more load as the selection or the scrolling nears the end. The status "
        "line shows the number of indexed images, the model and its precision, and how long "
        "the last query took.",
    )
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,f1,q", "dismiss", "Close help"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(help_text())
