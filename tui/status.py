"""The status line: index size, model and precision, and the last query's time."""

from __future__ import annotations

import os

from textual.reactive import reactive
from textual.widgets import Static

from clipsearch_onnx.search import IndexInfo


def model_label(info: IndexInfo) -> str:
    """The hub id the model was exported from, else the name of the exported model's folder."""
    source = info.model_source
    if source and not source.startswith(("/", ".", "~")) and not os.path.exists(source):
        return source
    if info.model_dir:
        return os.path.basename(os.path.normpath(info.model_dir))
    return source or "unknown model"


class StatusLine(Static):
    state: reactive[str] = reactive("loading index…")
    took_ms: reactive[float | None] = reactive(None)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.summary = ""

    def loaded(self, info: IndexInfo, precision: str | None) -> None:
        images = "image" if info.count == 1 else "images"
        self.summary = f"{info.count:,} {images} · {model_label(info)} ({precision or '?'})"
        self.state = "ready"
        self.refresh()

    def render(self) -> str:
        if self.state != "ready":
            return self.state
        took = "—" if self.took_ms is None else f"{self.took_ms:.0f} ms"
        return f"{self.summary} · last query {took}"
