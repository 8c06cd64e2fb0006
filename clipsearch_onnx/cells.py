"""Text in terminal cells: how wide a string is on screen (a CJK character takes two cells, a
combining mark none), and fitting paths and captions into a width. When a path is too long the
start of its directory goes first and the file name survives whole whenever it fits; only a
name wider than the space is cut, in its middle, so that the extension stays visible.

Shared by the CLI's result table and the TUI (standard library only).
"""

from __future__ import annotations

import os
import unicodedata
from functools import lru_cache
from pathlib import Path

ELLIPSIS = "…"
_ZERO_WIDTH = {"Mn", "Me", "Cf", "Cc", "Cs"}  # combining marks, format and control characters


@lru_cache(maxsize=4096)
def char_width(ch: str) -> int:
    if ch.isascii():
        return 1 if ch.isprintable() else 0
    category = unicodedata.category(ch)
    if category in _ZERO_WIDTH or "\ufe00" <= ch <= "\ufe0f":
        return 0
    if category == "Cn":  # unassigned: unicodedata may call these wide; terminals don't
        return 1
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def width(text: str) -> int:
    """Cells `text` takes on one line."""
    if text.isascii() and text.isprintable():
        return len(text)
    return sum(char_width(ch) for ch in text)


def display_path(path: str | Path) -> str:
    """`path` with the user's home folder written as `~`."""
    text = str(path)
    home = str(Path.home())
    if home not in ("", "/") and (text == home or text.startswith(home + os.sep)):
        return "~" + text[len(home) :]
    return text


def fit_path(path: str | Path, cells: int) -> str:
    """`path` (home as `~`) in at most `cells` cells, cutting the start of the directory first."""
    text = display_path(path)
    if width(text) <= cells:
        return text
    name = os.path.basename(text)
    if width(name) + 1 <= cells:
        return ELLIPSIS + tail(text, cells - 1)
    return fit_middle(name, cells)


def fit_middle(text: str, cells: int) -> str:
    """`text` in at most `cells` cells, cut in the middle."""
    if width(text) <= cells:
        return text
    if cells <= 1:
        return head(text, cells)
    first = (cells - 1) // 2
    return head(text, first) + ELLIPSIS + tail(text, cells - 1 - first)


def fit_end(text: str, cells: int) -> str:
    """`text` on one line (runs of white space as one space) in at most `cells` cells, with an
    ellipsis where it was cut."""
    text = " ".join(text.split())
    if width(text) <= cells:
        return text
    if cells <= 1:
        return head(text, cells)
    return head(text, cells - 1).rstrip() + ELLIPSIS


def pad(text: str, cells: int) -> str:
    """`text` followed by spaces up to `cells` cells."""
    return text + " " * max(0, cells - width(text))


def head(text: str, cells: int) -> str:
    """The longest start of `text` that fits in `cells` cells."""
    used = 0
    for i, ch in enumerate(text):
        used += char_width(ch)
        if used > cells:
            return text[:i]
    return text


def tail(text: str, cells: int) -> str:
    """The longest end of `text` that fits in `cells` cells."""
    return head(text[::-1], cells)[::-1]
