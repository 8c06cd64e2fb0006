"""The query box, and how what was typed there becomes a text or an image query."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import events
from textual.binding import Binding
from textual.widgets import Input

from clipsearch_onnx.errors import InputError
from clipsearch_onnx.scan import IMAGE_EXTENSIONS

from .paths import display_path

PATH_PREFIXES = ("/", "~", "./", "../")

PATH_RULE = (
    "A query is an image when, after `~` is expanded, it names an existing file, or when it "
    "looks like a path: it starts with `/`, `~`, `./` or `../`, or ends with an image "
    f"extension ({', '.join(sorted(IMAGE_EXTENSIONS))}). Anything else is a description in "
    "words. Quotes around a pasted path are ignored."
)


@dataclass(frozen=True)
class Query:
    text: str | None = None
    image: Path | None = None

    def describe(self) -> str:
        return f"image {self.image}" if self.image is not None else f"“{self.text}”"


def parse_query(raw: str) -> Query | None:
    """The query `raw` asks for (see PATH_RULE), None when it is blank.

    Raises InputError when `raw` looks like a path but names no file.
    """
    text = raw.strip()
    if not text:
        return None
    unquoted = _unquote(text)
    path = Path(unquoted).expanduser()
    if path.is_file():
        return Query(image=path)
    if _looks_like_path(unquoted):
        if path.is_dir():
            raise InputError(f"{display_path(path)} is a folder; give the path of an image file")
        raise InputError(f"no such file: {display_path(path)}")
    return Query(text=text)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _looks_like_path(text: str) -> bool:
    return text.startswith(PATH_PREFIXES) or Path(text).suffix.lower() in IMAGE_EXTENSIONS


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
