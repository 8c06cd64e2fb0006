"""`clipsearch tui`: the terminal UI (the `clipsearch_tui` package, imported only here)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from clipsearch_onnx.cli.options import add_common, add_decoding, settings_from
from clipsearch_onnx.cli.usage import add_command
from clipsearch_onnx.errors import ClipSearchError, NoTerminal


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "tui",
        help="the terminal UI",
        description="Search with the query syntax of `search`; the results come as a grid "
        "of thumbnails (ctrl+g: a list beside the selected picture), more as you scroll; "
        "Enter or o opens one in the picture viewer, F2 sets the filters, F1 lists the keys. "
        "Needs a terminal: it reads keys from stdin and draws on stdout (exit code 7 when "
        "either is not one; 129 when the terminal goes away while it runs).",
    )
    add_common(p)
    add_decoding(p)
    return p


def run(args: argparse.Namespace) -> int:
    for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout)):
        if not _is_terminal(stream):
            raise NoTerminal(
                f"the terminal UI needs a terminal, and {name} is not one "
                "(in scripts and pipes use `clipsearch search`)"
            )
    try:
        from clipsearch_tui.app import run as run_app
    except ImportError as exc:
        raise ClipSearchError(
            f"the terminal UI needs the `tui` extra ({exc.name} is missing): "
            "pip install 'clipsearch-onnx[tui]'"
        ) from None
    return run_app(settings_from(args))


def _is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # closed, or replaced by something without a fd
        return False
