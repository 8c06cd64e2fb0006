"""An approximate (IVF, 8-bit codes) index answers with exact scores: the searcher re-scores its
candidates with the embeddings kept in the index's shards."""

from __future__ import annotations

import json

import numpy as np

from clipsearch_onnx.importer import import_shards
from clipsearch_onnx.manifest import Manifest
from clipsearch_onnx.search import open_searcher
from clipsearch_onnx.settings import Settings
from clipsearch_onnx.shards import write_shard


def test_ivf_results_carry_exact_scores_in_exact_order(tmp_path, exported_model):
    dim = json.loads((exported_model / "manifest.json").read_text())["embedding_dim"]
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((12, dim))
    base = centres[rng.integers(0, 12, 3000)] + 0.35 * rng.standard_normal((3000, dim))
    base = (base / np.linalg.norm(base, axis=1, keepdims=True)).astype(np.float32)
    queries = base[rng.integers(0, 3000, 40)] + 0.1 * rng.standard_normal((40, dim))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    shards = []
    for part, rows in enumerate((range(0, 1500), range(1500, 3000))):
        shard = tmp_path / f"shard{part}"
        write_shard(shard, base[rows.start : rows.stop], [{"path": f"/v/{i}.jpg"} for i in rows])
        shards.append(shard)
    index_dir = tmp_path / "index"
    import_shards(index_dir, shards, Manifest.load(exported_model), index_type="ivf-sq8")

    searcher = open_searcher(Settings(index_dir=index_dir))
    assert searcher.vectors.meta["type"] == "ivf-sq8"
    recall = []
    for q in queries:
        results = searcher.search_vector(q, 10)
        rows = [int(r.path[3:-4]) for r in results]
        # 8-bit codes alone are off by ~1e-3; these are the stored float32 embeddings' scores.
        np.testing.assert_allclose([r.score for r in results], base[rows] @ q, atol=1e-5)
        assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
        recall.append(len(set(rows) & set(np.argsort(-(base @ q))[:10])) / 10)
    searcher.close()
    assert np.mean(recall) >= 0.95
