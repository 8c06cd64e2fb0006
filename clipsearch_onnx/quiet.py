"""Keeping the decoding libraries quiet while a command reads many image files.

A folder of odd files makes libtiff print to file descriptor 2 directly (not through Python),
Pillow and numpy emit Python warnings and Pillow logs errors, hundreds of lines that bury the one line per skipped
file a user needs. `quiet_libraries()` points descriptor 2 at a sink for the C libraries while
Python's own `sys.stderr` keeps writing to the real one, and ignores Python warnings and
Pillow's log records (which it logs as it raises what the skip line reports). All are
process-wide on purpose: decoding runs in threads, and `warnings.catch_warnings` is not
thread-safe. Core code never prints; the CLI wraps a command in this and `--verbose` skips it.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_libraries(enabled: bool = True) -> Iterator[None]:
    """While inside: C libraries' writes to descriptor 2 are dropped, Python's `sys.stderr`
    still reaches the terminal (or whatever descriptor 2 was), Python warnings and Pillow's log
    records are dropped."""
    if not enabled:
        yield
        return
    pil = logging.getLogger("PIL")
    level = pil.level
    pil.setLevel(logging.CRITICAL + 1)
    try:
        # Entered and left on the calling thread while no decoding thread runs.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _sunk_descriptor_2():
                yield
    finally:
        pil.setLevel(level)


def _interpreter_talks() -> bool:
    """Whoever started Python asked it to report on descriptor 2 (`-X importtime` or
    PYTHONPROFILEIMPORTTIME, `-v`): that is not the libraries' chatter, let it through."""
    return bool(
        "importtime" in sys._xoptions
        or os.environ.get("PYTHONPROFILEIMPORTTIME")
        or sys.flags.verbose
    )


@contextmanager
def _sunk_descriptor_2() -> Iterator[None]:
    if _interpreter_talks():
        yield
        return
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no descriptor 2 to save: nothing to do
        yield
        return
    old_stderr = sys.stderr
    sink = os.open(os.devnull, os.O_WRONLY)
    stream = io.TextIOWrapper(
        io.FileIO(real, "w", closefd=True),
        encoding=getattr(old_stderr, "encoding", None) or "utf-8",
        errors="backslashreplace",
        line_buffering=True,
        write_through=True,
    )
    try:
        sys.stderr = stream
        os.dup2(sink, 2)
        yield
    finally:
        stream.flush()
        os.dup2(real, 2)
        sys.stderr = old_stderr
        stream.close()
        os.close(sink)
