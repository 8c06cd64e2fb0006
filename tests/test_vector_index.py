"""The segmented vector index against brute-force numpy on seeded vectors: exact and IVF search,
filters inside the search, parts added without re-training, dead rows that never come back,
readers of an older generation, kills at any stage of a publication, and memory that does not
grow with the collection."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clipsearch_onnx import index as vector_index
from clipsearch_onnx import index_small, layouts, open_segment, tiers
from clipsearch_onnx.index import VectorIndex
from tests.vector_shards import Shards, recall, truth


@pytest.mark.parametrize("engine", ["numpy", "faiss"])
def test_flat_is_exact_and_a_filter_returns_every_match(tmp_path, engine, monkeypatch):
    """A small flat index is searched with numpy alone (no FAISS import), a larger one through
    FAISS's IVF1,Flat: both exact, and the same."""
    if engine == "faiss":
        monkeypatch.setattr(index_small, "SMALL_BYTES", 0)
    shards = Shards(1)
    for n in (700, 1, 1500, 300):
        shards.add(n)
    vector_index.publish(tmp_path, shards, kind="auto")
    ids, _ = shards.shards["shard-0002"]  # 500 files replaced: rows dead, filtered out
    ids = ids.copy()
    ids[:500] = -1
    shards.shards["shard-0002"] = (ids, shards.shards["shard-0002"][1])
    shards.add(20)
    vector_index.publish(tmp_path, shards, kind="auto")
    index = VectorIndex.open(tmp_path)
    assert isinstance(index, index_small.SmallFlatIndex) == (engine == "numpy")
    assert index.meta["type"] == "flat" and index.count == 2021
    queries = shards.draw(40)
    scores, ids = index.search(queries, 10)
    want_scores, want_ids = truth(shards, queries, 10)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    allowed = shards.rng.choice(shards.live()[0], 12, replace=False)
    _, ids = index.search(queries[:5], 20, allowed_ids=allowed)
    for row in ids:
        assert sorted(row[row >= 0]) == sorted(allowed) and (row[12:] == -1).all()
    lims, scores, found = index.range_search(queries[:4], 0.7)
    live_ids, vectors = shards.live()
    for q in range(4):
        exact = live_ids[queries[q] @ vectors.T > 0.7]
        assert sorted(found[lims[q] : lims[q + 1]]) == sorted(exact)


@pytest.fixture(scope="module")
def ivf(tmp_path_factory):
    """An ivf-sq8 index of 8,000 clustered vectors in 5 shards (nlist 128)."""
    shards = Shards(2)
    for n in (3000, 2000, 1500, 1000, 500):
        shards.add(n)
    folder = tmp_path_factory.mktemp("ivf")
    vector_index.publish(folder, shards, kind="ivf-sq8")
    return folder, shards


def test_the_training_sample_is_read_in_blocks_and_gives_the_same_layout(tmp_path, monkeypatch):
    """Training rows are read a block at a time (one shard may hold 10M rows: its picks alone
    would be 1 GB): the sample, and so the layout, do not depend on the block."""
    from clipsearch_onnx import publishing

    shards = Shards(2)
    for n in (3000, 2000, 1500):
        shards.add(n)
    vector_index.publish(tmp_path / "whole", shards, kind="ivf-sq8")
    monkeypatch.setattr(publishing, "SAMPLE_BLOCK", 97)
    vector_index.publish(tmp_path / "blocks", shards, kind="ivf-sq8")
    whole, blocks = (VectorIndex.open(tmp_path / name) for name in ("whole", "blocks"))
    assert whole.layout is not None and blocks.layout is not None
    assert whole.nlist > 1
    np.testing.assert_array_equal(whole.layout.coarse.centroids, blocks.layout.coarse.centroids)
    queries = shards.draw(20)
    np.testing.assert_array_equal(whole.search(queries, 10)[1], blocks.search(queries, 10)[1])


def test_ivf_recall_grows_with_nprobe_and_filters_scan_every_allowed_list(ivf):
    folder, shards = ivf
    index = VectorIndex.open(folder)
    assert index.meta["type"] == "ivf-sq8" and index.nlist == 128 and index.count == 8000
    queries = shards.draw(100)
    _, want = truth(shards, queries, 10)
    one = recall(index.search(queries, 10, nprobe=1)[1], want)
    default = recall(index.search(queries, 10)[1], want)
    every = recall(index.search(queries, 10, nprobe=index.nlist)[1], want)
    assert one < default <= every and every >= 0.9, (one, default, every)
    # the 8-bit codes only perturb scores: the true nearest is always among the 10
    _, got = index.search(queries, 10, nprobe=index.nlist)
    assert np.mean([w[0] in g for g, w in zip(got, want, strict=True)]) >= 0.99
    # 12 allowed ids spread over the lists: all 12 come back even with nprobe 1, since the
    # lists probed are those holding an allowed id, as many as 2k matches need
    allowed = shards.rng.choice(shards.live()[0], 12, replace=False)
    _, ids = index.search(queries[:10], 20, nprobe=1, allowed_ids=allowed)
    assert all(sorted(r[r >= 0]) == sorted(allowed) for r in ids)
    # range search: every vector above the threshold (nprobe = all lists), catalog ids
    lims, scores, found = index.range_search(queries[:3], 0.8, nprobe=index.nlist)
    live_ids, vectors = shards.live()
    for q in range(3):
        exact = set(live_ids[queries[q] @ vectors.T >= 0.8])
        got_q = set(found[lims[q] : lims[q + 1]])
        assert len(exact ^ got_q) <= max(2, len(exact) // 50)


def test_new_shards_add_segments_and_dead_rows_never_come_back(tmp_path):
    shards = Shards(3)
    for _ in range(3):
        shards.add(900)
    first = vector_index.publish(tmp_path, shards, kind="ivf-sq8")
    layout = first["layout"]["name"]
    shards.add(1)  # one more photo: a segment of its own, same layout
    meta = vector_index.publish(tmp_path, shards, kind="ivf-sq8")
    assert meta["layout"]["name"] == layout and len(meta["segments"]) == 2
    # a shard loses rows (files replaced: their ids become -1), another one goes entirely
    ids, vectors = shards.shards["shard-0001"]
    gone_rows = np.arange(0, 900, 3)
    gone = np.concatenate([ids[gone_rows], shards.shards["shard-0002"][0]])
    gone_vectors = np.concatenate([vectors[gone_rows], shards.shards["shard-0002"][1]])
    ids = ids.copy()
    ids[gone_rows] = -1
    shards.shards["shard-0001"] = (ids, vectors)
    del shards.shards["shard-0002"]
    meta = vector_index.publish(tmp_path, shards, kind="ivf-sq8")
    assert meta["layout"]["name"] == layout and meta["count"] == 1501
    index = VectorIndex.open(tmp_path)
    _, found = index.search(gone_vectors[:50], 50, nprobe=index.nlist)
    assert not set(found.ravel()) & set(gone)
    queries = shards.draw(50)
    assert (
        recall(index.search(queries, 10, nprobe=index.nlist)[1], truth(shards, queries, 10)[1])
        > 0.9
    )
    # many small additions: segments merge by size tier, the dead are dropped on the way
    for _ in range(12):
        shards.add(3)
        meta = vector_index.publish(tmp_path, shards, kind="ivf-sq8")
    assert len(meta["segments"]) <= tiers.FANOUT + 1
    assert meta["count"] == 1501 + 36
    assert {s["name"] for s in meta["segments"]} | {meta["layout"]["name"]} <= {
        p.name for p in (tmp_path / "vectors").iterdir()
    }
    index = VectorIndex.open(tmp_path)
    assert index.count == meta["count"]
    _, found = index.search(gone_vectors[:50], 50, nprobe=index.nlist)
    assert not set(found.ravel()) & set(gone)


def test_the_layout_is_retrained_when_outgrown_or_asked(tmp_path):
    shards = Shards(4)
    shards.add(2000)
    first = vector_index.publish(tmp_path, shards, kind="ivf-sq8")
    assert first["layout"]["tier"] == 5 and first["layout"]["trained_for"] == 2000  # 32 lists
    shards.add(500)  # 25% more: same tier, same layout
    assert vector_index.publish(tmp_path, shards, kind="ivf-sq8")["layout"] == first["layout"]
    shards.add(8000)  # 5x: nlist would be 4x, so re-train and re-encode everything
    grown = vector_index.publish(tmp_path, shards, kind="ivf-sq8")
    assert grown["layout"]["tier"] > first["layout"]["tier"]
    assert grown["layout"]["trained_for"] == 10500 and len(grown["segments"]) == 1
    again = vector_index.publish(tmp_path, shards, kind="ivf-sq8", retrain=True)
    assert again["layout"]["name"] != grown["layout"]["name"]
    assert sorted(p.name for p in (tmp_path / "vectors").iterdir() if "layout" in p.name) == sorted(
        [grown["layout"]["name"], again["layout"]["name"]]
    )  # the previous generation's layout stays one round for its readers, older ones go
    flat = vector_index.publish(tmp_path, shards, kind="auto")  # below the IVF threshold
    assert flat["type"] == "flat" and flat["count"] == 10500


def test_a_reader_keeps_its_generation_while_new_ones_are_published(tmp_path):
    shards = Shards(5)
    shards.add(1000)
    vector_index.publish(tmp_path, shards, kind="flat")
    reader = VectorIndex.open(tmp_path)
    queries = shards.draw(5)
    before = reader.search(queries, 5)
    ids, vectors = shards.shards["shard-0000"]
    shards.shards["shard-0000"] = (np.full_like(ids, -1), vectors)  # every file replaced
    for _ in range(3):
        shards.add(300)
        vector_index.publish(tmp_path, shards, kind="flat")
    assert not (tmp_path / "vectors" / reader.meta["segments"][0]["name"]).exists()
    after = reader.search(queries, 5)  # its files are gone from the folder, not from its maps
    np.testing.assert_array_equal(before[1], after[1])
    assert not set(VectorIndex.open(tmp_path).search(queries, 5)[1].ravel()) & set(ids)


MEMORY = 64 << 10  # chunks of 1024 vectors: 3,600 new ones make 4 chunks to merge
KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from tests.vector_shards import Shards
from clipsearch_onnx import index as vector_index
from clipsearch_onnx.index import Progress
folder, stage, after, n = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
shards = Shards(6)
for _ in range(n):
    shards.add(1200)
seen = {"stage": "", "done": 0}
def advance(count):
    if seen["stage"] == stage:
        seen["done"] += count
        if seen["done"] >= after:
            os.kill(os.getpid(), signal.SIGKILL)
progress = Progress(start=lambda name, total: seen.update(stage=name), advance=advance)
switch = (lambda g: os.kill(os.getpid(), signal.SIGKILL)) if stage == "switch" else None
vector_index.publish(
    folder, shards, kind="ivf-sq8", memory=64 << 10, progress=progress, before_switch=switch
)
"""


@pytest.mark.parametrize(
    "stage, after", [("sampling", 1), ("encoding", 2500), ("merging", 1), ("switch", 0)]
)
def test_a_publication_killed_at_any_stage_is_completed_by_the_next(
    tmp_path, stage, after, monkeypatch
):
    """Killed while sampling, encoding (after a chunk), merging the chunks on disk, or with every
    file written but index.json: the published generation still answers, and the next
    publication finishes the job from what the killed one left (what was encoded is not encoded
    again), equal to an uninterrupted one."""
    root = Path(__file__).resolve().parents[1]
    folder, fresh = tmp_path / "index", tmp_path / "fresh"
    first = Shards(6)
    for _ in range(2):
        first.add(1200)
    vector_index.publish(folder, first, kind="ivf-sq8", memory=MEMORY)
    published = (folder / "index.json").read_bytes()
    killed = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(root), str(folder), stage, str(after), "5"]
    )
    assert killed.returncode == -signal.SIGKILL
    assert (folder / "index.json").read_bytes() == published
    if stage == "merging":
        assert list((folder / "vectors/build").glob(".merge-seg-*/lists.ivfdata"))
    shards = Shards(6)
    for _ in range(5):
        shards.add(1200)
    queries = shards.draw(20)
    old = VectorIndex.open(folder)
    assert old.count == 2400 and old.search(queries, 3)[1].max() <= 2400

    encoded = []
    real = layouts.Layout.encode
    monkeypatch.setattr(
        layouts.Layout, "encode", lambda self, x: encoded.append(len(x)) or real(self, x)
    )
    # 2 shards trained 32 lists; 5 shards outgrow them: the layout is trained again (in build/,
    # where the killed run may have left it) and all 6,000 vectors are encoded with it
    vector_index.publish(folder, shards, kind="ivf-sq8", memory=MEMORY)
    if stage in ("merging", "switch"):
        assert sum(encoded) == 0  # every chunk was already encoded
    elif stage == "encoding":
        assert sum(encoded) <= 6000 - 2048  # two chunks of 1024 were written before the kill
    index = VectorIndex.open(folder)
    assert index.count == 6000
    vector_index.publish(fresh, first, kind="ivf-sq8", memory=MEMORY)
    vector_index.publish(fresh, shards, kind="ivf-sq8", memory=MEMORY)
    np.testing.assert_array_equal(
        index.search(queries, 10)[1], VectorIndex.open(fresh).search(queries, 10)[1]
    )
    assert not list((folder / "vectors").glob(".*")) and not (folder / "vectors/build").exists()


RSS_SCRIPT = """
import json, sys, threading, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from tests.vector_shards import Shards
from clipsearch_onnx import index as vector_index

def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) << 10

shards = Shards(7, dim=int(sys.argv[5]))
n, per = int(sys.argv[3]), 25_000
for _ in range(n // per):
    shards.add(per)
# the source's own arrays are not the publisher's: measure above them
base = anon()
peak = [base]
def watch():
    while not done:
        peak[0] = max(peak[0], anon())
        time.sleep(0.002)
done = False
watcher = threading.Thread(target=watch)
watcher.start()
vector_index.publish(sys.argv[2], shards, kind=sys.argv[4], memory=8 << 20)
done = True
watcher.join()
print(json.dumps({"growth": peak[0] - base}))
"""


@pytest.mark.parametrize("kind, dim", [("flat", 64), ("ivf-sq8", 32)])
def test_publishing_memory_does_not_grow_with_the_collection(tmp_path, kind, dim):
    """8x the vectors (25k -> 200k; 64-d: 6.4 -> 51 MB): the publisher's anonymous memory above
    the source's own arrays grows by a few MB at most (it streams in chunks of its budget);
    gathering the vectors would add the whole difference (45 MB; 22 MB at 32-d)."""
    root = str(Path(__file__).resolve().parents[1])
    growth = {}
    for n in (25_000, 200_000):
        run = subprocess.run(
            [sys.executable, "-c", RSS_SCRIPT, root, tmp_path / f"{n}", str(n), kind, str(dim)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        growth[n] = json.loads(run.stdout)["growth"]
    assert growth[200_000] - growth[25_000] < 12 << 20, growth


def test_prefetch_asks_for_exactly_the_probed_lists_in_file_order(ivf, monkeypatch):
    """Cold reads: the probed lists' byte ranges (codes then ids of each list) are handed to the
    kernel in file order, neighbours joined, before the scan; results do not change."""
    folder, shards = ivf
    index = VectorIndex.open(folder)
    queries = shards.draw(3)
    plain = index.search(queries, 10, nprobe=5)
    calls = []
    monkeypatch.setattr(open_segment, "PREFETCH_ABOVE", 0)
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, at, n, advice: calls.append((at, n)))
    assert (np.array(index.search(queries, 10, nprobe=5)) == np.array(plain)).all()
    segment = index._segments[0].segment
    lists, _ = index.layout.coarse.rank(queries, 5)
    want = np.zeros(segment.count * (segment.code_size + 8), bool)
    for lst in np.unique(lists):
        at = segment.offsets[lst]
        want[at : at + segment.sizes[lst] * (segment.code_size + 8)] = True
    got = np.zeros_like(want)
    for at, n in calls:
        got[at : at + n] = True
    assert [at for at, _ in calls] == sorted(at for at, _ in calls)
    assert (got >= want).all() and got.sum() <= want.sum() + len(calls) * (256 << 10)


def test_a_small_flat_index_is_searched_without_importing_faiss(tmp_path):
    shards = Shards(8)
    shards.add(500)
    vector_index.publish(tmp_path, shards, kind="auto")
    probe = (
        "import sys, numpy as np\n"
        "from clipsearch_onnx.index import VectorIndex\n"
        f"index = VectorIndex.open({str(tmp_path)!r})\n"
        "print(index.search(np.ones((1, index.meta['dim']), np.float32), 3)[1][0].tolist())\n"
        "print('faiss' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    found, faiss_loaded = out.stdout.split("\n")[:2]
    assert faiss_loaded == "False" and len(json.loads(found)) == 3


def test_segments_answer_exactly_as_faiss_own_ivf_with_the_same_codes(ivf):
    """The lists written and merged on disk (several shards, chunks, one segment) answer with the
    same ids and scores as an in-memory faiss IVF given the same vectors and list assignment."""
    import faiss

    folder, shards = ivf
    index = VectorIndex.open(folder)
    reference = faiss.clone_index(index.layout.shell)
    ids, vectors = shards.live()
    lists = index.layout.coarse.assign(vectors)
    reference.add_core(
        len(vectors), faiss.swig_ptr(vectors), faiss.swig_ptr(ids), faiss.swig_ptr(lists)
    )
    reference.nprobe = 7
    queries = shards.draw(20)
    want_scores, want_ids = reference.search(queries, 10)
    scores, found = index.search(queries, 10, nprobe=7)
    np.testing.assert_array_equal(found, want_ids)
    np.testing.assert_array_equal(scores, want_scores)
