"""Issue 11: an index folder survives Ctrl-C and kill -9 at any moment of a first run, `--rebuild`
recovers from any damage, and a rebuild is built beside the live index, which keeps answering
until the switch (see `clipsearch_onnx.layout`)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clipsearch_onnx import cli, layout
from clipsearch_onnx.cli.interrupts import GRACE_S
from clipsearch_onnx.encoder import Encoder
from clipsearch_onnx.indexer import Indexer
from clipsearch_onnx.manifest import Manifest
from clipsearch_onnx.search import open_searcher
from clipsearch_onnx.settings import Settings
from tests.fixtures_collection import (
    SLOW_RUN,
    build_of,
    catalog_paths,
    cli_env,
    default_sigint,
    make_distinct_images,
    shard_count,
    start_cli,
)


def index_cli(photos: Path, index: Path, *extra: str | Path) -> int:
    return cli.main(["index", str(photos), "--index", str(index), "--quiet", *map(str, extra)])


def assert_complete(index: Path, photos: list[Path]) -> None:
    """Every photo indexed once and found by itself; nothing else left in the folder."""
    assert catalog_paths(index) == sorted(map(str, photos))
    searcher = open_searcher(Settings(index_dir=index))
    try:
        assert searcher.count == len(photos)
        assert searcher.search(image=photos[-1], k=1).results[0].path == str(photos[-1])
    finally:
        searcher.close()
    build = layout.current_dir(index)
    assert build is not None and build.parent == index
    assert sorted(p.name for p in index.iterdir()) == sorted([build.name, "current", "write.lock"])


@pytest.fixture(scope="module")
def twelve(tmp_path_factory):
    root = tmp_path_factory.mktemp("twelve")
    photos = make_distinct_images(root / "photos", [f"t{i:02d}.png" for i in range(12)], seed=61)
    return root / "photos", photos


@pytest.fixture
def cli_home(tmp_path, monkeypatch, exported_model):
    """`clipsearch` run in-process with a private home whose default model is the tiny one."""
    monkeypatch.setenv("CLIPSEARCH_HOME", str(tmp_path))
    monkeypatch.setenv("CLIPSEARCH_MODEL", str(exported_model))
    return tmp_path


# -- interrupted first runs -------------------------------------------------------------------


@pytest.mark.slow
def test_a_first_run_interrupted_at_random_moments_completes_next_time(
    tmp_path, cli_home, exported_model
):
    """Eight seeded moments, Ctrl-C and kill -9 alternately, from the moment the run takes the
    folder's lock (the loop of 30+ on a busy machine is `python -m bench.interrupts`)."""
    photos = make_distinct_images(tmp_path / "photos", [f"r{i:02d}.jpg" for i in range(24)], 62)
    rng = random.Random(11)
    for trial in range(8):
        index = tmp_path / f"index{trial}"
        proc = start_cli(
            "index", photos[0].parent, "--index", index, "--model", exported_model, *SLOW_RUN,
            home=cli_home,
        )  # fmt: skip
        while not (index / "write.lock").exists() and proc.poll() is None:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.8))
        proc.send_signal(signal.SIGINT if trial % 2 else signal.SIGKILL)
        # its exit code and message are the CLI's (tests/test_cli_e2e.py); a hang fails here
        proc.communicate(timeout=120)
        assert index_cli(photos[0].parent, index) == 0, trial
        assert_complete(index, photos)


STUCK_DECODER = """
import sys, threading
import clipsearch_onnx.pipeline as pipeline

MARK = sys.argv.pop(1)
read, calls = pipeline._read_safely, [0]


def read_then_stick(*args):
    calls[0] += 1
    if calls[0] > 8:  # after two batches, a decoding thread waits for what never comes
        open(MARK, "w").close()
        threading.Event().wait()
    return read(*args)


pipeline._read_safely = read_then_stick
from clipsearch_onnx.entry import main
sys.exit(main())
"""


@pytest.mark.slow
def test_an_interrupted_run_whose_clean_up_is_stuck_still_ends_and_the_next_run_completes(
    tmp_path, cli_home, exported_model
):
    """A decoding thread that never returns (as one waiting on a lock the interrupted main
    thread holds) used to keep the process alive for ever after Ctrl-C, joining it; the
    watchdog ends it GRACE_S later, exit 130 and one line, and the folder is resumable."""
    photos = make_distinct_images(tmp_path / "photos", [f"s{i:02d}.jpg" for i in range(16)], 63)
    index, mark = tmp_path / "index", tmp_path / "stuck"
    launcher = tmp_path / "clipsearch"  # named like the script, as the CLI checks
    launcher.write_text(STUCK_DECODER, encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, launcher, mark, "index", photos[0].parent, "--index", index]
        + ["--model", exported_model, "--quiet", *SLOW_RUN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(cli_home),
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 120
    while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert [line for line in err.splitlines() if line.strip()] == ["clipsearch: interrupted"]
    assert time.monotonic() - sent >= GRACE_S - 0.5  # it was stuck: the watchdog ended it
    assert index_cli(photos[0].parent, index) == 0
    assert_complete(index, photos)


# -- --rebuild from any damage ------------------------------------------------------------------


def tableless_sqlite(path: Path) -> None:
    """What a first run killed while SQLite set up the catalog used to leave: 4 KB, no tables."""
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def damage(index: Path, how: str) -> None:
    build = build_of(index)
    catalog = build / "catalog.sqlite"
    if how == "empty catalog":
        catalog.write_bytes(b"")
    elif how == "table-less catalog":
        tableless_sqlite(catalog)
    elif how == "garbage catalog":
        catalog.write_bytes(os.urandom(8192))
    elif how == "pointer to nothing":
        (index / "current").write_text("build-0-000000\n")
    elif how == "legacy table-less catalog":  # issue 11's state, in a folder of the old layout
        shutil.rmtree(build)
        (index / "current").unlink()
        tableless_sqlite(index / "catalog.sqlite")
    elif how == "everything else":
        (build / "catalog.sqlite-wal").write_bytes(os.urandom(5000))
        (build / "index.json").write_text("{not json")
        for path in build.glob("vectors.*.faiss"):
            os.truncate(path, 10)
        for path in build.glob("shards/*/embeddings.npy"):
            path.write_bytes(os.urandom(100))
        (index / ".tmp-build-1-abcdef").mkdir()  # leftovers of killed runs
        (index / "build-2-abcdef" / "shards").mkdir(parents=True)
        (build / "shards" / ".tmp-1-abcdef").mkdir()
        (build / ".index.json.tmp123").write_text("{")


@pytest.mark.parametrize(
    "how",
    [
        "empty catalog",
        "table-less catalog",
        "garbage catalog",
        "pointer to nothing",
        "legacy table-less catalog",
        "everything else",
    ],
)
def test_rebuild_recovers_from_a_damaged_folder(tmp_path, cli_home, twelve, how, capsys):
    folder, photos = twelve
    index = tmp_path / "index"
    assert index_cli(folder, index) == 0
    damage(index, how)
    capsys.readouterr()
    code = index_cli(folder, index)  # a plain run either copes or says to rebuild, in one line
    err = capsys.readouterr().err
    assert code in (0, 4), err
    if code:
        assert err.count("\n") == 1 and "--rebuild" in err, err
    assert index_cli(folder, index, "--rebuild") == 0
    assert_complete(index, photos)


# -- a rebuild beside the live index ---------------------------------------------------------


@pytest.mark.slow
def test_searches_during_a_rebuild_answer_from_the_previous_index(tmp_path, exported_model):
    photos = tmp_path / "photos"
    old = make_distinct_images(photos, [f"old {i:02d}.png" for i in range(16)], seed=63)
    index = tmp_path / "index"
    Indexer(index, Encoder(Manifest.load(exported_model))).run(photos)
    before = layout.current_dir(index)
    new = make_distinct_images(photos, [f"new {i:02d}.png" for i in range(16)], seed=64)

    rebuild = start_cli(
        "index", photos, "--index", index, "--rebuild", "--model", exported_model, *SLOW_RUN,
        home=tmp_path,
    )  # fmt: skip
    try:
        while shard_count(index) < 2 + len(list(before.glob("shards/*"))):
            assert rebuild.poll() is None, rebuild.communicate()
            time.sleep(0.002)
        rebuild.send_signal(signal.SIGSTOP)  # hold the rebuild half-way, deterministically
        assert layout.read_pointer(index, layout.NEXT) not in (None, before)
        during = open_searcher(Settings(index_dir=index))
        assert during.count == 16
        assert during.search(image=old[3], k=1).results[0].path == str(old[3])
        assert str(new[0]) not in {r.path for r in during.search(image=new[0], k=16).results}
    finally:
        rebuild.send_signal(signal.SIGCONT)
    _, err = rebuild.communicate(timeout=300)
    assert rebuild.returncode == 0, err

    after = open_searcher(Settings(index_dir=index))
    assert after.count == 32 and layout.current_dir(index) != before
    assert after.search(image=new[0], k=1).results[0].path == str(new[0])
    after.close()
    # the searcher opened before the switch still reads its build, kept while it is open
    assert during.search(image=old[5], k=1).results[0].path == str(old[5])
    assert before.is_dir()
    during.close()
    Indexer(index, Encoder(Manifest.load(exported_model))).run(photos)
    assert not before.exists()  # cleaned up by the next run once nobody reads it
    assert_complete(index, [*old, *new])


def test_a_folder_of_the_old_layout_is_read_updated_and_rebuilt(tmp_path, cli_home, twelve):
    folder, photos = twelve
    index = tmp_path / "index"
    assert index_cli(folder, index) == 0
    build = layout.current_dir(index)
    for entry in build.iterdir():  # what an index folder held before builds existed
        if entry.name != "readers.lock":
            entry.rename(index / entry.name)
    shutil.rmtree(build)
    (index / "current").unlink()

    searcher = open_searcher(Settings(index_dir=index))
    assert searcher.count == 12
    searcher.close()
    extra = make_distinct_images(folder, ["z extra.png"], seed=65)
    try:
        assert index_cli(folder, index) == 0
        assert layout.current_dir(index) == index  # updated in place
        assert len(catalog_paths(index)) == 13
        assert index_cli(folder, index, "--rebuild") == 0
        assert_complete(index, [*photos, *extra])
    finally:
        extra[0].unlink()
