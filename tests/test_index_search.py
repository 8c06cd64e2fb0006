"""The index and search core against ground truth: exact results equal brute-force numpy on
seeded vectors, IVF recall is measured against them, runs resume and update incrementally, and
the published index is opened memory-mapped."""

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

from clipsearch_onnx import index as vector_index
from clipsearch_onnx.catalog import Catalog
from clipsearch_onnx.encoder import Encoder
from clipsearch_onnx.errors import IndexCorrupt, InputError, ModelError
from clipsearch_onnx.importer import import_shards
from clipsearch_onnx.indexer import Indexer
from clipsearch_onnx.layout import current_dir
from clipsearch_onnx.manifest import Manifest
from clipsearch_onnx.search import open_searcher
from clipsearch_onnx.settings import Settings
from clipsearch_onnx.shards import load_embeddings, write_shard
from tests.fixtures_collection import (
    SLOW_RUN,
    build_of,
    catalog_paths,
    kill_after_shards,
    make_distinct_images,
    run_cli,
    shard_count,
    start_cli,
)

DIM = 24  # the exported tiny model's embedding size


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(rng: np.random.Generator, n: int, centers: np.ndarray) -> np.ndarray:
    """Unit vectors around `centers`, the way real embeddings bunch up."""
    picks = centers[rng.integers(0, len(centers), n)]
    return unit(picks + 0.35 * rng.standard_normal((n, centers.shape[1])))


def brute_force(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims = queries @ base.T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, top, axis=1), top


def searcher(index_dir: Path, **settings):
    return open_searcher(Settings(index_dir=index_dir, **settings))


def embeddings_by_path(index_dir: Path) -> dict[str, np.ndarray]:
    """Each catalogued path's stored embedding, read back through its shard and row."""
    build = build_of(index_dir)
    catalog = Catalog.open(build, readonly=True)
    try:
        names = catalog.shard_names()
        return {
            item.path: np.array(load_embeddings(build / "shards" / names[item.shard])[item.row])
            for item in catalog.items()
        }
    finally:
        catalog.close()


# -- exact and approximate search against brute force ----------------------------------------


@pytest.fixture(scope="module")
def seeded_vectors():
    rng = np.random.default_rng(42)
    centers = rng.standard_normal((48, DIM))
    base = clustered(rng, 6000, centers)
    queries = clustered(rng, 200, centers)
    return base, queries


def import_vectors(tmp: Path, base: np.ndarray, model: Path, kind: str) -> Path:
    """Writes `base` as two shards and imports them into a new index of type `kind`."""
    half = len(base) // 2
    shards = []
    for part, rows in enumerate((range(half), range(half, len(base)))):
        shard = tmp / f"shard{part}"
        write_shard(shard, base[rows.start : rows.stop], [{"path": f"/v/{i}.jpg"} for i in rows])
        shards.append(shard)
    index_dir = tmp / kind
    import_shards(index_dir, shards, Manifest.load(model), index_type=kind)
    return index_dir


def test_flat_results_equal_brute_force(tmp_path, exported_model, seeded_vectors):
    base, queries = seeded_vectors
    index_dir = import_vectors(tmp_path, base, exported_model, "flat")
    want_scores, want = brute_force(queries, base, 10)
    s = searcher(index_dir)
    assert s.vectors.meta["type"] == "flat" and s.count == len(base)
    for q, scores, rows in zip(queries, want_scores, want, strict=True):
        results = s.search_vector(q, 10)
        assert [r.path for r in results] == [f"/v/{i}.jpg" for i in rows]
        np.testing.assert_allclose([r.score for r in results], scores, atol=1e-5)
    # k beyond the collection: everything once, best first
    results = s.search_vector(queries[0], len(base) + 50)
    assert sorted(r.path for r in results) == sorted(f"/v/{i}.jpg" for i in range(len(base)))
    with pytest.raises(InputError):
        s.search_vector(queries[0], 0)
    s.close()


@pytest.fixture
def one_faiss_thread():
    """k-means training in OpenMP threads crawls when the test machine's cores are busy."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.usefixtures("one_faiss_thread")
@pytest.mark.parametrize(
    "kind, size, min_recall, min_top1", [("ivf-sq8", 6000, 0.9, 0.97), ("ivf-pq", 2000, 0.5, 0.9)]
)
def test_ivf_recall_against_exact(
    tmp_path, exported_model, seeded_vectors, kind, size, min_recall, min_top1
):
    """IVF answers approximately: recall@10 against the exact top 10, and how often the true
    nearest neighbour is among the 10 returned. (ivf-pq at D=24 packs a vector in 8 bytes; its
    training is the slowest, hence fewer vectors.)"""
    base, queries = seeded_vectors
    base = base[:size]
    index_dir = import_vectors(tmp_path, base, exported_model, kind)
    _, want = brute_force(queries, base, 10)
    s = searcher(index_dir)
    assert s.vectors.meta["type"] == kind and s.count == len(base)
    got = [[int(r.path[3:-4]) for r in s.search_vector(q, 10)] for q in queries]
    assert all(len(g) == 10 and len(set(g)) == 10 for g in got)
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want, strict=True)])
    top1 = np.mean([w[0] in g for g, w in zip(got, want, strict=True)])
    assert recall >= min_recall, recall
    assert top1 >= min_top1, top1
    s.close()


def test_import_checks_shards_before_writing(tmp_path, exported_model, seeded_vectors):
    base, _ = seeded_vectors
    model = Manifest.load(exported_model)
    good = tmp_path / "good"
    write_shard(good, base[:10], [{"path": f"/v/{i}.jpg"} for i in range(10)])
    wide = tmp_path / "wide"
    write_shard(wide, unit(np.ones((3, DIM + 8))), [{"path": f"/w/{i}.jpg"} for i in range(3)])
    unnormalised = tmp_path / "long"
    write_shard(unnormalised, 2 * base[:3], [{"path": f"/l/{i}.jpg"} for i in range(3)])
    index_dir = tmp_path / "index"
    with pytest.raises(InputError, match=f"dimension {DIM + 8}"):
        import_shards(index_dir, [good, wide], model)
    with pytest.raises(InputError, match="L2-normalised"):
        import_shards(index_dir, [good, unnormalised], model)
    assert not index_dir.exists() or list(index_dir.iterdir()) == [index_dir / "write.lock"]
    import_shards(index_dir, [good], model)
    with pytest.raises(ModelError, match="--precision int8"):
        import_shards(index_dir, [good], model, precision="fp32")
    assert catalog_paths(index_dir) == sorted(f"/v/{i}.jpg" for i in range(10))


# -- resume, incremental updates, moves ---------------------------------------------------------


@pytest.mark.slow
def test_resume_after_kill_equals_an_uninterrupted_run(tmp_path, exported_model):
    images = tmp_path / "photos"
    make_distinct_images(images, [f"p{i:03d}.png" for i in range(120)], seed=7)
    common = ("--model", exported_model, "--precision", "fp32", "--quiet")
    whole = run_cli("index", images, "--index", tmp_path / "whole", *common, home=tmp_path)
    assert whole.returncode == 0, whole.stderr

    resumed = tmp_path / "resumed"
    proc = start_cli("index", images, "--index", resumed, *common, *SLOW_RUN, home=tmp_path)
    assert kill_after_shards(proc, resumed, 6), "the run finished before it could be killed"
    assert proc.returncode == -signal.SIGKILL
    committed = len(catalog_paths(resumed))
    assert 0 < committed < 120
    again = run_cli("index", images, "--index", resumed, *common[:-1], home=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{120 - committed} embedded" in again.stderr  # committed work is not redone

    assert catalog_paths(resumed) == catalog_paths(tmp_path / "whole")
    a, b = embeddings_by_path(tmp_path / "whole"), embeddings_by_path(resumed)
    assert a.keys() == b.keys()
    np.testing.assert_allclose(np.stack(list(a.values())), np.stack([b[p] for p in a]), atol=1e-5)
    info = json.loads(run_cli("info", "--index", resumed, "--json", home=tmp_path).stdout)
    assert info["count"] == 120
    # no orphan shard folders were kept from the killed run
    assert shard_count(resumed) == len(Catalog.open(build_of(resumed), readonly=True).shard_names())


def test_incremental_update_and_move_keep_embeddings(tmp_path, exported_model):
    photos = tmp_path / "photos"
    paths = make_distinct_images(photos, [f"a{i:02d}.jpg" for i in range(30)], seed=3)
    index_dir = tmp_path / "index"
    encoder = Encoder(Manifest.load(exported_model))
    first = Indexer(index_dir, encoder).run(photos)
    assert (first.added, first.count, first.embedded) == (30, 30, 30)
    before = embeddings_by_path(index_dir)

    again = Indexer(index_dir, encoder).run(photos)
    assert (again.unchanged, again.embedded, again.count) == (30, 0, 30)

    # rename one, move one into a subfolder, swap nothing else: no embedding is recomputed
    renamed = photos / "renamed ü.jpg"
    paths[0].rename(renamed)
    moved = photos / "sub" / "deeper" / paths[1].name
    moved.parent.mkdir(parents=True)
    paths[1].rename(moved)
    report = Indexer(index_dir, encoder).run(photos)
    assert (report.moved, report.embedded, report.removed, report.count) == (2, 0, 0, 30)
    after = embeddings_by_path(index_dir)
    assert str(paths[0]) not in after and str(paths[1]) not in after
    np.testing.assert_array_equal(after[str(renamed)], before[str(paths[0])])
    np.testing.assert_array_equal(after[str(moved)], before[str(paths[1])])
    s = searcher(index_dir)
    for path in (renamed, moved):
        results = s.search(image=path).results
        assert results[0].path == str(path) and results[0].score >= 0.99
        assert str(paths[0]) not in [r.path for r in results]
    s.close()

    # a changed file is re-embedded; a file broken since is dropped, not kept with its old vector
    make_distinct_images(photos, [paths[2].name], seed=77)
    paths[3].write_bytes(paths[3].read_bytes()[:200])
    report = Indexer(index_dir, encoder).run(photos)
    assert (report.changed, report.embedded, report.count) == (1, 1, 29)
    assert [p for p, _ in report.skipped] == [str(paths[3])]
    assert str(paths[3]) not in catalog_paths(index_dir)
    assert not np.allclose(embeddings_by_path(index_dir)[str(paths[2])], before[str(paths[2])])


def test_interrupted_run_leaves_searches_answering(tmp_path, exported_model, monkeypatch):
    """A run stopped after committing changes but before publishing (Ctrl-C, kill -9) leaves the
    previous vectors in place with some rows gone: searches skip those; real damage is reported."""
    photos = tmp_path / "photos"
    paths = make_distinct_images(photos, [f"b{i:02d}.png" for i in range(20)], seed=5)
    index_dir = tmp_path / "index"
    encoder = Encoder(Manifest.load(exported_model))
    Indexer(index_dir, encoder).run(photos)
    paths[0].unlink()
    make_distinct_images(photos, [paths[1].name], seed=500)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(vector_index, "publish", interrupted)
        with pytest.raises(KeyboardInterrupt):
            Indexer(index_dir, encoder).run(photos)
    s = searcher(index_dir)
    assert s.count == 20  # still the published generation
    results = s.search("a dog", k=20).results
    assert len(results) == 18  # neither the deleted file nor the old version of the changed one
    assert str(paths[0]) not in {r.path for r in results}
    s.close()

    Indexer(index_dir, encoder).run(photos)
    s = searcher(index_dir)
    assert len(s.search("a dog", k=20).results) == 19
    assert s.search(image=paths[1]).results[0].path == str(paths[1])
    s.close()

    # rows vanishing while no run is under way or pending: damage, said plainly
    conn = sqlite3.connect(build_of(index_dir) / "catalog.sqlite")
    with conn:
        conn.execute("DELETE FROM images WHERE path = ?", (str(paths[2]),))
    conn.close()
    s = searcher(index_dir)
    with pytest.raises(IndexCorrupt, match="lacks entries"):
        s.search("a dog", k=20)
    s.close()


# -- memory-mapped opening ---------------------------------------------------------------------

RSS_PROBE = """
import json, sys
import numpy as np
from pathlib import Path

def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024

import faiss  # noqa: F401 - loaded before measuring, as by any caller
from clipsearch_onnx.index import VectorIndex
index_dir = Path(sys.argv[1])
before = anon()
vi = VectorIndex.open(index_dir)
vi.search(np.full((1, vi.meta["dim"]), vi.meta["dim"] ** -0.5, np.float32), 10)
opened = anon()
plain = [np.fromfile(p, np.uint8) for p in index_dir.glob("vectors/seg-*/lists.ivfdata")]
loaded = anon()
print(json.dumps({"mmap": opened - before, "read": loaded - opened, "n": vi.count}))
"""


@pytest.mark.slow
def test_open_is_memory_mapped_so_ram_does_not_grow_with_the_index(tmp_path, exported_model):
    model = Manifest.load(exported_model)
    rng = np.random.default_rng(0)
    growth = {}
    for n in (20_000, 200_000):
        vectors = unit(rng.standard_normal((n, DIM)))
        shard = tmp_path / f"shard{n}"
        write_shard(shard, vectors, [{"path": f"/m/{i}.jpg"} for i in range(n)])
        index_dir = tmp_path / f"index{n}"
        import_shards(index_dir, [shard], model, index_type="flat")
        size = sum(
            p.stat().st_size for p in build_of(index_dir).glob("vectors/seg-*/lists.ivfdata")
        )
        assert size >= n * DIM * 4
        probe = subprocess.run(
            [sys.executable, "-c", RSS_PROBE, str(build_of(index_dir))],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        growth[n] = json.loads(probe.stdout)
        assert growth[n]["n"] == n
        # anonymous (heap) memory: the mapped file is paged in from the page cache instead
        # (a fixed MiB of bookkeeping: index.json, list sizes, faiss objects)
        assert growth[n]["mmap"] < size / 8 + (1 << 20), (n, size, growth[n])
        assert growth[n]["read"] > size * 0.9  # the probe does see a non-mapped load
    assert growth[200_000]["mmap"] - growth[20_000]["mmap"] < 2 << 20, growth


# -- reindex ---------------------------------------------------------------------------------


def test_reindex_trains_a_new_layout_and_keeps_the_results(
    tmp_path, exported_model, seeded_vectors
):
    base, queries = seeded_vectors
    index_dir = import_vectors(tmp_path, base[:3000], exported_model, "ivf-sq8")

    def meta() -> dict:
        return json.loads((current_dir(index_dir) / "index.json").read_text())

    def top(n: int) -> list[list[str]]:
        s = searcher(index_dir)
        try:
            return [[r.path for r in s.search_vector(q, n)] for q in queries[:30]]
        finally:
            s.close()

    before, results = meta(), top(5)
    run = run_cli("reindex", "--index", index_dir, home=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "re-trained: 3000 vectors, ivf-sq8" in run.stderr
    after = meta()
    assert after["layout"]["name"] != before["layout"]["name"] and after["count"] == 3000
    again = top(5)
    assert np.mean([a[0] == b[0] for a, b in zip(results, again, strict=True)]) >= 0.95
    flat = run_cli("reindex", "--index", index_dir, "--index-type", "flat", "-q", home=tmp_path)
    assert flat.returncode == 0 and flat.stderr == "" and meta()["type"] == "flat"
    missing = run_cli("reindex", "--index", tmp_path / "none", home=tmp_path)
    assert missing.returncode == 4 and len(missing.stderr.strip().splitlines()) == 1
