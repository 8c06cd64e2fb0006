"""The detail pane: the selected result's picture, full path and every caption."""

from __future__ import annotations

import asyncio
import os

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Container, Horizontal, VerticalScroll
from textual.widgets import Static

from clipsearch_onnx.errors import ClipSearchError
from clipsearch_onnx.search import Result

from .paths import display_path
from .picture import load_thumbnail, make_picture

HINT = "Type a description or the path of an image, then Enter.  F1: help"


class DetailPane(Horizontal):
    def __init__(self, *, graphics: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.graphics = graphics
        self.result: Result | None = None
        self.picture = make_picture(graphics, id="picture")

    def compose(self) -> ComposeResult:
        with Container(id="picture-frame"):
            yield self.picture
            yield Static(id="picture-note")
        with VerticalScroll(id="about", can_focus=False):  # no invisible tab stop
            yield Static(HINT, id="about-title")
            yield Static("", id="about-path")
            yield Static("", id="about-captions")

    def show(self, result: Result | None) -> None:
        if result == self.result:
            return
        self.result = result
        self.picture.image = None
        note = self.query_one("#picture-note", Static)
        note.display = False
        if result is None:
            self.query_one("#about-title", Static).update(HINT)
            self.query_one("#about-path", Static).update("")
            self.query_one("#about-captions", Static).update("")
            return
        title = Text.assemble(
            (os.path.basename(result.path), "bold"),
            f"   #{result.rank}   score {result.score:.3f}",
        )
        self.query_one("#about-title", Static).update(title)
        self.query_one("#about-path", Static).update(Text(display_path(result.path)))
        captions = Text()
        for i, caption in enumerate(result.captions, 1):
            captions.append(f"{i}. ", "dim")
            captions.append(" ".join(caption.split()) + "\n")
        self.query_one("#about-captions", Static).update(captions or Text("(no captions)", "dim"))
        self._load_picture(result)

    @work(exclusive=True, group="picture")
    async def _load_picture(self, result: Result) -> None:
        try:
            img = await asyncio.to_thread(load_thumbnail, result.path)
        except (ClipSearchError, OSError) as exc:
            note = self.query_one("#picture-note", Static)
            note.update(Text(f"cannot show the image: {exc}", "italic"))
            note.display = True
            return
        if self.result == result:
            self.picture.image = img
