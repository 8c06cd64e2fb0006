"""`clipsearch`: the command line, one module per command (see `parser.COMMANDS`), and the one
place where errors become messages and exit codes."""

from __future__ import annotations

import os
import sys

from clipsearch_onnx.cli import interrupts

if interrupts.started_as_command():  # first, so that Ctrl-C while the CLI loads is one line too
    interrupts.exit_on_early_sigint()

from clipsearch_onnx.cli.interrupts import GRACE_S, LINE, SigintWatch, report  # noqa: E402
from clipsearch_onnx.cli.parser import build_parser  # noqa: E402
from clipsearch_onnx.errors import ClipSearchError, ExitCode  # noqa: E402

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    grace = GRACE_S if interrupts.started_as_command() else None
    with SigintWatch(grace) as sigint:
        try:
            code, message = _run(argv, sigint)
            if message and code == ExitCode.INTERRUPTED:
                report(message)
            elif message:
                print(message, file=sys.stderr)
            return int(code)
        except KeyboardInterrupt:  # a second Ctrl-C while the first is being reported
            return int(ExitCode.INTERRUPTED)


def _run(argv: list[str] | None, sigint: SigintWatch) -> tuple[int, str | None]:
    """The command's exit code and the one line to report, if any."""
    try:
        argv = sys.argv[1:] if argv is None else argv
        args = build_parser(argv).parse_args(argv)
        code, message = int(args.run(args)), None
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED, LINE
    except BrokenPipeError:
        sys.stderr.close()  # `clipsearch search ... | head`: not an error
        return ExitCode.OK, None
    except ClipSearchError as exc:
        code, message = exc.exit_code, f"clipsearch: error: {exc}"
    except Exception as exc:  # a bug or an environment problem: one line, traceback on request
        if sigint.fired:
            return ExitCode.INTERRUPTED, LINE
        if os.environ.get("CLIPSEARCH_DEBUG"):
            raise
        code = ExitCode.ERROR
        message = f"clipsearch: unexpected error: {type(exc).__name__}: {exc} (set CLIPSEARCH_DEBUG=1 for a traceback)"
    if sigint.fired and code != ExitCode.INTERRUPTED:
        # The interrupt became something else on its way out (an error, or a library that
        # swallowed it): the command did not finish as asked.
        return ExitCode.INTERRUPTED, LINE
    return code, message
