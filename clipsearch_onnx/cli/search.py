"""`clipsearch search`: top-k images for a text, an image, or both; or many queries from a file.

Options are added in `register` (grouped by what they do) and read in `run`; result formatting
lives in its own functions so that new output modes and query kinds slot in beside the others.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from clipsearch_onnx.cli.options import add_common, settings_from
from clipsearch_onnx.cli.output import print_json
from clipsearch_onnx.cli.parsing import JoinWords
from clipsearch_onnx.cli.query_file import answer_queries, read_queries
from clipsearch_onnx.cli.usage import add_command
from clipsearch_onnx.errors import ExitCode, InputError


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "search",
        help="search by text, by image, or both",
        description="Top-k images for a text, an image, or both (their embeddings "
        "averaged). The index remembers its model, so --model is optional.",
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
    p.add_argument(
        "--queries",
        metavar="FILE",
        help='answer many queries: a text per line, or {"text": .., "image": .., "k": ..}; '
        '- reads stdin. One JSON line per query, with its "line" number; a line that cannot '
        'be answered gets {"line": N, "error": ...} instead and the exit code is 6',
    )
    add_common(p)
    return p


def format_table(data: dict[str, Any]) -> str:
    """The plain table of a search's JSON (`Response.to_json()`, local or from a server)."""
    results = data["results"]
    if not results:
        return "no results (the index is empty)\n"
    lines = []
    for r in results:
        caption = r["captions"][0] if r["captions"] else ""
        if len(caption) > 60:
            caption = caption[:59] + "…"
        lines.append(f"{r['rank']:>3}  {r['score']:6.3f}  {caption:<60}  {r['path']}")
    return "\n".join(lines) + "\n"


def write_response(
    data: dict[str, Any], args: argparse.Namespace, out: TextIO | None = None
) -> None:
    """Writes a search's JSON (`Response.to_json()`) as the arguments ask, on stdout unless `out`
    says otherwise: `clipsearch serve` calls it for a search it answers in place of this process
    (issue 15)."""
    out = out or sys.stdout
    if args.json:
        print_json(data, out)
    elif args.jsonl:
        for result in data["results"]:
            print_json(result, out)
    else:
        out.write(format_table(data))


def run(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise InputError("-k must be at least 1")
    if args.queries is None and args.text is None and args.image is None:
        raise InputError("give a TEXT, --image PATH, or --queries FILE")
    queries = read_queries(args.queries) if args.queries is not None else None
    settings = settings_from(args)
    from clipsearch_onnx.search import open_searcher

    # one query: load the text tower fast; a query file: run it fast
    searcher = open_searcher(settings, quick_start=queries is None)
    try:
        if queries is not None:
            return answer_queries(searcher, queries, args.k)
        response = searcher.search(args.text, args.image, args.k)
    finally:
        searcher.close()
    write_response(response.to_json(), args)
    return ExitCode.OK
