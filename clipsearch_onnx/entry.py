"""The `clipsearch` command's entry point (the console script and `python -m clipsearch_onnx`).

A one-shot `clipsearch search` is first offered to a running `clipsearch serve` for its index
(`daemon.forward`: standard library only, nothing of the CLI imported; issue 15). Everything
else, and a search no server answers, goes to the command line, `clipsearch_onnx.cli.main`.
"""

from __future__ import annotations

import sys


def main() -> int:
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
