"""Session fixtures for the index, search and reliability tests: a Flickr8k-style folder (images
with five captions each, odd names, a few broken files) indexed once by the real `clipsearch`
command, plus helpers to run that command and to make images whose embeddings stay apart.

A randomly initialised tiny CLIP maps most pictures to nearly the same direction (cosines around
0.95), so "every image finds itself first" needs pictures that differ patch by patch: the
generator here draws coarse random mosaics, for which the closest pair of 400 stays ~1e-3 below
the self-match while int8 batching moves an embedding by ~2e-4.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.factories import default_corpus, write_captions

REPO = Path(__file__).resolve().parents[1]
CAPTIONS_PER_IMAGE = 5


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a `clipsearch` subprocess: no CLIPSEARCH_* from the caller, a private
    home, and no debug tracebacks (a test must see what a user sees)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPSEARCH_")}
    env["CLIPSEARCH_HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def run_cli(
    *args: str | Path,
    home: Path,
    input: str | None = None,
    timeout: float = 180,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs `python -m clipsearch_onnx ARGS` to completion and returns it (never raises)."""
    return subprocess.run(
        [sys.executable, "-m", "clipsearch_onnx", *map(str, args)],
        input=input,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        env=env or cli_env(home),
        cwd=home,
    )


def start_cli(*args: str | Path, home: Path, **popen) -> subprocess.Popen[str]:
    """Starts `python -m clipsearch_onnx ARGS` in the background (stdout/stderr piped), with
    SIGINT at its default so that a test can interrupt it (`default_sigint`)."""
    popen.setdefault("preexec_fn", default_sigint)
    return subprocess.Popen(
        [sys.executable, "-m", "clipsearch_onnx", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=cli_env(home),
        cwd=home,
        **popen,
    )


def build_of(index_dir: Path) -> Path:
    """The build folder a run writes (the one under way, else the live one; see `layout`)."""
    from clipsearch_onnx import layout

    build = layout.read_pointer(index_dir, layout.NEXT) or layout.current_dir(index_dir)
    assert build is not None, f"no index in {index_dir}"
    return build


def shard_count(index_dir: Path) -> int:
    """Shard folders in every build of an index (whichever a run is writing)."""
    while True:
        try:
            return sum(not p.name.startswith(".") for p in Path(index_dir).glob("*/shards/*"))
        except FileNotFoundError:  # the run renamed a build folder while it was being listed
            continue


def kill_after_shards(proc: subprocess.Popen, index_dir: Path, shards: int) -> bool:
    """SIGKILLs `proc` once `shards` shard folders exist; False if it finished first."""
    deadline = time.monotonic() + 300  # a run that hangs fails the test instead of stalling it
    while proc.poll() is None:
        if shard_count(index_dir) >= shards or time.monotonic() > deadline:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=120)
            assert time.monotonic() <= deadline, f"no {shards} shards in 300 s"
            return True
        time.sleep(0.002)
    proc.communicate(timeout=120)
    return False


def default_sigint() -> None:
    """Run in a child (`preexec_fn`): a shell starts background jobs with SIGINT ignored, which
    children inherit; Ctrl-C must reach this one."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# small batches and checkpoints, one thread: a slow, many-shard run that is easy to interrupt
SLOW_RUN = ("--batch-size", "4", "--checkpoint", "4", "--workers", "1", "--threads", "1")


def assert_one_clean_line(stderr: str) -> None:
    """An error is reported as one `clipsearch: error: ...` line, never a traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("clipsearch: error: "), stderr


def mosaic(rng: np.random.Generator, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A random mosaic of 2..6 x 2..6 coloured cells."""
    rows, cols = rng.integers(2, 7, size=2)
    cells = rng.integers(0, 256, size=(rows, cols, 3), dtype=np.uint8)
    return Image.fromarray(cells, "RGB").resize(size, Image.Resampling.NEAREST)


def save_image(img: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}[path.suffix.lower()]
    kwargs = {"quality": 95} if fmt == "JPEG" else {"lossless": True} if fmt == "WEBP" else {}
    img.save(path, fmt, **kwargs)
    return path


def make_distinct_images(
    out_dir: Path, names: Sequence[str], seed: int = 0, size: tuple[int, int] = (64, 48)
) -> list[Path]:
    """One seeded mosaic per name (format from the extension)."""
    rng = np.random.default_rng(seed)
    return [save_image(mosaic(rng, size), Path(out_dir) / name) for name in names]


def catalog_paths(index_dir: Path) -> list[str]:
    """Every path in an index's catalog, duplicates included, read with plain sqlite3."""
    conn = sqlite3.connect(f"file:{build_of(index_dir) / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        return [p for (p,) in conn.execute("SELECT path FROM images ORDER BY path")]
    finally:
        conn.close()


def search_json(index_dir: Path, home: Path, *query: str) -> dict:
    proc = run_cli("search", *query, "--index", index_dir, "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@dataclass(frozen=True)
class Flickr:
    """A Flickr8k-style folder: `Images/` with good and broken files, and `captions.txt`."""

    root: Path
    images: Path
    captions_file: Path
    good: list[Path]
    broken: list[Path]
    captions: dict[str, list[str]]  # file name -> its five captions


GOOD_NAMES = [f"{1000268201 + 7919 * i}_{i:03d}.jpg" for i in range(40)] + [
    "dog on the beach.jpg",
    "café au lait.jpg",
    "東京タワー.png",
    "Straße 12.JPG",
    "zoë's kite.png",
]


def make_flickr(root: Path, seed: int = 0) -> Flickr:
    images = root / "Images"
    good = make_distinct_images(images, GOOD_NAMES, seed=seed)
    corpus = default_corpus()
    rnd = random.Random(seed)
    captions = {p.name: rnd.sample(corpus, CAPTIONS_PER_IMAGE) for p in good}
    broken = [images / "empty.jpg", images / "truncated.jpg", images / "not an image.png"]
    broken[0].write_bytes(b"")
    data = good[0].read_bytes()
    broken[1].write_bytes(data[: len(data) // 3])
    broken[2].write_text("this is a text file with an image's name\n", encoding="utf-8")
    captions_file = write_captions(root / "captions.txt", captions)
    return Flickr(root, images, captions_file, good, broken, captions)


@dataclass(frozen=True)
class IndexedFlickr:
    flickr: Flickr
    model: Path
    index: Path
    home: Path
    run: subprocess.CompletedProcess[str]  # the `clipsearch index` run that built it


@pytest.fixture(scope="session")
def indexed_flickr(exported_model: Path, tmp_path_factory: pytest.TempPathFactory) -> IndexedFlickr:
    """The Flickr8k-style folder indexed once with `clipsearch index ... --captions` (int8)."""
    root = tmp_path_factory.mktemp("flickr")
    flickr = make_flickr(root)
    home = root / "home"
    home.mkdir()
    index = root / "index"
    run = run_cli(
        "index",
        flickr.images,
        "--captions",
        flickr.captions_file,
        "--model",
        exported_model,
        "--index",
        index,
        home=home,
    )
    assert run.returncode == 0, run.stderr
    return IndexedFlickr(flickr, exported_model, index, home, run)
