"""Issue 12, the writer's side: job folders of shards imported by hard links and never twice, a
kill during the on-disk merge completed by the next import, import memory flat as the collection
grows, and file facts (width, height, taken) recorded, carried through shards and back-filled."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipsearch_onnx.catalog import Catalog
from clipsearch_onnx.encoder import Encoder
from clipsearch_onnx.errors import InputError
from clipsearch_onnx.fingerprint import of_image
from clipsearch_onnx.importer import import_shards
from clipsearch_onnx.indexer import Indexer
from clipsearch_onnx.manifest import Manifest
from clipsearch_onnx.search import open_searcher
from clipsearch_onnx.settings import Settings
from clipsearch_onnx.shards import write_shard
from tests.fixtures_collection import REPO, build_of, catalog_paths, make_distinct_images

DIM = 24  # the exported tiny model's embedding size


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_job(job: Path, sizes: list[int], seed: int = 0, done: bool = True) -> np.ndarray:
    """A job folder of shards as a distributed run writes them (shard.json last)."""
    rng = np.random.default_rng(seed)
    vectors = unit_rows(rng, sum(sizes))
    start = 0
    for number, size in enumerate(sizes):
        shard = job / f"part-{number:05d}"
        items = [
            {"path": f"/job/{i:06d}.jpg", "width": 640, "height": 480, "taken": None}
            for i in range(start, start + size)
        ]
        write_shard(shard, vectors[start : start + size], items)
        if done:
            (shard / "shard.json").write_text(json.dumps({"rows": size, "part": number}))
        start += size
    return vectors


def test_a_job_folder_is_imported_by_links_once_and_unfinished_shards_wait(
    tmp_path, exported_model
):
    job = tmp_path / "job"
    vectors = make_job(job, [50, 70])
    make_job(job / "late", [10], seed=1, done=False)  # not a shard of the job: a subfolder
    (job / "part-00009").mkdir()
    write_shard(job / "part-00009", vectors[:5], [{"path": f"/late/{i}.jpg"} for i in range(5)])
    index = tmp_path / "index"
    model = Manifest.load(exported_model)

    report = import_shards(index, [job], model)
    assert (report.shards, report.items, report.count) == (2, 120, 120)
    assert report.unfinished == [job / "part-00009"]  # no shard.json yet
    build = build_of(index)
    source = (job / "part-00000" / "embeddings.npy").stat()
    placed = {p.stat().st_ino for p in build.glob("shards/*/embeddings.npy")}
    assert source.st_ino in placed  # hard-linked, not copied
    catalog = Catalog.open(build, readonly=True)
    item = next(catalog.items())
    assert (item.width, item.height, item.taken) == (640, 480, None)  # carried from items.jsonl
    catalog.close()

    (job / "part-00009" / "shard.json").write_text("{}")
    again = import_shards(index, [job], None)  # the index's model
    assert (again.already, again.shards, again.items, again.count) == (2, 1, 5, 125)
    searcher = open_searcher(Settings(index_dir=index))
    top = searcher.search_vector(vectors[60], 1)[0]
    assert (top.path, round(top.score, 4)) == ("/job/000060.jpg", 1.0)
    searcher.close()


KILL_IN_MERGE = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from clipsearch_onnx.importer import import_shards
from clipsearch_onnx.manifest import Manifest

stage = {"name": ""}
def advance(n):
    if stage["name"] == "merging":
        os.kill(os.getpid(), signal.SIGKILL)
import_shards(
    Path(sys.argv[2]), [Path(sys.argv[3])], Manifest.load(sys.argv[4]), index_type="ivf-sq8",
    progress=lambda name, total: stage.update(name=name), advance=advance, memory=64 << 10,
)
"""


@pytest.mark.slow
def test_an_import_killed_during_the_on_disk_merge_is_completed_by_the_next(
    tmp_path, exported_model
):
    job = tmp_path / "job"
    vectors = make_job(job, [1200, 1200, 1200], seed=2)
    index = tmp_path / "index"
    killed = subprocess.run(
        [sys.executable, "-c", KILL_IN_MERGE, str(REPO), str(index), str(job), str(exported_model)]
    )
    assert killed.returncode == -signal.SIGKILL
    assert list(build_of(index).glob("vectors/build/.merge-seg-*"))  # killed while merging
    assert len(catalog_paths(index)) == 3600  # the shards were committed before publishing

    report = import_shards(index, [job], None, index_type="ivf-sq8", memory=64 << 10)
    assert (report.already, report.count) == (3, 3600)
    searcher = open_searcher(Settings(index_dir=index))
    assert searcher.count == 3600
    for row in (0, 1799, 3599):
        assert searcher.search_vector(vectors[row], 1)[0].path == f"/job/{row:06d}.jpg"
    searcher.close()


PEAK = """
import sys, threading, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from clipsearch_onnx.importer import import_shards
from clipsearch_onnx.manifest import Manifest

peak = [0]
def sample():  # anonymous memory (file pages of mapped shards are the page cache's)
    while True:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                peak[0] = max(peak[0], int(line.split()[1]))
        time.sleep(0.002)
threading.Thread(target=sample, daemon=True).start()
import_shards(
    Path(sys.argv[2]), [Path(sys.argv[3])], Manifest.load(sys.argv[4]), index_type="flat",
    memory=4 << 20,
)
time.sleep(0.01)
print(peak[0])
"""


@pytest.mark.slow
def test_import_memory_does_not_grow_with_the_collection(tmp_path, exported_model):
    """Four times the items, about the same peak: items, validation and publishing stream
    within the given budget. (Holding every item of 80k as a dict alone would take ~30 MB
    more.)"""
    peaks = {}
    for n in (20_000, 80_000):
        job = tmp_path / f"job{n}"
        make_job(job, [n // 4] * 4, seed=3)
        run = subprocess.run(
            [sys.executable, "-c", PEAK, str(REPO), str(tmp_path / f"index{n}"), str(job),
             str(exported_model)],
            capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        peaks[n] = int(run.stdout.split()[-1]) / 1024  # MB
    assert peaks[80_000] - peaks[20_000] < 10, peaks


def exif_jpeg(path: Path, size: tuple[int, int], taken: str | None) -> Path:
    image = Image.fromarray(
        np.random.default_rng(len(path.name)).integers(0, 256, (size[1], size[0], 3), np.uint8)
    )
    exif = Image.Exif()
    if taken:
        exif.get_ifd(0x8769)[0x9003] = taken
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=90, exif=exif)
    return path


def facts_of(index: Path) -> dict[str, tuple]:
    conn = sqlite3.connect(build_of(index) / "catalog.sqlite")
    try:
        return {
            p: (w, h, t)
            for p, w, h, t in conn.execute("SELECT path, width, height, taken FROM images")
        }
    finally:
        conn.close()


def fingerprints_of(index: Path) -> dict[str, int | None]:
    conn = sqlite3.connect(build_of(index) / "catalog.sqlite")
    try:
        return dict(conn.execute("SELECT path, fingerprint FROM images"))
    finally:
        conn.close()


def test_file_facts_are_recorded_and_back_filled_for_older_catalogs(tmp_path, exported_model):
    photos = tmp_path / "photos"
    dated = exif_jpeg(photos / "dated.jpg", (96, 64), "2021:07:14 09:30:00")
    plain = exif_jpeg(photos / "plain.jpg", (50, 70), None)
    [png] = make_distinct_images(photos, ["mosaic.png"], seed=4)
    index = tmp_path / "index"
    encoder = Encoder(Manifest.load(exported_model))
    Indexer(index, encoder).run(photos)
    want = {
        str(dated): (96, 64, "2021-07-14T09:30:00"),
        str(plain): (50, 70, None),
        str(png): (64, 48, None),
    }
    assert facts_of(index) == want
    shard = next(build_of(index).glob("shards/*/items.jsonl")).read_text().splitlines()
    assert any('"taken": "2021-07-14T09:30:00"' in line for line in shard)
    prints = fingerprints_of(index)  # from the pixels decoded for the model
    assert prints[str(png)] == of_image(Image.open(png)) and len(set(prints.values())) == 3
    assert all(f'"fingerprint": {prints[json.loads(line)["path"]]}' in line for line in shard)

    # a catalog written before the columns existed: readers cope, the next run migrates it and
    # reads the facts from the files' headers without embedding anything
    conn = sqlite3.connect(build_of(index) / "catalog.sqlite")
    with conn:
        for column in ("width", "height", "taken", "fingerprint"):
            conn.execute(f"ALTER TABLE images DROP COLUMN {column}")
        conn.execute("DROP INDEX images_shard")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    conn.close()
    searcher = open_searcher(Settings(index_dir=index))
    assert {r.path for r in searcher.search("a photo", k=3).results} == set(want)
    searcher.close()
    report = Indexer(index, encoder).run(photos)
    assert (report.embedded, report.unchanged) == (0, 3)
    assert facts_of(index) == want
    # fingerprints need a full decode: not back-filled; a file embedded again gets one
    assert fingerprints_of(index) == dict.fromkeys(want)
    Image.open(png).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(png)
    assert Indexer(index, encoder).run(photos).changed == 1
    assert fingerprints_of(index)[str(png)] == of_image(Image.open(png))


def test_relative_paths_of_a_job_resolve_against_its_root(tmp_path, exported_model):
    """Workers record paths relative to the photos' root (they may mount it elsewhere); the
    import resolves them against the root the job records, or --root."""
    job = tmp_path / "job"
    vectors = unit_rows(np.random.default_rng(5), 3)
    write_shard(job / "part-0", vectors, [{"path": f"sub/{i}.jpg"} for i in range(3)])
    (job / "part-0" / "shard.json").write_text("{}")
    model = Manifest.load(exported_model)
    with pytest.raises(InputError, match="--root"):
        import_shards(tmp_path / "index", [job], model)
    (job / "job.json").write_text(json.dumps({"root": "/photos/2024"}))
    import_shards(tmp_path / "index", [job], model)
    import_shards(tmp_path / "other", [job], model, root=tmp_path / "mounted")
    assert catalog_paths(tmp_path / "index") == [f"/photos/2024/sub/{i}.jpg" for i in range(3)]
    assert catalog_paths(tmp_path / "other") == [
        str(tmp_path / f"mounted/sub/{i}.jpg") for i in range(3)
    ]
