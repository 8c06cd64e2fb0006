"""Index, search and eval with each model family through the real commands, and an index that
refuses a model of another family."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from tests.factories import default_corpus, write_captions
from tests.fixtures_collection import (
    assert_one_clean_line,
    make_distinct_images,
    run_cli,
    search_json,
)
from tests.test_eval_cli import _embed, _recall_by_sorting

FAMILIES = ["siglip", "clip16"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("family-photos")
    names = [f"p{i:02d}.{'jpg' if i % 2 else 'png'}" for i in range(16)]
    paths = make_distinct_images(root / "Images", names, seed=7, size=(70, 50))
    texts = random.Random(3).sample(default_corpus(), 32)
    captions = {name: [texts[2 * i], texts[2 * i + 1]] for i, name in enumerate(names)}
    return root, paths, write_captions(root / "captions.txt", captions), captions


@pytest.fixture(scope="module")
def indexes(request, photos, tmp_path_factory):
    """One index per family, built by `clipsearch index` (created on first use)."""
    root, _, captions_file, _ = photos
    built = {}

    def build(family):
        if family not in built:
            model = request.getfixturevalue(family).model
            index = tmp_path_factory.mktemp(f"{family}-index") / "index"
            proc = run_cli(
                "index", root / "Images", "--captions", captions_file, "--model", model,
                "--index", index, "--quiet", home=root,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            built[family] = index
        return built[family]

    return build


@pytest.mark.parametrize("family", FAMILIES)
def test_index_and_search_with_each_family(family, indexes, photos):
    root, paths, _, captions = photos
    index = indexes(family)
    # An indexed picture as the query finds itself first.
    found = search_json(index, root, "--image", paths[5], "-k", "3")
    assert found["results"][0]["path"] == str(paths[5])
    assert found["results"][0]["score"] == pytest.approx(1.0, abs=2e-3)
    # A text query ranks every picture, best first.
    text = captions[paths[9].name][0]
    results = search_json(index, root, text, "-k", "16")["results"]
    assert sorted(r["path"] for r in results) == sorted(map(str, paths))
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    info = json.loads(run_cli("info", "--index", index, "--json", home=root).stdout)
    assert info["model_family"] == ("siglip" if family == "siglip" else "clip")


@pytest.mark.parametrize("family", FAMILIES)
def test_eval_agrees_with_embed_vectors(family, request, photos):
    root, paths, captions_file, captions = photos
    model = request.getfixturevalue(family).model
    proc = run_cli(
        "eval", "--images", root / "Images", "--captions", captions_file, "--whole",
        "--model", model, "--precision", "fp32", "--json", "-q", home=root,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)["fp32"]
    texts = [c for p in paths for c in captions[p.name]]
    owner = [i for i, p in enumerate(paths) for _ in captions[p.name]]
    text, image = _embed(model, "fp32", root, texts, paths)
    for k in (1, 5, 10):
        t2i, i2t = _recall_by_sorting(text, image, owner, k)
        assert report["t2i"][f"R@{k}"] == pytest.approx(t2i, abs=1.0), k
        assert report["i2t"][f"R@{k}"] == pytest.approx(i2t, abs=1.0), k


def test_an_index_refuses_a_model_of_another_family(indexes, photos, clip16):
    root, paths, _, _ = photos
    index = indexes("siglip")
    before = search_json(index, root, "a dog", "-k", "16")["results"]
    for args in (
        ["search", "a dog", "--model", clip16.model],
        ["search", "--image", paths[0], "--model", clip16.model],
        ["index", root / "Images", "--model", clip16.model],
    ):
        proc = run_cli(*args, "--index", index, home=root)
        assert proc.returncode == 3, (args, proc.stderr)
        assert_one_clean_line(proc.stderr)
        assert "another model" in proc.stderr and "siglip" in proc.stderr, proc.stderr
    after = search_json(index, root, "a dog", "-k", "16")["results"]
    assert [r["path"] for r in after] == [r["path"] for r in before]
    assert np.allclose([r["score"] for r in after], [r["score"] for r in before])
