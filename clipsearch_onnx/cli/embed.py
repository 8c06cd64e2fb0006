"""`clipsearch embed`: embeddings of texts and images as JSON lines."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from clipsearch_onnx.cli.options import add_common, add_decoding, settings_from
from clipsearch_onnx.cli.output import print_json
from clipsearch_onnx.cli.usage import add_command
from clipsearch_onnx.errors import ExitCode, InputError


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "embed",
        help="print embeddings of texts and images as JSON lines",
        description='One JSON line per input, texts first: {"kind": "text" or "image", "input": '
        'the text or path as given, "embedding": [D floats, unit length]}. Image files are '
        "decoded the reference way unless --decoding says otherwise; in fp32 the vectors are "
        "PyTorch's get_image_features / get_text_features, normalised. No index is needed.",
    )
    p.add_argument("--text", action="append", default=[], metavar="T", help="a text (repeatable)")
    p.add_argument(
        "--image", action="append", default=[], metavar="PATH", help="an image file (repeatable)"
    )
    add_common(p, index=False)
    add_decoding(p)
    return p


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from clipsearch_onnx import models
    from clipsearch_onnx.pipeline import decoding_for, read_file
    from clipsearch_onnx.quiet import quiet_libraries

    settings = settings_from(args)
    if not args.text and not args.image:
        raise InputError("nothing to embed: give --text and/or --image")
    encoder = models.standalone(settings).encoder(settings.threads, backend=settings.backend)
    # Every file is read before any output, so a bad one fails the command cleanly.
    decoding = decoding_for(settings.decoding, bulk=False)
    with quiet_libraries(enabled=bool(args.image)):  # a bad file is one line, not libtiff's
        loaded = [
            read_file(Path(p).expanduser(), encoder.preprocess, decoding, fingerprints=False)
            for p in args.image
        ]
    if args.text:
        for text, emb in zip(args.text, encoder.embed_texts(args.text), strict=True):
            print_json({"kind": "text", "input": text, "embedding": emb.tolist()})
    for start in range(0, len(loaded), settings.batch_size):
        pixels = np.stack([x.pixels for x in loaded[start : start + settings.batch_size]])
        paths = args.image[start : start + settings.batch_size]
        for path, emb in zip(paths, encoder.embed_pixels(pixels), strict=True):
            print_json({"kind": "image", "input": path, "embedding": emb.tolist()})
    return ExitCode.OK
