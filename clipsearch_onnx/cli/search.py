"""`clipsearch search`: top-k images for a text, an image, or both; or many queries from a file.

Options are added in `register` (grouped by what they do) and read in `run`; result formatting
lives in cli/results.py (table, --paths, -0, --preview, --json, --jsonl), so that new output modes
and query kinds slot in beside the others.
"""

from __future__ import annotations

import argparse
from typing import Any

from clipsearch_onnx.cli.filters import add_filter_options, filter_from
from clipsearch_onnx.cli.options import add_common, settings_from
from clipsearch_onnx.cli.parsing import JoinWords
from clipsearch_onnx.cli.query_file import answer_queries, read_queries
from clipsearch_onnx.cli.results import table_width, write_response
from clipsearch_onnx.cli.usage import add_command
from clipsearch_onnx.errors import ExitCode, InputError, UsageError


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "search",
        help="search by text, by image, or both",
        description="Top-k images for a text, an image, or both (their embeddings "
        "averaged). The index remembers its model, so --model is optional. On a terminal the "
        "results are a table with a header that fits its width (file names are never cut); "
        "in a pipe, one row per result with the whole path.",
    )
    p.add_argument(
        "text",
        nargs="*",
        action=JoinWords,
        metavar="TEXT",
        help="what to look for, in words (quoting them is optional)",
    )
    p.words_hint = "the words of TEXT go together, before or after the options"
    p.add_argument("--image", metavar="PATH", help="an example image")
    p.add_argument("-k", type=int, default=10, metavar="N", help="how many results (10)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object with query and results")
    out.add_argument("--jsonl", action="store_true", help="one JSON line per result")
    out.add_argument(
        "--paths", action="store_true", help="the paths alone, one a line (those of --json)"
    )
    p.add_argument(
        "-0",
        "--null",
        action="store_true",
        help="the paths alone, each ended by a NUL byte (for xargs -0)",
    )
    p.add_argument(
        "--preview",
        nargs="?",
        const="auto",
        choices=("auto", "kitty", "sixel", "blocks"),
        metavar="MODE",
        help="a thumbnail under each row of the table: auto (the default MODE) draws with the "
        "Kitty graphics protocol or Sixel where the terminal is known to have them, else "
        "with coloured half blocks, and nothing when stdout is not a terminal; kitty, sixel or "
        "blocks force that way, even into a pipe. CLIPSEARCH_GRAPHICS=kitty|sixel|blocks|none "
        "replaces the detection",
    )
    p.add_argument(
        "--queries",
        metavar="FILE",
        help='answer many queries: a text per line, or {"text": .., "image": .., "k": ..}; '
        '- reads stdin. One JSON line per query, with its "line" number; a line that cannot '
        'be answered gets {"line": N, "error": ...} instead and the exit code is 6',
    )
    add_filter_options(p)
    add_common(p)
    return p


def check_output_options(args: argparse.Namespace) -> None:
    if args.null and (args.json or args.jsonl):
        raise UsageError("-0 writes paths; it does not go with --json or --jsonl")
    if args.preview and (args.json or args.jsonl or args.paths or args.null):
        raise UsageError("--preview draws the table's pictures; it goes with no other output mode")
    if args.queries is not None and (args.paths or args.null or args.preview):
        raise UsageError("--queries answers in JSON lines; --paths, -0 and --preview need a query")


def run(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise InputError("-k must be at least 1")
    if args.queries is None and args.text is None and args.image is None:
        raise InputError("give a TEXT, --image PATH, or --queries FILE")
    check_output_options(args)
    queries = read_queries(args.queries) if args.queries is not None else None
    where = filter_from(args)
    settings = settings_from(args)
    from clipsearch_onnx.search import open_searcher

    # one query: load the text tower fast; a query file: run it fast
    searcher = open_searcher(settings, quick_start=queries is None)
    try:
        if queries is not None:
            return answer_queries(searcher, queries, args.k, where)
        response = searcher.search(args.text, args.image, args.k, where=where)
    finally:
        searcher.close()
    write_response(response.to_json(), args, columns=table_width())
    return ExitCode.OK
