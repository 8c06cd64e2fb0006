"""`clipsearch tui`: the terminal UI (the `clipsearch_tui` package, imported only here)."""

from __future__ import annotations

import argparse
from typing import Any

from clipsearch_onnx.cli.options import add_common, settings_from
from clipsearch_onnx.cli.usage import add_command
from clipsearch_onnx.errors import ClipSearchError


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = add_command(subparsers, "tui", help="the terminal UI")
    add_common(p)
    return p


def run(args: argparse.Namespace) -> int:
    try:
        from clipsearch_tui.app import run as run_app
    except ImportError as exc:
        raise ClipSearchError(
            f"the terminal UI needs the `tui` extra ({exc.name} is missing): "
            "pip install 'clipsearch-onnx[tui]'"
        ) from None
    return run_app(settings_from(args))
