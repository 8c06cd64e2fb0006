"""Opening a result in the system's picture viewer (Enter or `o` on a result).

Linux and the BSDs use `xdg-open`, and only when a graphical session is there (DISPLAY or
WAYLAND_DISPLAY): without one, xdg-open falls back to a text-mode program that would fight the
TUI for the terminal. macOS uses `open`, Windows the file's association. The viewer runs
detached (its own session, no terminal); where there is none, the user gets one line saying so.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

WAIT_SECONDS = 5.0  # how long to wait for the opener's exit status (xdg-open returns at once)


class CannotOpen(Exception):
    """There is no viewer to open a file with here, or it failed; the message says which."""


def viewer_command(
    path: str | Path, environ: Mapping[str, str] | None = None, platform: str = sys.platform
) -> list[str]:
    """The command that shows `path` in the system viewer (raises CannotOpen)."""
    env = os.environ if environ is None else environ
    search = env.get("PATH", os.defpath)
    if platform == "darwin":
        opener = shutil.which("open", path=search)
        if opener is None:
            raise CannotOpen("cannot open files here: `open` is not on PATH")
        return [opener, str(path)]
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        raise CannotOpen("no picture viewer: this terminal has no graphical session (DISPLAY)")
    opener = shutil.which("xdg-open", path=search)
    if opener is None:
        raise CannotOpen("no picture viewer: xdg-open is not installed (xdg-utils)")
    return [opener, str(path)]


async def open_file(path: str | Path, environ: Mapping[str, str] | None = None) -> str:
    """Show `path` in the system viewer; the name of the program that opens it (raises
    CannotOpen when there is none, the file is gone, or the opener reports a failure)."""
    if not os.path.isfile(path):
        raise CannotOpen(f"cannot open {path}: the file is gone")
    if sys.platform == "win32" and environ is None:
        try:
            os.startfile(path)  # type: ignore[attr-defined]  # Windows only
        except OSError as exc:
            raise CannotOpen(f"cannot open {path}: {exc.strerror or exc}") from None
        return "its default program"
    command = viewer_command(path, environ)
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # no terminal, and ctrl+c in the TUI does not reach it
            env=None if environ is None else dict(environ),
        )
    except OSError as exc:
        raise CannotOpen(f"cannot run {command[0]}: {exc.strerror or exc}") from None
    name = os.path.basename(command[0])
    try:
        code = await asyncio.wait_for(process.wait(), WAIT_SECONDS)
    except TimeoutError:
        return name  # still running: it is the viewer itself, or waits on it
    if code != 0:
        raise CannotOpen(f"{name} could not open {path} (exit status {code})")
    return name
