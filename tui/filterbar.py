"""The filter bar (F2): `clipsearch search`'s filters as fields under the query box.

What is typed goes to the core's `Filter.parse` as it is (a folder relative to the working
folder, `~` expanded; dates YYYY-MM-DD; WxH), so the TUI and the CLI read filters the same
way. Enter in a field, or a change of the sort or the duplicates switch, applies them.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Container
from textual.message import Message
from textual.widgets import Checkbox, Input, Select

from clipsearch_onnx.filters import SORTS, Filter

from .paths import display_path

FIELDS = [  # (Filter.parse's argument, placeholder)
    ("under", "under folder (~/Pictures/2023)"),
    ("glob", "file names (*.jpg, trips/*)"),
    ("after", "after date (2023-06-01)"),
    ("before", "before date (2023-08-31)"),
    ("min_size", "min size (800x600)"),
]


class FilterBar(Container):
    class Changed(Message):
        """The user applied the filters (Enter in a field, another sort, the switch)."""

    def compose(self) -> ComposeResult:
        for name, placeholder in FIELDS:
            yield Input(placeholder=placeholder, id=f"filter-{name}", classes="filter")
        yield Select(
            [(f"sort by {s}", s) for s in SORTS],
            value=SORTS[0],
            allow_blank=False,
            id="filter-sort",
        )
        yield Checkbox("one per duplicate group", id="filter-collapse")

    def on_mount(self) -> None:
        self.border_title = "filters · Enter applies · F2 hides"

    def read(self) -> Filter | None:
        """The filters set, None when there are none (raises InputError, one line)."""
        given: dict[str, Any] = {}
        for name, _ in FIELDS:
            value = self.query_one(f"#filter-{name}", Input).value.strip()
            if value:
                given[name] = value
        sort = self.query_one("#filter-sort", Select).value
        if sort != SORTS[0]:
            given["sort"] = sort
        if self.query_one("#filter-collapse", Checkbox).value:
            given["collapse"] = True
        return Filter.parse(**given) if given else None

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Changed())

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.Changed())

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self.post_message(self.Changed())


def describe(where: Filter | None) -> str:
    """The filters in force, for the message line ("" when none)."""
    if where is None:
        return ""
    shown = []
    for name, value in where.to_json().items():
        if name in ("min_width", "min_height"):
            if name == "min_width":
                shown.append(f"min size {where.min_width}x{where.min_height}")
        elif name == "collapse":
            shown.append("one per duplicate group")
        elif name == "under":
            shown.append(f"under {display_path(value)}")
        else:
            shown.append(f"{name} {value}")
    return ", ".join(shown)
