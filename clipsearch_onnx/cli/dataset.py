"""`clipsearch dataset flickr8k`: download a public dataset and lay it out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from clipsearch_onnx.cli.usage import add_command
from clipsearch_onnx.errors import ExitCode


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "dataset",
        help="download a public dataset (Flickr8k)",
        description="Download Flickr8k (about 1 GB) and lay it out as `clipsearch eval --dataset` "
        "and `make index` read it: DIR/Images/, DIR/captions.txt and the split files. An "
        "interrupted download resumes when the command runs again.",
    )
    p.add_argument("name", choices=("flickr8k",), help="the dataset")
    p.add_argument(
        "--dest", default="data/flickr8k", metavar="DIR", help="where to lay it out (data/flickr8k)"
    )
    return p


def run(args: argparse.Namespace) -> int:
    from clipsearch_onnx.dataset import fetch_flickr8k
    from clipsearch_onnx.progressbar import Bar

    bar = Bar(unit="B")
    dest = fetch_flickr8k(Path(args.dest).expanduser(), start=bar.start, advance=bar.advance)
    bar.finish()
    print(f"Flickr8k is ready in {dest} (Images/, captions.txt, split files)", file=sys.stderr)
    return ExitCode.OK
