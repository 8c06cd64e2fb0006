"""The top-level parser and the list of commands.

A command is a module of this package with `register(subparsers) -> ArgumentParser` (which adds
its subparser through `usage.add_command`) and `run(args) -> int`. To add one, write the module
and list it in COMMANDS; the order there is the order in `clipsearch --help`.
"""

from __future__ import annotations

import argparse

from clipsearch_onnx import __version__
from clipsearch_onnx.cli import dataset, embed, import_, index, info, search, serve, tui
from clipsearch_onnx.cli import eval as eval_
from clipsearch_onnx.cli.parsing import Parser
from clipsearch_onnx.cli.usage import EXIT_CODES

COMMANDS = (index, search, info, import_, embed, eval_, dataset, tui, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="clipsearch",
        description="Find pictures by describing them or by showing an example, on a CPU.\n\n"
        "typical use:\n"
        "  clipsearch index ~/Pictures            # embed every image once (resumable)\n"
        '  clipsearch search "a dog on the beach" # top 10 images\n'
        "  clipsearch search --image photo.jpg    # more like this one\n"
        "  clipsearch tui                          # the terminal UI\n"
        "  clipsearch serve                        # the browser gallery",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"clipsearch {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers).set_defaults(run=command.run)
    return parser
