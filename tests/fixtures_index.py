"""Session fixture: a small captioned photo collection indexed with the exported tiny model.

Everything lives under one `root` folder (photos/, clip-tiny/ — a copy of `exported_model` —
and index/), so a test that points HOME at `root` sees the same `~/photos/...` paths on every
run (the TUI snapshots rely on this).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.factories import default_corpus, make_images, write_captions

COLLECTION_SIZE = 24
CAPTIONS_PER_IMAGE = 2


@dataclass(frozen=True)
class IndexedCollection:
    root: Path
    photos: Path
    model: Path
    index: Path
    images: list[Path]
    captions: dict[str, list[str]]  # file name -> its captions, in order


@pytest.fixture(scope="session")
def indexed_collection(
    exported_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> IndexedCollection:
    from clipsearch_onnx.cli import main

    root = tmp_path_factory.mktemp("collection")
    photos = root / "photos"
    images = make_images(photos, COLLECTION_SIZE, size=(64, 48), seed=3)
    corpus = default_corpus()
    captions = {
        p.name: [
            corpus[(i * CAPTIONS_PER_IMAGE + k) % len(corpus)] for k in range(CAPTIONS_PER_IMAGE)
        ]
        for i, p in enumerate(images)
    }
    captions_file = write_captions(root / "captions.txt", captions)
    model = root / "clip-tiny"
    shutil.copytree(exported_model, model)
    index = root / "index"
    args = ["index", str(photos), "--model", str(model), "--index", str(index)]
    # one backend on every CPU, so that scores (and the TUI's screenshots) are the same in CI
    args += ["--backend", "onnxruntime"]
    code = main([*args, "--captions", str(captions_file), "--quiet"])
    assert code == 0, f"`clipsearch index` of the test collection failed with exit code {code}"
    return IndexedCollection(root, photos, model, index, images, captions)
