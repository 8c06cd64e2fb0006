"""`clipsearch`: the command line, one module per command (see `parser.COMMANDS`), and the one
place where errors become messages and exit codes."""

from __future__ import annotations

import os
import sys

from clipsearch_onnx.cli.parser import build_parser
from clipsearch_onnx.errors import ClipSearchError, ExitCode

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except ClipSearchError as exc:
        print(f"clipsearch: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("clipsearch: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        sys.stderr.close()  # `clipsearch search ... | head`: not an error
        return int(ExitCode.OK)
    except Exception as exc:  # a bug or an environment problem: one line, traceback on request
        if os.environ.get("CLIPSEARCH_DEBUG"):
            raise
        print(
            f"clipsearch: unexpected error: {type(exc).__name__}: {exc} "
            "(set CLIPSEARCH_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return int(ExitCode.ERROR)
