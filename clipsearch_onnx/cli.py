"""`clipsearch`: argument parsing and the one place where errors become messages and exit codes."""

from __future__ import annotations

import argparse
import os
import sys

from clipsearch_onnx import __version__
from clipsearch_onnx.errors import ClipSearchError, ExitCode

EXIT_CODES = """exit codes:
  0    success (an index run that skipped unreadable files still succeeds)
  1    unexpected error
  2    bad command-line arguments
  3    model folder missing, incomplete, damaged, or not the index's model
  4    index missing, damaged, locked by another run, or built with another model
  5    unusable input: query image, query file, captions file, shard
  130  interrupted (Ctrl-C); finished batches are kept

settings: a flag wins over CLIPSEARCH_MODEL, CLIPSEARCH_INDEX, CLIPSEARCH_PRECISION,
CLIPSEARCH_THREADS, CLIPSEARCH_BATCH_SIZE, which win over config.toml in CLIPSEARCH_HOME
(default ~/.local/share/clipsearch), where the default model and index folders also live.
"""

INDEX_TYPES = ("auto", "flat", "ivf-sq8", "ivf-pq")


def _common(p: argparse.ArgumentParser, *, index: bool = True, model: bool = True) -> None:
    if index:
        p.add_argument(
            "--index", metavar="DIR", help="index folder (default: CLIPSEARCH_HOME/index)"
        )
    if model:
        p.add_argument("--model", metavar="DIR", help="exported model folder (from `make export`)")
        p.add_argument(
            "--precision",
            choices=("int8", "fp32"),
            help="model precision (default: the index's, else the model's default)",
        )
        p.add_argument(
            "--threads", type=int, metavar="N", help="inference threads (default: physical cores)"
        )


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="clipsearch",
        description="Find pictures by describing them or by showing an example, on a CPU.\n\n"
        "typical use:\n"
        "  clipsearch index ~/Pictures            # embed every image once (resumable)\n"
        '  clipsearch search "a dog on the beach" # top 10 images\n'
        "  clipsearch search --image photo.jpg    # more like this one\n"
        "  clipsearch tui                          # the terminal UI",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"clipsearch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "index",
        help="index the images below a folder (incremental, resumable)",
        description="Embed every image below PATH and store the vectors in an "
        "on-disk index. Batches are committed as they finish: an interrupted run "
        "resumes where it stopped; a second run embeds only new and changed files "
        "and drops deleted ones.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    p.add_argument("path", metavar="PATH", help="folder of images (searched recursively)")
    p.add_argument(
        "--captions",
        metavar="FILE",
        help="captions in Flickr8k format (name.jpg#k<TAB>caption), attached by name",
    )
    _common(p)
    p.add_argument("--batch-size", type=int, metavar="N", help="images per inference batch (32)")
    p.add_argument(
        "--checkpoint",
        type=int,
        default=256,
        metavar="N",
        help="commit every N images; at most this much work is redone after a crash",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="N",
        help="threads decoding images ahead of inference (2)",
    )
    p.add_argument(
        "--index-type",
        choices=INDEX_TYPES,
        default="auto",
        help="flat (exact) or IVF (approximate, for large collections); auto picks "
        "flat below --ivf-threshold vectors",
    )
    p.add_argument(
        "--ivf-threshold",
        type=int,
        default=200_000,
        metavar="N",
        help="collection size from which auto uses ivf-sq8 (200000)",
    )
    p.add_argument("--rebuild", action="store_true", help="forget the existing index, start over")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")

    p = sub.add_parser(
        "search",
        help="search by text, by image, or both",
        description="Top-k images for a text, an image, or both (their embeddings "
        "averaged). The index remembers its model, so --model is optional.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    p.add_argument("text", nargs="?", metavar="TEXT", help="what to look for, in words")
    p.add_argument("--image", metavar="PATH", help="an example image")
    p.add_argument("-k", type=int, default=10, metavar="N", help="how many results (10)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object with query and results")
    out.add_argument("--jsonl", action="store_true", help="one JSON line per result")
    p.add_argument(
        "--queries",
        metavar="FILE",
        help='answer many queries (a text per line, or {"text":..,"image":..}); '
        "- reads stdin; one JSON line per query",
    )
    _common(p)

    p = sub.add_parser("info", help="what an index holds", epilog=EXIT_CODES, formatter_class=fmt)
    _common(p, model=False)
    p.add_argument("--json", action="store_true", help="JSON output")
    p.add_argument("--verify", action="store_true", help="checksum every index file in full")

    p = sub.add_parser(
        "import",
        help="merge embedding shards computed elsewhere",
        description="A shard is a folder with embeddings.npy (float32 [N,D], unit "
        'rows) and items.jsonl (N lines {"path": ..., "captions": [...]}).',
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    p.add_argument("shards", nargs="+", metavar="SHARD_DIR")
    _common(p)
    p.add_argument("--index-type", choices=INDEX_TYPES, default="auto")
    p.add_argument("--ivf-threshold", type=int, default=200_000, metavar="N")
    p.add_argument("-q", "--quiet", action="store_true")

    p = sub.add_parser(
        "embed",
        help="print embeddings of texts and images as JSON lines",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    p.add_argument("--text", action="append", default=[], metavar="T", help="repeatable")
    p.add_argument("--image", action="append", default=[], metavar="PATH", help="repeatable")
    _common(p, index=False)

    p = sub.add_parser(
        "eval",
        help="recall@1/5/10 on a captioned set (Flickr8k protocol)",
        description="Text-to-image and image-to-text recall@K over the test split "
        "(Flickr8k: 1,000 images, 5,000 captions), for each precision asked for.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    p.add_argument(
        "--dataset",
        metavar="DIR",
        help="Flickr8k-style folder: Images/, captions.txt, Flickr_8k.testImages.txt",
    )
    p.add_argument("--images", metavar="DIR", help="image folder (instead of --dataset)")
    p.add_argument("--captions", metavar="FILE", help="captions file (with --images)")
    p.add_argument("--split", metavar="FILE", help="file names to evaluate on (with --images)")
    p.add_argument("--whole", action="store_true", help="use every captioned image, not the split")
    p.add_argument("--model", metavar="DIR", help="exported model folder")
    p.add_argument(
        "--precision",
        dest="precisions",
        default="fp32,int8",
        metavar="LIST",
        help="fp32, int8, or fp32,int8 (default)",
    )
    p.add_argument("--threads", type=int, metavar="N")
    p.add_argument("--batch-size", type=int, metavar="N")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser(
        "dataset",
        help="download a public dataset (Flickr8k)",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    p.add_argument("name", choices=("flickr8k",))
    p.add_argument(
        "--dest", default="data/flickr8k", metavar="DIR", help="where to lay it out (data/flickr8k)"
    )

    p = sub.add_parser("tui", help="the terminal UI", epilog=EXIT_CODES, formatter_class=fmt)
    _common(p)

    from clipsearch_onnx import commands

    for name, func in (
        ("index", commands.cmd_index),
        ("search", commands.cmd_search),
        ("info", commands.cmd_info),
        ("import", commands.cmd_import),
        ("embed", commands.cmd_embed),
        ("eval", commands.cmd_eval),
        ("dataset", commands.cmd_dataset),
        ("tui", commands.cmd_tui),
    ):
        sub.choices[name].set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
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
