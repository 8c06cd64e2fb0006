"""`make demo`: the whole pipeline offline, on generated data and a small CLIP trained on it.

data (data/demo) -> checkpoint -> ONNX export fp32 + int8 (models/demo) -> index (data/demo/index)
-> one sample search. The checkpoint is the one committed in demo/checkpoint (made by
`python -m demo.train`, see its training.json), or with --retrain one trained here from scratch
into models/demo-torch. Each step is skipped when its output is already there, so a second run
takes seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from demo.data import DEFAULT_IMAGES, generate

DATA = Path("data/demo")
COMMITTED = Path(__file__).resolve().parent / "checkpoint"
CHECKPOINT = Path("models/demo-torch")  # where --retrain and --fast train
MODEL = Path("models/demo")
INDEX = DATA / "index"
SAMPLE_QUERY = "a red circle"
EXPORT_STAMP = ".exported-from.json"  # the training record of the checkpoint exported here


def _step(title: str) -> None:
    print(f"\n== {title}", file=sys.stderr, flush=True)


def _run(*argv: str, stdout=None) -> None:
    result = subprocess.run([sys.executable, *argv], stdout=stdout)
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
    parser.add_argument(
        "--images", type=int, default=DEFAULT_IMAGES, help="how many images to generate"
    )
    parser.add_argument("--seed", type=int, default=0)
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--retrain",
        action="store_true",
        help=f"train the model here (about 6 minutes on 2 cores) instead of using {COMMITTED}",
    )
    how.add_argument(
        "--fast",
        action="store_true",
        help="train a tiny model for a few steps: checks the pipeline, not quality",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()

    _step(f"data: {args.images} generated images with 5 captions each in {DATA}")
    generate(DATA, n_images=args.images, seed=args.seed)

    if args.retrain or args.fast:
        from demo.train import FAST, Recipe, train

        _step(f"model: a small CLIP trained on the train split, in {CHECKPOINT}")
        checkpoint = train(DATA, CHECKPOINT, seed=args.seed, recipe=FAST if args.fast else Recipe())
    else:
        checkpoint = COMMITTED
        record = json.loads((checkpoint / "training.json").read_text(encoding="utf-8"))
        _step(f"model: the small CLIP in {checkpoint} (--retrain trains it here)")
        print(f"trained by python -m demo.train: {record['metrics']}", file=sys.stderr)

    _step(f"export: ONNX fp32 + int8 in {MODEL}")
    exported = not _exported(checkpoint, MODEL)
    if exported:
        # Replace an export this script made of another checkpoint (--retrain, --fast); anything
        # else in that folder is the user's, and export refuses to touch it.
        replace = ["--overwrite"] if (MODEL / EXPORT_STAMP).is_file() else []
        # (export prints the folder on stdout for scripts; the demo's stdout is the search table)
        export = ("-m", "export", "--model", str(checkpoint), "--out", str(MODEL), *replace)
        _run(*export, stdout=subprocess.DEVNULL)
        trained = (checkpoint / "training.json").read_text(encoding="utf-8")
        (MODEL / EXPORT_STAMP).write_text(trained, encoding="utf-8")
    else:
        print(f"{MODEL} is up to date", file=sys.stderr)

    _step(f"index: {DATA / 'Images'} -> {INDEX}")
    cli = ("-m", "clipsearch_onnx")
    # A new model makes the old vectors meaningless: start the index over.
    rebuild = ["--rebuild"] if exported else []
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
        *rebuild,
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
