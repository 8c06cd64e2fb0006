"""The help screen: keys, and when a query counts as an image path."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from .query import PATH_RULE

KEYS = [
    ("Enter", "search for what the query box holds"),
    ("Up / Down", "select the previous / next result"),
    ("PgUp / PgDn", "move the selection a page"),
    ("ctrl+f", "find similar: search with the selected image"),
    ("ctrl+y", "copy the selected image's path (OSC 52; the terminal must allow it)"),
    ("Escape", "clear the query box"),
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
    table.add_row("Queries", Text(PATH_RULE))
    table.add_row(
        "",
        "The status line shows the number of indexed images, the model and its precision, "
        "and how long the last query took.",
    )
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,f1,q", "dismiss", "Close help"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(help_text())
