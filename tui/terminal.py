"""What the terminal the app runs in offers, asked before Textual takes it over."""

from __future__ import annotations

import logging
import os
import select
import sys

from textual.driver import Driver

from clipsearch_onnx import termgraphics


def detect_graphics() -> bool:
    """Whether the terminal speaks Sixel or the Kitty graphics protocol.

    CLIPSEARCH_GRAPHICS=blocks (or none) asks for half blocks. textual-image asks the terminal on import (protocols and cell size) and reads the answers
    from stdin, which Textual takes over once the app runs: call this first.
    """
    if not (_isatty(sys.__stdout__) and _isatty(sys.__stdin__)):
        return False
    if os.environ.get(termgraphics.ENV, "").strip().lower() in (termgraphics.BLOCKS, "none"):
        return False  # the user asked for half blocks (as `search --preview` does)
    # textual-image logs a warning with a traceback when the terminal does not answer its
    # cell-size query; with no logging set up Python would print it above the app.
    logging.getLogger("textual_image").addHandler(logging.NullHandler())
    try:
        from textual_image import renderable, widget  # noqa: F401
    except Exception:  # not installed, or its terminal probe failed (a pty sized 0x0 divides by 0)
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


def terminal_fds() -> tuple[int, ...]:
    """The file descriptors the app reads keys from and draws on, if they are terminals."""
    fds = []
    for stream in (sys.__stdin__, sys.__stdout__, sys.__stderr__):
        if _isatty(stream):
            assert stream is not None
            fds.append(stream.fileno())
    return tuple(dict.fromkeys(fds))


def hung_up(fds: tuple[int, ...]) -> bool:
    """Whether a terminal among `fds` went away (window closed, ssh dropped, pty master
    closed): poll reports that as POLLHUP/POLLERR without consuming any input."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    gone = select.POLLHUP | select.POLLERR | select.POLLNVAL
    try:
        return any(mask & gone for _, mask in poller.poll(0))
    except OSError:
        return True
