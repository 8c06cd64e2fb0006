"""What the terminal the app runs in offers, asked before Textual takes it over."""

from __future__ import annotations

import sys

from textual.driver import Driver


def detect_graphics() -> bool:
    """Whether the terminal speaks Sixel or the Kitty graphics protocol.

    textual-image asks the terminal on import (protocols and cell size) and reads the answers
    from stdin, which Textual takes over once the app runs: call this first.
    """
    if not (_isatty(sys.__stdout__) and _isatty(sys.__stdin__)):
        return False
    try:
        from textual_image import renderable, widget  # noqa: F401
    except ImportError:
        return False
    return renderable.Image in (renderable.SixelImage, renderable.TGPImage)


def driver_class() -> type[Driver] | None:
    """Textual draws on stderr; when only stdout is a terminal (`clipsearch tui 2>log`), draw
    there instead, so the screen shows and the log keeps just the diagnostics."""
    if sys.platform == "win32" or _isatty(sys.__stderr__) or not _isatty(sys.__stdout__):
        return None
    from textual.drivers.linux_driver import LinuxDriver

    class StdoutDriver(LinuxDriver):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._file = sys.__stdout__

    return StdoutDriver


def _isatty(stream) -> bool:
    try:
        return bool(stream) and stream.isatty()
    except (AttributeError, ValueError):
        return False
