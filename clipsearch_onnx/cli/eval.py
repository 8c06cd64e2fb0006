"""`clipsearch eval`: recall@1/5/10 on a captioned image set (the Flickr8k protocol)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from clipsearch_onnx.cli.options import add_backend, settings_from
from clipsearch_onnx.cli.output import print_json
from clipsearch_onnx.cli.usage import add_command
from clipsearch_onnx.errors import ExitCode, InputError


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "eval",
        help="recall@1/5/10 on a captioned set (Flickr8k protocol)",
        description="Text-to-image and image-to-text recall@K over the test split "
        "(Flickr8k: 1,000 images, 5,000 captions), for each precision asked for. Images are "
        "always decoded the reference way (a full decode and the checkpoint's own image "
        "processor, CLIPImageProcessor or SiglipImageProcessor), whatever shortcuts indexing "
        "takes.",
    )
    p.add_argument(
        "--dataset",
        metavar="DIR",
        help="Flickr8k-style folder: Images/, captions.txt, Flickr_8k.testImages.txt (what "
        "`clipsearch dataset flickr8k --dest DIR` lays out)",
    )
    p.add_argument("--images", metavar="DIR", help="image folder (instead of --dataset)")
    p.add_argument("--captions", metavar="FILE", help="captions file (with --images)")
    p.add_argument("--split", metavar="FILE", help="file names to evaluate on (with --images)")
    p.add_argument("--whole", action="store_true", help="use every captioned image, not the split")
    p.add_argument(
        "--model",
        metavar="DIR",
        help="exported model folder (default: CLIPSEARCH_HOME/models/clip-vit-b32)",
    )
    p.add_argument(
        "--precision",
        dest="precisions",
        default="fp32,int8",
        metavar="LIST",
        help="fp32, int8, or fp32,int8 (default)",
    )
    p.add_argument(
        "--threads", type=int, metavar="N", help="inference threads (default: physical cores)"
    )
    add_backend(p)
    p.add_argument("--batch-size", type=int, metavar="N", help="images per inference batch (32)")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def _inputs(args: argparse.Namespace) -> tuple[Path, Path, Path | None]:
    if args.dataset:
        root = Path(args.dataset).expanduser()
        images = root / "Images"
        captions = next(
            (p for p in (root / "captions.txt", root / "Flickr8k.token.txt") if p.exists()),
            root / "captions.txt",
        )
        test_split = root / "Flickr_8k.testImages.txt"
        return images, captions, (None if args.whole or not test_split.exists() else test_split)
    if not (args.images and args.captions):
        raise InputError("give --dataset DIR, or --images DIR with --captions FILE")
    split = Path(args.split).expanduser() if args.split and not args.whole else None
    return Path(args.images).expanduser(), Path(args.captions).expanduser(), split


def _backends(used: dict[str, str]) -> str:
    if used["vision"] == used["text"]:
        return used["vision"]
    return f"images {used['vision']}, texts {used['text']}"


def run(args: argparse.Namespace) -> int:
    from clipsearch_onnx.quiet import quiet_libraries

    with quiet_libraries():  # a bad image is one warning line, not the decoders' chatter
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from clipsearch_onnx import models
    from clipsearch_onnx.evaluate import EvalSet, evaluate
    from clipsearch_onnx.progressbar import Bar

    settings = settings_from(args)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if not precisions or any(p not in ("fp32", "int8") for p in precisions):
        raise InputError(
            f"--precision takes fp32, int8 or both (fp32,int8), not {args.precisions!r}"
        )
    images, captions, split = _inputs(args)
    if not images.is_dir():
        fetch = f" (`clipsearch dataset flickr8k --dest {args.dataset}` downloads Flickr8k there)"
        raise InputError(f"image folder {images} does not exist{fetch if args.dataset else ''}")
    data, warnings = EvalSet.load(images, captions, split)
    manifest = models.standalone(settings, precisions[0]).manifest
    bar = Bar(enabled=not args.quiet)
    report: dict[str, Any] = {
        "model": manifest.source.get("model"),
        "split": str(split) if split else "all",
        "decoding": "reference",
    }
    for precision in precisions:
        encoder = models.standalone(settings, precision).encoder(
            settings.threads, backend=settings.backend
        )
        report[precision] = evaluate(
            data, encoder, batch_size=settings.batch_size, start=bar.start, advance=bar.advance
        )
        report[precision]["backend"] = {t: encoder.backend_of(t) for t in ("vision", "text")}
    bar.finish()
    for line in [*warnings[:5], *(s for p in precisions for s in report[p]["skipped"][:5])]:
        print(f"warning: {line}", file=sys.stderr)
    if args.json:
        print_json(report)
        return ExitCode.OK
    print(
        f"{len(data.paths)} images, {len(data.captions)} captions ({report['split']}); "
        "images decoded the reference way (full decode, the checkpoint's own image processor)"
    )
    print(
        f"{'':6} {'t2i R@1':>8} {'R@5':>6} {'R@10':>6}  {'i2t R@1':>8} {'R@5':>6} {'R@10':>6}"
        f"  {'img/s':>7} {'query/s':>8}  backend"
    )
    for precision in precisions:
        r = report[precision]
        t, i = r["t2i"], r["i2t"]
        print(
            f"{precision:6} {t['R@1']:8.1f} {t['R@5']:6.1f} {t['R@10']:6.1f}  "
            f"{i['R@1']:8.1f} {i['R@5']:6.1f} {i['R@10']:6.1f}  "
            f"{r['images_per_s']:7.1f} {r['queries_per_s']:8.1f}  {_backends(r['backend'])}"
        )
    return ExitCode.OK
