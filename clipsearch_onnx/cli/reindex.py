"""`clipsearch reindex`: train the vector index's layout again and re-encode every vector.

An index run re-trains on its own only when the collection outgrows its layout (the list count
it would choose doubles and the collection has at least doubled since training); this command does
it on request, for instance after the collection changed character, or to switch --index-type.
Nothing is scanned or embedded: the stored embeddings are re-encoded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from clipsearch_onnx.cli.options import add_common, add_layout, settings_from
from clipsearch_onnx.cli.usage import add_command
from clipsearch_onnx.errors import ExitCode


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "reindex",
        help="train the vector index again and re-encode the stored embeddings",
        description=__doc__.split("\n\n", 1)[1].strip(),
    )
    add_common(p, model=False)
    add_layout(p, keep_present=True)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    return p


def run(args: argparse.Namespace) -> int:
    from clipsearch_onnx.progressbar import Bar
    from clipsearch_onnx.publishing import Progress
    from clipsearch_onnx.writer import reindex

    settings = settings_from(args)
    index_dir = settings.resolved_index_dir()
    bar = Bar(enabled=not args.quiet, unit="vectors")
    meta = reindex(
        index_dir,
        index_type=args.index_type or _present_type(index_dir),
        ivf_threshold=args.ivf_threshold,
        progress=Progress(start=bar.start, advance=bar.advance),
    )
    bar.finish()
    if not args.quiet:
        layout = meta["layout"] or {}
        print(
            f"re-trained: {meta['count']} vectors, {meta['type']} with {meta['nlist']} lists "
            f"(layout {layout.get('name')})",
            file=sys.stderr,
        )
    return ExitCode.OK


def _present_type(index_dir: Path) -> str:
    """The type of the live index ("auto" when there is none: reindex then says so)."""
    from clipsearch_onnx.errors import IndexError_
    from clipsearch_onnx.generations import read_meta
    from clipsearch_onnx.layout import current_dir

    try:
        build = current_dir(index_dir)
        return str(read_meta(build)["type"]) if build is not None else "auto"
    except (IndexError_, KeyError):
        return "auto"
