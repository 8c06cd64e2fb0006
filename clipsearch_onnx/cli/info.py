"""`clipsearch info`: what an index holds."""

from __future__ import annotations

import argparse
from typing import Any

from clipsearch_onnx.cli.options import add_common, settings_from
from clipsearch_onnx.cli.output import print_json
from clipsearch_onnx.cli.usage import add_command
from clipsearch_onnx.errors import ExitCode


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "info",
        help="what an index holds",
        description="The index's image count, model, precision, vector index type, size on disk, "
        "last update and the files its runs skipped (the first 20; --json lists them all).",
    )
    add_common(p, model=False)
    p.add_argument("--json", action="store_true", help="JSON output")
    p.add_argument(
        "--verify",
        action="store_true",
        help="checksum every index file in full (a mismatch: one line, exit code 4)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    from clipsearch_onnx.search import read_info

    info = read_info(settings_from(args).resolved_index_dir(), verify_full=args.verify)
    if args.json:
        print_json(info.to_json())
        return ExitCode.OK
    print(f"index:      {info.index_dir}")
    print(f"images:     {info.count}")
    print(f"model:      {info.model_source or '?'} ({info.model_dir})")
    print(f"precision:  {info.precision}")
    print(f"type:       {info.index_type}")
    print(f"on disk:    {info.bytes_on_disk / 1e6:.1f} MB")
    print(f"updated:    {info.updated}")
    print(f"skipped:    {len(info.skipped)} files")
    for path, reason in info.skipped[:20]:
        print(f"  {path}: {reason}")
    return ExitCode.OK
