"""`clipsearch search`: top-k images for a text, an image, or both; or many queries from a file.

Options are added in `register` (grouped by what they do) and read in `run`; result formatting
lives in cli/results.py (table, --paths, -0, --preview, --json, --jsonl), so that new output modes
and query kinds slot in beside the others.
"""

from __future__ import annotations

import argparse
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from clipsearch_onnx.cli.filters import add_filter_options, filter_from
from clipsearch_onnx.cli.options import add_common, add_decoding, settings_from
from clipsearch_onnx.cli.parsing import JoinWords
from clipsearch_onnx.cli.query_file import answer_queries, read_queries
from clipsearch_onnx.cli.results import table_width, write_response
from clipsearch_onnx.cli.usage import EXIT_CODES, add_command
from clipsearch_onnx.errors import ClipSearchError, ExitCode, InputError, UsageError

if TYPE_CHECKING:
    from clipsearch_onnx.query import Term
    from clipsearch_onnx.relevance import Cut


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "search",
        help="search by text, by image, or both",
        description="Top-k images for a query: texts and images joined by ' + ' and ' - ', each "
        'with an optional weight, e.g. "beach + 2:sunset - people" or "./dog.jpg + in '
        'the snow" (the normalised weighted sum of their embeddings). The index remembers its '
        "model, so --model is optional. On a terminal the results are a table with a header "
        "that fits its width (file names are never cut); in a pipe, one row per result with "
        "the whole path. Scores are cosines: with a CLIP model they only compare within one "
        "query (a 0.3 can be the best match of one query and noise for another); SigLIP "
        "models also give each result a match probability, prob in --json/--jsonl, the same "
        "for every query.",
        epilog=QUERY_SYNTAX + "\n" + EXIT_CODES,
    )
    p.add_argument(
        "text",
        nargs="*",
        action=JoinWords,
        metavar="TEXT",
        help="what to look for, in words (quoting them is optional)",
    )
    p.words_hint = "the words of TEXT go together, before or after the options"
    terms = p.add_argument_group("query terms for scripts (each taken whole, never split)")
    terms.add_argument(
        "--image",
        action="append",
        metavar="PATH|URL",
        help="an example image: a file or an http(s) URL (W:PATH weighs it); repeatable",
    )
    terms.add_argument(
        "--text",
        dest="texts",
        action="append",
        metavar="T",
        help="a text to add (W:T weighs it; \\T: T exactly); repeatable",
    )
    terms.add_argument(
        "--not",
        dest="nots",
        action="append",
        metavar="T",
        help="a text, image file or URL to subtract (W:T weighs it; 0.5 unless given); repeatable",
    )
    cut = p.add_argument_group("relevance: fewer than k results when fewer are relevant")
    cut.add_argument(
        "--min-score", type=float, metavar="S", help="drop the results scoring below S"
    )
    cut.add_argument(
        "--min-prob",
        type=_probability,
        metavar="P",
        help="drop the results whose match probability is below P (0-1; SigLIP models only)",
    )
    cut.add_argument(
        "--cutoff",
        choices=("auto",),
        help="auto: keep the results that stand out from what queries that mean nothing "
        "score on the same image (see the README); a query that matches nothing gets none",
    )
    cut.add_argument(
        "--exclude-query",
        action="store_true",
        help="leave out the query's own images (the same file or the same content)",
    )
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
    add_decoding(p)
    return p


QUERY_SYNTAX = r"""query syntax (TEXT, --queries lines and the HTTP API's q; rclip's, with escapes):
  beach + 2:sunset - people     terms joined by ' + ' and ' - ' (spaces around: t-shirt is a word)
  ./dog.jpg + in the snow       a term starting with / ./ ../ ~/ file://, or one word ending in an
                                image extension (dog.jpg), is an image file; http(s)://... an image
                                URL; anything else a text. A missing file or a folder is an error
  0.5:./photo.jpg + 2:sunset    W: weighs a term (default 1; a subtracted one 0.5: - 1:people
                                is rclip's equal weight)
  \2:1 aspect ratio             a leading backslash makes the term a text, whatever follows
  rock \- paper + scissors      \- and \+ are a literal - and +; \\ is a backslash"""


def _probability(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 1:
        raise ValueError(raw)
    return value


def query_terms(args: argparse.Namespace) -> tuple[str | None, list[Term]]:
    """The one --image given plainly (kept as the query's `image`), and the terms of --text,
    --image and --not, in that order."""
    from clipsearch_onnx.query import TEXT, WEIGHT, image_term, parse_term

    images = args.image or []
    plain = images[0] if len(images) == 1 and not WEIGHT.fullmatch(images[0]) else None
    terms = [parse_term(t, kind=TEXT) for t in args.texts or []]
    if plain is None:
        for value in images:
            weighted = WEIGHT.fullmatch(value)
            weight, value = (float(weighted["w"]), weighted["rest"]) if weighted else (1.0, value)
            terms.append(image_term(value.strip(), weight=weight))
    terms += [parse_term(t, sign=-1) for t in args.nots or []]
    return plain, terms


def _has_image(args: argparse.Namespace, terms: list[Term]) -> bool:
    from clipsearch_onnx.query import parse_terms

    if any(t.is_image for t in terms):
        return True
    try:
        return args.text is not None and any(t.is_image for t in parse_terms(args.text))
    except ClipSearchError:  # the search itself reports what is wrong with the query
        return False


def _quiet_decoders(images: bool) -> AbstractContextManager[None]:
    """A query image is one file read like an indexed one: its failure is one line, not the
    decoding libraries' chatter on stderr (libtiff writes to descriptor 2 itself). A text-only
    search skips this, and the import of `logging` it would cost."""
    if not images:
        return nullcontext()
    from clipsearch_onnx.quiet import quiet_libraries

    return quiet_libraries()


def relevance_cut(args: argparse.Namespace) -> Cut | None:
    from clipsearch_onnx.relevance import Cut

    if args.min_score is None and args.min_prob is None and args.cutoff is None:
        return None
    return Cut(args.min_score, args.min_prob, args.cutoff == "auto")


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
    given = args.text is not None or args.image or args.texts or args.nots
    if args.queries is None and not given:
        raise InputError("give a TEXT, --image PATH, or --queries FILE")
    if args.queries is not None and given:
        raise UsageError("--queries reads its queries from the file; give no TEXT or terms")
    check_output_options(args)
    queries = read_queries(args.queries) if args.queries is not None else None
    where = filter_from(args)
    image, terms = query_terms(args)
    cut = relevance_cut(args)
    settings = settings_from(args)
    from clipsearch_onnx.search import open_searcher

    # one query: load the text tower fast; a query file: run it fast
    searcher = open_searcher(settings, quick_start=queries is None)
    try:
        with _quiet_decoders(queries is not None or image is not None or _has_image(args, terms)):
            if queries is not None:
                return answer_queries(searcher, queries, args.k, where, cut, args.exclude_query)
            response = searcher.search(
                args.text,
                image,
                args.k,
                terms=terms,
                where=where,
                cut=cut,
                exclude_query=args.exclude_query,
            )
    finally:
        searcher.close()
    write_response(response.to_json(), args, columns=table_width())
    return ExitCode.OK
