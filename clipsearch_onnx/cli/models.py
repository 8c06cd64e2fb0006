"""`clipsearch models`: which checkpoints to export, and which model folders are here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from clipsearch_onnx.cli.output import print_json
from clipsearch_onnx.cli.usage import add_command
from clipsearch_onnx.errors import ExitCode

DESCRIPTION = """\
Lists recommended checkpoints (published quality, parameter counts, the command that exports
each) and the exported model folders found under the clipsearch home's models/ and ./models
(where `make export` writes). `python -m bench --only models` measures each one's image speed
on this CPU.

Quality: "C3600" is Immich's Crossmodal-3600 average recall (many languages), "F8k R@5" is
CLIP_benchmark's Flickr8k text-to-image recall@5; both quoted, not measured here. An index
remembers its model: to switch, export another one and index again into a new folder (or
--rebuild); `--model DIR` or CLIPSEARCH_MODEL picks the model for a new index.
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "models",
        help="recommended checkpoints and exported models",
        description=DESCRIPTION,
    )
    p.add_argument("--json", action="store_true", help="JSON output")
    return p


def _installed() -> list[dict[str, Any]]:
    from clipsearch_onnx import paths
    from clipsearch_onnx.errors import ModelError
    from clipsearch_onnx.manifest import MANIFEST, Manifest

    roots = {paths.home() / "models", Path("models").absolute()}  # `make export` writes ./models
    found: list[dict[str, Any]] = []
    manifests = sorted({p.resolve() for root in roots for p in root.glob(f"*/{MANIFEST}")})
    for folder in manifests:
        try:
            m = Manifest.load(folder.parent)
        except ModelError as exc:
            found.append({"dir": str(folder.parent), "error": str(exc)})
            continue
        found.append(
            {
                "dir": str(m.model_dir),
                "source": m.source.get("model"),
                "family": m.family,
                "dim": m.embedding_dim,
                "precisions": sorted(m.precisions),
                "default": m.model_dir.absolute() == paths.default_model_dir().absolute(),
            }
        )
    return found


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from clipsearch_onnx.recommended import RECOMMENDED, SPEED

    installed = _installed()
    if args.json:
        rows = [{**asdict(r), "export": r.export_command} for r in RECOMMENDED]
        print_json({"recommended": rows, "speed": SPEED, "installed": installed})
        return ExitCode.OK
    print(f"{'checkpoint':42} {'family':6} {'C3600':>6} {'F8k R@5':>7} {'params M':>13}")
    for r in RECOMMENDED:
        c3600, r5 = r.quality.get("c3600"), r.quality.get("flickr8k_t2i_r5")
        params = f"{r.params_m[0]:.0f} + {r.params_m[1]:.0f}" if r.params_m[0] else "-"
        print(f"{r.hub_id:42} {r.family:6} {_num(c3600):>6} {_num(r5):>7} {params:>13}")
        print(f"    {r.why}\n    {r.export_command}")
    print(f"\nparams: image + text tower, millions; {SPEED}")
    print("\nexported here:" if installed else "\nno exported model found (see `make export`)")
    for m in installed:
        if "error" in m:
            print(f"  {m['dir']}: {m['error']}")
        else:
            mark = " (default)" if m["default"] else ""
            print(f"  {m['dir']}{mark}: {m['source']} ({m['family']}, D={m['dim']})")
    return ExitCode.OK


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
