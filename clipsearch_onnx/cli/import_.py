"""`clipsearch import SHARD_DIR...`: merge embedding shards computed elsewhere.

(The module is `import_` because `import` is a keyword; the command is `import`.)"""

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
        "import",
        help="merge embedding shards computed elsewhere",
        description="A shard is a folder with embeddings.npy (float32 [N,D], unit "
        'rows) and items.jsonl (N lines {"path": ..., "captions": [...]}). A job folder '
        "holds shards, each complete once its shard.json exists; shards imported before "
        "(same shard.json) are skipped. Shards are hard-linked into the index, not copied.",
    )
    p.add_argument(
        "shards",
        nargs="+",
        metavar="SHARD_OR_JOB_DIR",
        help="shard folders, or job folders of `clipsearch embed-shards`",
    )
    p.add_argument(
        "--root",
        metavar="DIR",
        help="the folder relative item paths are relative to (default: the root a job records "
        "in shard.json or job.json)",
    )
    add_common(p, inference=False)
    add_layout(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    return p


def run(args: argparse.Namespace) -> int:
    from clipsearch_onnx.importer import import_shards
    from clipsearch_onnx.progressbar import Bar

    settings = settings_from(args)
    bar = Bar(enabled=not args.quiet, unit="items")
    report = import_shards(
        settings.resolved_index_dir(),
        [Path(s) for s in args.shards],
        settings.model_dir,
        precision=settings.precision,
        index_type=args.index_type,
        ivf_threshold=args.ivf_threshold,
        progress=bar.start,
        advance=bar.advance,
        root=Path(args.root) if args.root else None,
    )
    bar.finish()
    for shard in report.unfinished:
        print(f"not imported {shard}: unfinished (no shard.json yet)", file=sys.stderr)
    if not args.quiet:
        already = f" ({report.already} imported before)" if report.already else ""
        print(
            f"imported {report.items} items from {report.shards} shards{already}; "
            f"the index holds {report.count}",
            file=sys.stderr,
        )
    return ExitCode.OK
