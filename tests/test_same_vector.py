"""Same picture, same vector: an indexed file used as a query (`search --image`; the TUI's image
queries and find-similar go through the same Searcher) reuses its stored vector without loading
the vision tower, and `embed --decoding fast` gives the vectors `index` stores. `embed` and a
query image the index does not hold decode the reference way by default (clipsearch_onnx/
pipeline.py: exactly the checkpoint's preprocessing, issue 16), which differs from `index`'s only
for large JPEGs."""

from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image

from clipsearch_onnx.encoder import Encoder
from clipsearch_onnx.manifest import Manifest
from clipsearch_onnx.pipeline import FAST, REFERENCE, read_file
from clipsearch_onnx.settings import Settings
from tests.factories import make_detailed_jpegs, make_images
from tests.fixtures_collection import run_cli


def test_one_file_one_vector_in_every_command(exported_model, tmp_path):
    from clipsearch_onnx.search import open_searcher

    photos = tmp_path / "photos"
    # 640x480, 1001x751 and 300x200 are decoded reduced (DCT scaling) for S=40 by FAST (over 4x
    # the 60x40 resize target); the PNGs are not.
    paths = make_detailed_jpegs(photos, [(640, 480), (1001, 751), (300, 200)], seed=3)
    paths += make_images(photos, 2, size=(64, 48), seed=9)
    index = tmp_path / "index"
    proc = run_cli(
        "index", photos, "--index", index, "--model", exported_model, "--precision", "fp32", "-q",
        home=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr

    def embed(*options):
        args = [a for p in paths for a in ("--image", p)]
        args += ["--model", exported_model, "--precision", "fp32", *options]
        proc = run_cli("embed", *args, home=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return np.array([json.loads(line)["embedding"] for line in proc.stdout.splitlines()])

    fast, default = embed("--decoding", "fast"), embed()
    encoder = Encoder(Manifest.load(exported_model), "fp32")
    reference = encoder.embed_pixels(
        np.stack([read_file(p, encoder.preprocess, REFERENCE).pixels for p in paths])
    )
    np.testing.assert_allclose(default, reference, atol=1e-6)  # the reference decoding...

    searcher = open_searcher(Settings(index_dir=index))
    try:
        ids = {r.path: r.id for r in searcher.search(text="x", k=10).results}
        stored = np.stack([searcher.vector_of(ids[str(p)]) for p in paths])
        assert ((stored * fast).sum(axis=1) >= 0.99999).all()
        # ... which differs from the fast one for the JPEGs decoded reduced, and only for them
        gap = np.abs(fast - default).max(axis=1)
        assert (gap[:3] > 1e-5).all() and (gap[3:] < 1e-7).all(), gap

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
        # A large JPEG the index does not hold: the reference decoding, as `embed` gives it
        changed = tmp_path / "changed.jpg"
        Image.open(paths[1]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(changed, quality=90)
        (want,) = encoder.embed_pixels(
            read_file(changed, encoder.preprocess, REFERENCE).pixels[None]
        )
        got = searcher.embed_query(image=changed)[0]
        np.testing.assert_allclose(got, want, atol=1e-6)
        reduced = encoder.embed_pixels(read_file(changed, encoder.preprocess, FAST).pixels[None])
        assert np.abs(got - reduced[0]).max() > 1e-5  # FAST would decode it reduced
    finally:
        searcher.close()
    # ... and reduced where the `decoding` setting says so
    searcher = open_searcher(Settings(index_dir=index, decoding="fast"))
    try:
        np.testing.assert_allclose(searcher.embed_query(image=changed)[0], reduced[0], atol=1e-6)
    finally:
        searcher.close()
