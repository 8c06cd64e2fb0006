"""Ctrl-C at any moment of any command ends it with exit code 130 and one line, "interrupted".

Python turns SIGINT into a KeyboardInterrupt at the next bytecode, wherever that is, and it does
not always come out as one: raised while a C extension initialises (onnxruntime's pybind11
module, for one) it surfaces as `ImportError: initialization failed`, and a library may wrap it
in an error of its own. So `main` runs under `SigintWatch`, whose handler records that SIGINT
arrived before raising KeyboardInterrupt as Python's own handler does; whatever exception follows
is then reported as the interrupt it is.

Before `main` runs (while the CLI itself is being imported) there is nothing to clean up:
`exit_on_early_sigint` makes a Ctrl-C there print the same line and exit 130 at once. What is
left is the interpreter's own start-up, before any of this code runs; its shutdown, once the
command is done, is entry.py's.

An interrupted command must also end. The KeyboardInterrupt can land anywhere in the main thread,
including between a lock's acquire and the `with`/`try` that would release it (CPython does not
guard that window), and the lock can then never be released: seen once as a `clipsearch index`
that never exited after SIGINT (a decoding thread waiting on an import lock, the main thread
joining it). So in the command (`SigintWatch(grace=GRACE_S)`) the first SIGINT also starts a
watchdog: a daemon thread that, if the process is still alive `GRACE_S` seconds later (the
clean-up is stuck, or the interpreter's exit waits on a stuck thread), prints LINE unless it
was printed and ends the process with `os._exit(130)`. Ending there is as safe as a SIGKILL,
which the writer survives by design (writer.py: the next run completes the folder). A second
SIGINT ends the process the same way at once. If C code held the GIL all along, the watchdog
thread could not run: an alarm (SIGALRM, default action: the kernel ends the process) set at
the first SIGINT for twice the grace period covers that.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from clipsearch_onnx.errors import ExitCode

LINE = "clipsearch: interrupted"
GRACE_S = 5.0  # after the first SIGINT, how long the clean-up may take before the process ends

# LINE (or a line that starts with it) reached stderr. A plain flag, no lock: it is also read
# and set in the signal handler, which may run while the main thread is inside `report`.
_reported = [False]


def report(line: str = LINE) -> None:
    """Print the interrupt's one line (LINE, or LINE and what is kept) on stderr."""
    print(line, file=sys.stderr, flush=True)
    _reported[0] = True


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
    _end_process()


def _end_process() -> None:
    """Print LINE unless it was, and end the process with exit code 130 at once (no clean-up,
    no joining of threads)."""
    if not _reported[0]:
        _reported[0] = True
        try:  # the real stderr: quiet_libraries points descriptor 2 at a sink
            fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            fd = 2
        try:
            os.write(fd, (LINE + "\n").encode())
        except OSError:
            pass
    os._exit(ExitCode.INTERRUPTED)


class _Watchdog:
    """A daemon thread, started before it is needed (starting a thread from the signal handler
    could wait on a lock the interrupted main thread holds), that ends the process `grace`
    seconds after `arm()`."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._armed = threading.Event()
        threading.Thread(target=self._run, name="sigint-watchdog", daemon=True).start()

    def arm(self) -> None:
        self._armed.set()
        if hasattr(signal, "alarm") and signal.getsignal(signal.SIGALRM) == signal.SIG_DFL:
            signal.alarm(max(1, round(2 * self.grace)))  # if even this thread cannot run

    def _run(self) -> None:
        self._armed.wait()
        time.sleep(self.grace)
        _end_process()


class SigintWatch:
    """While active (a `with` block in the main thread), remembers whether SIGINT arrived.

    `grace`: in the command (not in a program that calls `main`), the first SIGINT also starts
    the watchdog that ends the process `grace` seconds later, and a second SIGINT, during the
    block or after it, ends the process at once (see the module's docstring)."""

    def __init__(self, grace: float | None = None) -> None:
        self.fired = False
        self.grace = grace
        self._watchdog: _Watchdog | None = None
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> SigintWatch:
        if threading.current_thread() is not threading.main_thread():
            return self
        previous = signal.getsignal(signal.SIGINT)
        if previous is signal.SIG_IGN:  # started with SIGINT ignored (`nohup`, `cmd &`): keep it
            return self
        self._previous = previous
        if self.grace is not None:
            self._watchdog = _Watchdog(self.grace)
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
            # after an interrupt, the exit itself can wait on a stuck thread: Ctrl-C still ends it
            ending = self.fired and self._watchdog is not None
            signal.signal(signal.SIGINT, _exit_now if ending else self._previous)
            self._installed = False

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self._watchdog is not None:
            if self.fired:
                _end_process()
            self._watchdog.arm()
        self.fired = True
        raise KeyboardInterrupt
