"""Help text shared by every command: the exit-code table and how a command's parser is made."""

from __future__ import annotations

import argparse
from typing import Any

from clipsearch_onnx.cli.parsing import Parser
from clipsearch_onnx.settings import describe

EXIT_CODES = """exit codes:
  0    success (an index run that skipped unreadable files still succeeds)
  1    any other failure (a download that failed), or an unexpected error
  2    bad command-line arguments or settings (a flag, a CLIPSEARCH_* variable, config.toml)
  3    model folder missing, incomplete, damaged, or not the index's model
  4    index missing, damaged, locked by another run, or built with another model
  5    unusable input: query image, query file, captions file, shard
  6    search --queries: some lines failed (each has an error result); the rest were answered
  7    tui: no terminal (stdin or stdout is not one)
  129  tui: the terminal went away (closed, hung up)
  130  interrupted (Ctrl-C); finished batches are kept (a Ctrl-C once a command is done
       leaves that command's code)

""" + describe()


def add_command(subparsers: Any, name: str, **kwargs: Any) -> Parser:
    """The subparser of command `name`, with the exit-code table as its epilog."""
    kwargs.setdefault("epilog", EXIT_CODES)
    kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
    parser: Parser = subparsers.add_parser(name, **kwargs)
    return parser
