"""`clipsearch dups`: groups of near-duplicate images in an index (re-encoded, resized and
slightly cropped copies).

Two images are near-duplicates when their stored embeddings score at least --threshold, or when
their perceptual fingerprints (stored at index time) differ in at most --fingerprint-bits bits
and their embeddings score at least 0.5; a group is every image linked by such pairs (a chain of
copies is one group). Nothing is decoded or embedded: the index's vectors are streamed a block at
a time through a range search, the fingerprints through a binary range search, and every pair found
is scored again exactly with the stored float32 embeddings.

The default threshold separates re-encoded (JPEG q=60) and half-size copies from distinct
pictures on the models measured (README, Duplicates); the fingerprints find 5%-cropped copies of
photo-like pictures. On flat graphics (the demo's scenes) distinct pictures have close
fingerprints: --fingerprint-bits 0 groups by the embeddings alone.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from clipsearch_onnx.cli.filters import add_filter_options, filter_from
from clipsearch_onnx.cli.options import add_common, settings_from
from clipsearch_onnx.cli.usage import add_command
from clipsearch_onnx.errors import ExitCode, InputError

DEFAULT_THRESHOLD = 0.98  # = dups.DEFAULT_THRESHOLD (not imported: `--help` stays light)
FINGERPRINT_BITS = 14  # = dups.FINGERPRINT_BITS


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "dups",
        help="list groups of near-duplicate images",
        description=__doc__.split("\n\n", 1)[1].strip(),
    )
    add_common(p, model=False)
    p.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        metavar="T",
        help=f"cosine at or above which two images are near-duplicates ({DEFAULT_THRESHOLD})",
    )
    p.add_argument(
        "--fingerprint-bits",
        type=int,
        default=FINGERPRINT_BITS,
        metavar="N",
        help=f"fingerprints at most N bits apart (of 64) link images scoring >= 0.5 "
        f"({FINGERPRINT_BITS}; 0: the embeddings alone)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='a JSON list of groups: {"size", "paths", "pairs": [{"a", "b", "score"}]} '
        "(every pair of a group up to 32 images, else the links found)",
    )
    p.add_argument(
        "--nprobe",
        type=int,
        default=16,
        metavar="N",
        help="on an IVF index, the lists read per image (16; more finds more on a very large "
        "index, slower)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_filter_options(p, results=False)
    return p


def run(args: argparse.Namespace) -> int:
    if args.nprobe < 1:
        raise InputError("--nprobe must be at least 1")
    if not 0.0 < args.threshold <= 1.0:
        raise InputError(f"--threshold takes a cosine in (0, 1], not {args.threshold}")
    if not 0 <= args.fingerprint_bits <= 32:
        raise InputError(f"--fingerprint-bits takes 0 to 32, not {args.fingerprint_bits}")
    from clipsearch_onnx.cli.output import print_json
    from clipsearch_onnx.dups import find_groups
    from clipsearch_onnx.progressbar import Bar

    where = filter_from(args)
    bar = Bar(enabled=not args.quiet, unit="img")
    groups = find_groups(
        settings_from(args).resolved_index_dir(),
        args.threshold,
        total=lambda n: bar.start("comparing", n),
        progress=bar.advance,
        nprobe=args.nprobe,
        where=where,
        fingerprint_bits=args.fingerprint_bits,
    )
    bar.finish()
    if args.json:
        print_json([g.to_json() for g in groups])
        return ExitCode.OK
    for n, group in enumerate(groups, 1):
        low = min((s for _, _, s in group.pairs), default=1.0)
        print(f"group {n}: {len(group.paths)} images (scores >= {low:.3f})")
        for path in group.paths:
            print(f"  {path}")
    if not args.quiet:
        copies = sum(len(g.paths) - 1 for g in groups)
        print(f"{len(groups)} groups, {copies} copies beyond one per group", file=sys.stderr)
    return ExitCode.OK
