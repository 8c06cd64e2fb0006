"""How file paths and captions are fitted on screen: the home folder as `~`, and when space is
short the directory is shortened, never the file name. Widths are terminal cells (a CJK
character takes two)."""

from __future__ import annotations

import os
from pathlib import Path

from rich.cells import cell_len, get_character_cell_size

ELLIPSIS = "…"


def display_path(path: str | Path) -> str:
    """`path` with the user's home folder written as `~`."""
    text = str(path)
    home = str(Path.home())
    if home not in ("", "/") and (text == home or text.startswith(home + os.sep)):
        return "~" + text[len(home) :]
    return text


def fit_path(path: str | Path, width: int) -> str:
    """`path` in at most `width` cells, cutting the start of the directory first.

    The file name survives whole whenever it fits; only a name wider than `width` is cut, in its
    middle so that the extension stays visible.
    """
    text = display_path(path)
    if cell_len(text) <= width:
        return text
    name = os.path.basename(text)
    if cell_len(name) + 1 <= width:
        return ELLIPSIS + _tail(text, width - 1)
    return fit_middle(name, width)


def fit_middle(text: str, width: int) -> str:
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return _head(text, width)
    head = (width - 1) // 2
    return _head(text, head) + ELLIPSIS + _tail(text, width - 1 - head)


def fit_end(text: str, width: int) -> str:
    """`text` on one line in at most `width` cells, with an ellipsis where it was cut."""
    text = " ".join(text.split())
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return _head(text, width)
    return _head(text, width - 1).rstrip() + ELLIPSIS


def _head(text: str, width: int) -> str:
    used = 0
    for i, ch in enumerate(text):
        used += get_character_cell_size(ch)
        if used > width:
            return text[:i]
    return text


def _tail(text: str, width: int) -> str:
    return _head(text[::-1], width)[::-1]
