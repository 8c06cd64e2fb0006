"""Same picture, same vector: `index`, `embed` and `search --image` (the TUI's image queries and
find-similar go through the same Searcher) give one file one vector; an indexed file used as a
query reuses its stored vector without loading the vision tower."""

from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image

from clipsearch_onnx.settings import Settings
from tests.factories import make_detailed_jpegs, make_images
from tests.fixtures_collection import run_cli


def test_one_file_one_vector_in_every_command(exported_model, tmp_path):
    from clipsearch_onnx.search import open_searcher

    photos = tmp_path / "photos"
    # 640x480 and 1001x751 are decoded reduced (DCT scaling) for S=40; the small ones are not.
    paths = make_detailed_jpegs(photos, [(640, 480), (1001, 751), (300, 200)], seed=3)
    paths += make_images(photos, 2, size=(64, 48), seed=9)
    index = tmp_path / "index"
    proc = run_cli(
        "index", photos, "--index", index, "--model", exported_model, "--precision", "fp32", "-q",
        home=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr

    args = [a for p in paths for a in ("--image", p)]
    proc = run_cli("embed", *args, "--model", exported_model, "--precision", "fp32", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    embedded = np.array([json.loads(line)["embedding"] for line in proc.stdout.splitlines()])

    searcher = open_searcher(Settings(index_dir=index))
    try:
        ids = {r.path: r.id for r in searcher.search(text="x", k=10).results}
        stored = np.stack([searcher.vector_of(ids[str(p)]) for p in paths])
        assert ((stored * embedded).sum(axis=1) >= 0.99999).all()

        # An indexed file, by its path or as a copy elsewhere: its own stored vector, exactly,
        # and no vision tower loaded.
        copy = tmp_path / "elsewhere.jpg"
        shutil.copy(paths[1], copy)
        for query in (paths[0], paths[1], copy):
            top = searcher.search(image=query, k=1).results[0]
            assert top.path in (str(query), str(paths[1])) and top.score > 0.99999
        assert "vision" not in searcher.encoder._sessions

        # A file the index does not hold is embedded afresh, the same way as `embed`.
        Image.open(paths[0]).save(tmp_path / "other.png")
        top = searcher.search(image=tmp_path / "other.png", k=1).results[0]
        assert "vision" in searcher.encoder._sessions
        assert top.path == str(paths[0]) and top.score > 0.99
    finally:
        searcher.close()
