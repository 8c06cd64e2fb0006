"""Options several commands share, and the one way from parsed arguments to `Settings`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clipsearch_onnx.settings import Settings

INDEX_TYPES = ("auto", "flat", "ivf-sq8", "ivf-pq")


def add_common(
    p: argparse.ArgumentParser, *, index: bool = True, model: bool = True, inference: bool = True
) -> None:
    """--index, --model/--precision, and --threads/--backend for a command that runs the model
    (the names `settings_from` reads)."""
    if index:
        p.add_argument(
            "--index", metavar="DIR", help="index folder (default: CLIPSEARCH_HOME/index)"
        )
    if model:
        p.add_argument("--model", metavar="DIR", help="exported model folder (from `make export`)")
        p.add_argument(
            "--precision",
            choices=("int8", "fp32"),
            help="model precision (default: the index's, else the model's default)"
            if index
            else "model precision (default: the model's default)",
        )
    if model and inference:
        p.add_argument(
            "--threads", type=int, metavar="N", help="inference threads (default: physical cores)"
        )
        add_backend(p)


def add_layout(p: argparse.ArgumentParser, *, keep_present: bool = False) -> None:
    """--index-type and --ivf-threshold, for a command that may lay out a new vector index;
    `keep_present`: no --index-type keeps the index's present type (reindex)."""
    default = "the index's present type" if keep_present else "auto"
    p.add_argument(
        "--index-type",
        choices=INDEX_TYPES,
        default=None if keep_present else "auto",
        help="flat (exact), ivf-sq8 (approximate, 8-bit codes: for large collections) or ivf-pq "
        f"(smallest); auto: flat below --ivf-threshold vectors, else ivf-sq8 (default: {default})",
    )
    p.add_argument(
        "--ivf-threshold",
        type=int,
        default=200_000,
        metavar="N",
        help="collection size from which auto uses ivf-sq8 (200000)",
    )


def add_backend(p: argparse.ArgumentParser) -> None:
    from clipsearch_onnx.backends import CHOICES

    p.add_argument(
        "--backend",
        choices=CHOICES,
        help="what runs the model (default auto: OpenVINO for images where it is installed and "
        "the CPU has VNNI or AMX, else ONNX Runtime; openvino needs the openvino extra)",
    )


def add_decoding(p: argparse.ArgumentParser) -> None:
    """--decoding, for a command that embeds image files (the defaults: pipeline.decoding_for)."""
    p.add_argument(
        "--decoding",
        metavar="WAY",
        help="how image files are decoded: fast (JPEGs much larger than the model's input are "
        "decoded reduced: 2.6-3.2x less decode CPU on 5-12 MP photos; image vectors at cosine "
        ">= 0.998 of the reference on a sensitive test model, ~0.99998 on normal weights) or "
        "reference (exactly the checkpoint's own preprocessing). Default: fast for index and "
        "embed-shards, reference for embed and query images (search, tui, serve)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings with the command's flags on top of environment, config file and defaults."""
    from clipsearch_onnx.settings import load_settings

    return load_settings(
        {
            "model_dir": getattr(args, "model", None),
            "index_dir": getattr(args, "index", None),
            "precision": getattr(args, "precision", None),
            "threads": getattr(args, "threads", None),
            "batch_size": getattr(args, "batch_size", None),
            "backend": getattr(args, "backend", None),
            "decoding": getattr(args, "decoding", None),
        }
    )
