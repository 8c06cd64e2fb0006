"""Session fixtures for `clipsearch serve`: a small captioned collection of its own (the web tests
replace a file with a symlink for a while, so they do not share `indexed_collection`) and one
real server process on a free loopback port, shared by the API, load and browser tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.factories import default_corpus, make_images, write_captions

WEB_COLLECTION_SIZE = 16
IN_SUBFOLDER = 4  # the last images live in photos/trips/ (a folder to filter on)
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class WebCollection:
    photos: Path  # holds images[:-IN_SUBFOLDER]; the others are in photos/trips/
    model: Path
    index: Path
    images: list[Path]
    captions: dict[str, list[str]]
    captions_file: Path
    home: Path  # CLIPSEARCH_HOME and XDG_RUNTIME_DIR of the commands run on it


@dataclass
class RunningServer:
    url: str  # http://127.0.0.1:PORT (no trailing slash)
    proc: subprocess.Popen
    stderr: list[str]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def web_env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "CLIPSEARCH_HOME": str(home), "XDG_RUNTIME_DIR": str(home / "run")}
    env.pop("CLIPSEARCH_NO_DAEMON", None)
    return {**env, **extra}


def clipsearch_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "clipsearch_onnx", *args]


def start_server(collection: WebCollection, *args: str) -> RunningServer:
    """`clipsearch serve --port 0 ARGS` on the collection; returns once it listens."""
    (collection.home / "run").mkdir(mode=0o700, exist_ok=True)
    cmd = clipsearch_cmd("serve", "--index", str(collection.index), "--port", "0", *args)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=web_env(collection.home),
    )
    stderr: list[str] = []
    assert proc.stderr is not None and proc.stdout is not None
    threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(START_TIMEOUT_S)
    if not line or not line[0].startswith("http://"):
        proc.kill()
        proc.wait()
        pytest.fail(f"`clipsearch serve` did not start: {''.join(stderr)[-2000:]}")
    return RunningServer(line[0].strip().rstrip("/"), proc, stderr)


@pytest.fixture(scope="session")
def web_collection(exported_model: Path, tmp_path_factory: pytest.TempPathFactory) -> WebCollection:
    from clipsearch_onnx.cli import main

    root = tmp_path_factory.mktemp("web")
    photos = root / "photos"
    images = make_images(photos, WEB_COLLECTION_SIZE, size=(80, 60), seed=11)
    (photos / "trips").mkdir()
    for i in range(WEB_COLLECTION_SIZE - IN_SUBFOLDER, WEB_COLLECTION_SIZE):
        images[i] = images[i].rename(photos / "trips" / images[i].name)
    corpus = default_corpus()
    captions = {
        p.name: [corpus[(3 * i) % len(corpus)], corpus[(3 * i + 1) % len(corpus)]]
        for i, p in enumerate(images)
    }
    captions_file = write_captions(root / "captions.txt", captions)
    index = root / "index"
    args = ["index", str(photos), "--model", str(exported_model), "--index", str(index)]
    assert main([*args, "--captions", str(captions_file), "--quiet"]) == 0
    home = root / "home"
    home.mkdir()
    return WebCollection(photos, exported_model, index, images, captions, captions_file, home)


@pytest.fixture(scope="session")
def web_server(web_collection: WebCollection):
    """One server for the session; uploads capped at 1 MB and 4 MP to keep the limit tests
    small."""
    server = start_server(web_collection, "--max-upload-mb", "1", "--max-upload-pixels", "4000000")
    yield server
    server.stop()
