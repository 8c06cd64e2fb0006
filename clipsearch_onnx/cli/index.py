"""`clipsearch index PATH`: embed every image below a folder into an index (incremental)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from clipsearch_onnx.cli import interrupts
from clipsearch_onnx.cli.options import add_common, add_decoding, add_layout, settings_from
from clipsearch_onnx.cli.usage import add_command
from clipsearch_onnx.errors import ExitCode


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "index",
        help="index the images below a folder (incremental, resumable)",
        description="Embed every image below PATH and store the vectors in an "
        "on-disk index. Batches are committed as they finish: an interrupted run "
        "resumes where it stopped; a second run embeds only new and changed files "
        "and drops deleted ones.",
    )
    p.add_argument("path", metavar="PATH", help="folder of images (searched recursively)")
    p.add_argument(
        "--captions",
        metavar="FILE",
        help="captions in Flickr8k format (name.jpg#k<TAB>caption), attached by name",
    )
    add_common(p)
    add_decoding(p)
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
    add_layout(p)
    p.add_argument("--rebuild", action="store_true", help="forget the existing index, start over")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="also show what the decoding libraries say about odd files (by default each "
        "skipped file gets one line, and their warnings are dropped)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    from clipsearch_onnx.quiet import quiet_libraries

    with quiet_libraries(enabled=not args.verbose):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from clipsearch_onnx import models
    from clipsearch_onnx.indexer import Indexer, Progress
    from clipsearch_onnx.pipeline import decoding_for
    from clipsearch_onnx.progressbar import Bar

    settings = settings_from(args)
    bar = Bar(enabled=not args.quiet)
    indexer = Indexer(
        settings.resolved_index_dir(),
        models.for_writing(settings, settings.resolved_index_dir()).encoder(
            settings.threads, backend=settings.backend
        ),
        batch_size=settings.batch_size,
        checkpoint=args.checkpoint,
        index_type=args.index_type,
        ivf_threshold=args.ivf_threshold,
        workers=args.workers,
        decoding=decoding_for(settings.decoding, bulk=True),
        progress=Progress(
            start=bar.start,
            advance=bar.advance,
            skip=lambda path, reason: bar.message(f"skipped {path}: {reason}"),
        ),
    )
    try:
        report = indexer.run(Path(args.path), args.captions, rebuild=args.rebuild)
    except KeyboardInterrupt:
        bar.finish()
        interrupts.report(
            f"{interrupts.LINE}: finished batches are kept; run the same command to resume"
        )
        return ExitCode.INTERRUPTED
    bar.finish()
    for warning in report.caption_warnings[:20]:
        print(f"captions: {warning}", file=sys.stderr)
    if len(report.caption_warnings) > 20:
        print(f"captions: ... and {len(report.caption_warnings) - 20} more", file=sys.stderr)
    if not args.quiet:
        print(
            f"indexed {report.count} images in {settings.resolved_index_dir()}: "
            f"{report.added} added, {report.changed} changed, {report.moved} moved, "
            f"{report.removed} removed, {report.unchanged} unchanged, "
            f"{len(report.skipped)} skipped; {report.embedded} embedded in {report.seconds:.1f} s "
            f"({report.images_per_second:.1f} img/s)",
            file=sys.stderr,
        )
    return ExitCode.OK
