"""Ctrl-C at any moment of any command ends it with exit code 130 and one line, "interrupted".

Python turns SIGINT into a KeyboardInterrupt at the next bytecode, wherever that is, and it does
not always come out as one: raised while a C extension initialises (onnxruntime's pybind11
module, for one) it surfaces as `ImportError: initialization failed`, and a library may wrap it
in an error of its own. So `main` runs under `SigintWatch`, whose handler records that SIGINT
arrived before raising KeyboardInterrupt as Python's own handler does; whatever exception follows
is then reported as the interrupt it is.

Before `main` runs (while the CLI itself is being imported) there is nothing to clean up:
`exit_on_early_sigint` makes a Ctrl-C there print the same line and exit 130 at once. What is
left is the interpreter's own start-up, before any of this code runs.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from clipsearch_onnx.errors import ExitCode

LINE = "clipsearch: interrupted"


def started_as_command() -> bool:
    """Whether this process is the `clipsearch` command (its script or `python -m`), not a
    program that imports the CLI (a test, a notebook)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name == "clipsearch_onnx.__main__":
        return True
    return bool(sys.argv) and Path(sys.argv[0]).name == "clipsearch"


def exit_on_early_sigint() -> None:
    """Until `main` takes over, a SIGINT prints LINE and exits 130 straight away."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _exit_now)


def _exit_now(signum: int, frame: FrameType | None) -> None:
    os.write(2, (LINE + "\n").encode())
    os._exit(ExitCode.INTERRUPTED)


class SigintWatch:
    """While active (a `with` block in the main thread), remembers whether SIGINT arrived."""

    def __init__(self) -> None:
        self.fired = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> SigintWatch:
        if threading.current_thread() is not threading.main_thread():
            return self
        previous = signal.getsignal(signal.SIGINT)
        if previous is signal.SIG_IGN:  # started with SIGINT ignored (`nohup`, `cmd &`): keep it
            return self
        self._previous = previous
        signal.signal(signal.SIGINT, self._on_sigint)
        self._installed = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self.fired = True
        raise KeyboardInterrupt
