"""`clipsearch tui` needs a terminal: it refuses to start without one, and it ends when its
terminal goes away (the master side of its pty closed, or SIGHUP) instead of spinning."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

from clipsearch_onnx.errors import ExitCode
from tests.fixtures_collection import cli_env

TUI_READY = b"describe a picture"  # the query box's placeholder: the app is drawn


def run_tui(index: Path, home: Path, **streams) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clipsearch_onnx", "tui", "--index", str(index)],
        capture_output="stdin" in streams,
        text=True,
        timeout=5,
        env=cli_env(home),
        **streams,
    )


def test_tui_without_a_terminal_refuses_in_one_line(indexed_collection, tmp_path):
    no_stdin = run_tui(indexed_collection.index, tmp_path, stdin=subprocess.DEVNULL)
    master, slave = pty.openpty()
    try:
        no_stdout = subprocess.run(
            [sys.executable, "-m", "clipsearch_onnx", "tui", "--index", indexed_collection.index],
            stdin=slave,
            capture_output=True,
            text=True,
            timeout=5,
            env=cli_env(tmp_path),
        )
    finally:
        os.close(slave)
        os.close(master)
    for proc, name in ((no_stdin, "stdin"), (no_stdout, "stdout")):
        assert proc.returncode == ExitCode.TERMINAL == 7
        assert proc.stdout == ""
        assert proc.stderr.splitlines() == [
            f"clipsearch: error: the terminal UI needs a terminal, and {name} is not one "
            "(in scripts and pipes use `clipsearch search`)"
        ]


class PtyTui:
    """`clipsearch tui` running in its own pseudo-terminal (80x24), its output drained."""

    def __init__(self, index: Path, home: Path) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = cli_env(home, TERM="xterm-256color")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clipsearch_onnx", "tui", "--index", str(index)],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.output = bytearray()
        self.ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO once the child is gone, EBADF once we closed the master
                return
            if not data:
                return
            self.output.extend(data)
            if TUI_READY in self.output:
                self.ready.set()


def test_tui_exits_when_its_terminal_goes_away(indexed_collection, tmp_path):
    closed = PtyTui(indexed_collection.index, tmp_path)
    hung_up = PtyTui(indexed_collection.index, tmp_path)
    try:
        for tui in (closed, hung_up):
            assert tui.ready.wait(90), bytes(tui.output[-500:])
        os.close(closed.master)  # the terminal window closes; no SIGHUP (not our session's tty)
        hung_up.proc.send_signal(signal.SIGHUP)
        start = time.monotonic()
        codes = [tui.proc.wait(timeout=20) for tui in (closed, hung_up)]
        assert codes == [ExitCode.HANGUP, ExitCode.HANGUP] == [129, 129]
        assert time.monotonic() - start < 20
    finally:
        for tui in (closed, hung_up):
            if tui.proc.poll() is None:
                tui.proc.kill()
                tui.proc.wait()
        os.close(hung_up.master)
