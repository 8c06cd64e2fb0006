"""The top-level parser and the list of commands.

A command is a module of this package with `register(subparsers) -> ArgumentParser` (which adds
its subparser through `usage.add_command`) and `run(args) -> int`. To add one, write the module
and add it to COMMANDS (command name -> module name); the order there is the order in
`clipsearch --help`. Modules are imported on demand: `clipsearch search ...` loads only search's.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from clipsearch_onnx import __version__
from clipsearch_onnx.cli.parsing import Parser
from clipsearch_onnx.cli.usage import EXIT_CODES

COMMANDS = {
    "index": "index",
    "search": "search",
    "info": "info",
    "import": "import_",  # `import` is a keyword
    "embed-shards": "embed_shards",
    "reindex": "reindex",
    "dups": "dups",
    "embed": "embed",
    "eval": "eval",
    "models": "models",
    "dataset": "dataset",
    "tui": "tui",
    "serve": "serve",
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command; given arguments that start with a command's name, only of
    that command (a one-shot `clipsearch search` imports no other command module)."""
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
    names = [argv[0]] if argv and argv[0] in COMMANDS else list(COMMANDS)
    for name in names:
        command = importlib.import_module(f"clipsearch_onnx.cli.{COMMANDS[name]}")
        command.register(subparsers).set_defaults(run=command.run)
    return parser
