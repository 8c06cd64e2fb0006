"""`make demo`: the whole pipeline offline, on generated data and a small CLIP trained here.

data (data/demo) -> trained checkpoint (models/demo-torch) -> ONNX export fp32 + int8 (models/demo)
-> index (data/demo/index) -> one sample search. Each step is skipped when its output is already
there, so a second run takes seconds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

DATA = Path("data/demo")
CHECKPOINT = Path("models/demo-torch")
MODEL = Path("models/demo")
INDEX = DATA / "index"
SAMPLE_QUERY = "a red circle"
EXPORT_STAMP = ".exported-from.json"  # the training record of the checkpoint exported here


def _step(title: str) -> None:
    print(f"\n== {title}", file=sys.stderr, flush=True)


def _run(*argv: str) -> None:
    result = subprocess.run([sys.executable, *argv])
    if result.returncode:
        sys.exit(f"demo: `{' '.join(argv)}` failed with exit code {result.returncode}")


def _exported(checkpoint: Path, model: Path) -> bool:
    """True when `model` holds an export of the checkpoint as it is now."""
    try:
        exported_from = (model / EXPORT_STAMP).read_text(encoding="utf-8")
        trained = (checkpoint / "training.json").read_text(encoding="utf-8")
    except OSError:
        return False
    return (model / "manifest.json").is_file() and exported_from == trained


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=3000, help="how many images to generate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fast",
        action="store_true",
        help="a tiny model trained for 2 epochs: checks the pipeline, not quality",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()

    from demo.data import generate
    from demo.train import FAST, Recipe, train

    _step(f"data: {args.images} generated images with 5 captions each in {DATA}")
    generate(DATA, n_images=args.images, seed=args.seed)

    _step(f"model: a small CLIP trained on the train split, in {CHECKPOINT}")
    train(DATA, CHECKPOINT, seed=args.seed, recipe=FAST if args.fast else Recipe())

    _step(f"export: ONNX fp32 + int8 in {MODEL}")
    if _exported(CHECKPOINT, MODEL):
        print(f"{MODEL} is up to date", file=sys.stderr)
    else:
        _run("-m", "export", "--model", str(CHECKPOINT), "--out", str(MODEL))
        trained = (CHECKPOINT / "training.json").read_text(encoding="utf-8")
        (MODEL / EXPORT_STAMP).write_text(trained, encoding="utf-8")

    _step(f"index: {DATA / 'Images'} -> {INDEX}")
    cli = ("-m", "clipsearch_onnx")
    _run(
        *cli,
        "index",
        str(DATA / "Images"),
        "--captions",
        str(DATA / "captions.txt"),
        "--model",
        str(MODEL),
        "--index",
        str(INDEX),
    )

    _step(f"search: {SAMPLE_QUERY!r}")
    sys.stdout.flush()
    _run(*cli, "search", SAMPLE_QUERY, "--index", str(INDEX))

    print(
        f"\ndemo ready in {time.monotonic() - started:.0f} s. Next:\n"
        f'  .venv/bin/clipsearch search "picture of a blue square" --index {INDEX}\n'
        f"  .venv/bin/clipsearch eval --dataset {DATA} --model {MODEL}\n"
        f"  make tui INDEX={INDEX}      (the terminal UI)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
