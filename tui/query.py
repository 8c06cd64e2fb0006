"""The query box, and what was typed there as a query of the core's syntax.

The syntax is `clipsearch_onnx.query`'s, the same as `clipsearch search` takes: terms joined by
` + ` and ` - `, each a text, an image file or an image URL, with an optional weight `W:`. The
box adds two things for pasting: quotes around a whole pasted path are dropped, and a path put
in the box for "find similar" is escaped so that it stays one term.
"""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.widgets import Input

from clipsearch_onnx.query import PATH_PREFIXES, Query, parse_query

__all__ = ["SYNTAX", "Query", "QueryBox", "as_term", "read_query"]

SYNTAX = [
    ("a dog on a beach", "a description in words"),
    (
        "~/photos/dog.jpg",
        "an image: a term starting with / ./ ../ ~/ file://, or one word "
        "ending in an image extension; http(s)://... fetches an image",
    ),
    ("./dog.jpg + in the snow", "terms joined by ' + ' and ' - ' (spaces around them)"),
    ("beach + 2:sunset - people", "W: weighs a term (default 1; a subtracted one 0.5)"),
    ("\\2:1 aspect ratio", "a leading backslash makes the term a text; \\- \\+ are a literal - +"),
]


def read_query(raw: str) -> Query | None:
    """The query typed in the box, None when it is blank (raises InputError, one line)."""
    text = raw.strip()
    if not text:
        return None
    return parse_query(_unquote(text))


def as_term(path: str) -> str:
    """`path` written as one image term of the syntax (escapes for backslashes and for a
    ` + ` or ` - ` inside it)."""
    escaped = path.replace("\\", "\\\\")
    return escaped.replace(" + ", " \\+ ").replace(" - ", " \\- ")


def _unquote(text: str) -> str:
    """A whole pasted path without the quotes a file manager or terminal put around it."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        inner = text[1:-1]
        if inner.startswith((*PATH_PREFIXES, "file://")):
            return as_term(inner)
    return text


class QueryBox(Input):
    """A one-line query editor that keeps the focus; the arrow and page keys move the selection
    in the results instead (like fzf)."""

    BINDINGS = [
        Binding("up", "app.move_selection(-1)", "Previous", show=False),
        Binding("down", "app.move_selection(1)", "Next", show=False),
        Binding("pageup", "app.page_selection(-1)", "Page up", show=False),
        Binding("pagedown", "app.page_selection(1)", "Page down", show=False),
        Binding("escape", "clear", "Clear", show=False),
    ]

    def action_clear(self) -> None:
        self.value = ""

    async def _on_key(self, event: events.Key) -> None:
        # Textual runs a key's binding only once the key has bubbled up to the app, after the
        # characters read together with it were already inserted: "ctrl+u, a path, enter" sent in
        # one burst (a script, a fast typist) would clear the new path and submit nothing. Run
        # this box's and the app's bindings here instead, in the order the keys came.
        if not event.is_printable:
            for node in (self, self.app):
                bindings = node._bindings.key_to_bindings.get(event.key)
                if bindings:
                    event.stop()
                    event.prevent_default()
                    await self.app.run_action(bindings[0].action, default_namespace=node)
                    return
        await super()._on_key(event)
