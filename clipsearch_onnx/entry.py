"""The `clipsearch` command's entry point (the console script and `python -m clipsearch_onnx`).

A one-shot `clipsearch search` is first offered to a running `clipsearch serve` for its index
(`daemon.forward`: standard library only, nothing of the CLI imported; issue 15). Everything
else, and a search no server answers, goes to the command line, `clipsearch_onnx.cli.main`.

Once the command has finished, a Ctrl-C can still arrive while the interpreter shuts down. Python
resets SIGINT to the default action late in that shutdown, and the process would then die of the
signal with nothing said (seen in CI: exit -2, empty stderr, a complete index). So an exit
handler registered first thing in `main` (exit handlers run last-in first-out: after any the
command registers) ignores SIGINT: from there on the process only tears down, and it exits with
the code of the command that did finish.
"""

from __future__ import annotations

import atexit
import signal
import sys
import threading


def main() -> int:
    atexit.register(_ignore_sigint_from_now_on)  # after the handlers the command registers
    try:
        from clipsearch_onnx import daemon

        code = daemon.forward(sys.argv[1:])
    except KeyboardInterrupt:
        return _interrupted()
    except BrokenPipeError:
        sys.stderr.close()  # `clipsearch search ... | head`: not an error
        return 0
    if code is not None:
        return code
    try:  # until the CLI's own handler is in place (the first lines of its package)
        from clipsearch_onnx.cli import main as cli_main
    except KeyboardInterrupt:
        return _interrupted()
    return cli_main()


def _interrupted() -> int:
    from clipsearch_onnx.cli.interrupts import LINE
    from clipsearch_onnx.errors import ExitCode

    print(LINE, file=sys.stderr)
    return int(ExitCode.INTERRUPTED)


def _ignore_sigint_from_now_on() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
