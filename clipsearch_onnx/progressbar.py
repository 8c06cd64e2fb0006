"""A small progress bar for stderr (the CLI's; the core reports through callbacks only).

On a terminal it redraws one line; elsewhere (logs, CI) it prints a line at most once a minute,
plus one when a stage ends, so that a log holds little beyond the files it names.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

REDRAW_S = 0.2  # on a terminal
LOG_LINE_S = 60.0  # elsewhere


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Bar:
    def __init__(self, stream: TextIO | None = None, enabled: bool = True, unit: str = "img"):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.unit = unit
        self.tty = self.stream.isatty()
        self.stage = ""
        self.total = 0
        self.done = 0
        self.started = self.last = time.monotonic()

    def start(self, stage: str, total: int) -> None:
        self.finish()
        self.stage, self.total, self.done = stage, total, 0
        self.started = self.last = time.monotonic()

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= (REDRAW_S if self.tty else LOG_LINE_S) or self.done >= self.total:
            self.last = now
            self._draw(final=False)

    def _line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        return (
            f"{self.stage}: {self.done}/{self.total} {pct:3.0f}% "
            f"{rate:6.1f} {self.unit}/s ETA {_clock(eta)}"
        )

    def _draw(self, final: bool) -> None:
        if not self.enabled or not self.stage or self.total == 0:
            return
        if self.tty:
            self.stream.write("\r\x1b[K" + self._line() + ("\n" if final else ""))
        elif final or self.done < self.total:
            self.stream.write(self._line() + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (a skipped file, a warning), not swallowed by the bar."""
        if self.tty and self.stage:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()
        if self.enabled and self.tty and self.stage and self.total:
            self.stream.write(self._line())
            self.stream.flush()

    def finish(self) -> None:
        if self.stage:
            self._draw(final=True)
        self.stage = ""
