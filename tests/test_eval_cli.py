"""`clipsearch eval` against recall computed here, from `clipsearch embed` vectors, on a captioned
folder nothing else has seen (a held-out split of it, both precisions)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from tests.factories import default_corpus, write_captions
from tests.fixtures_collection import assert_one_clean_line, make_distinct_images, run_cli


def _embed(model: Path, precision: str, home: Path, texts: list[str], images: list[Path]):
    args = ["embed", "--model", model, "--precision", precision]
    args += [a for t in texts for a in ("--text", t)]
    args += [a for p in images for a in ("--image", p)]
    proc = run_cli(*args, home=home)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    vectors = {
        kind: np.array([r["embedding"] for r in rows if r["kind"] == kind], dtype=np.float64)
        for kind in ("text", "image")
    }
    return vectors["text"], vectors["image"]


def _recall_by_sorting(text: np.ndarray, image: np.ndarray, owner: list[int], k: int):
    """Recall@k both ways, in percent, from full sorts of every similarity list."""
    sims = text @ image.T
    t2i = np.mean([owner[t] in np.argsort(-sims[t])[:k] for t in range(len(text))])
    i2t = np.mean(
        [any(owner[t] == i for t in np.argsort(-sims[:, i])[:k]) for i in range(len(image))]
    )
    return 100 * t2i, 100 * i2t


@pytest.mark.slow
def test_eval_agrees_with_recall_from_embed_vectors(exported_model, tmp_path):
    names = [f"held_{i:03d}.jpg" for i in range(36)]
    make_distinct_images(tmp_path / "Images", names, seed=123)
    corpus = default_corpus()
    rnd = random.Random(5)
    texts = rnd.sample(corpus, len(corpus))
    # 3 captions each (not 5: the protocol must not assume Flickr's count), all distinct.
    captions = {name: [texts[(3 * i + j) % len(texts)] + f" #{i}" for j in range(3)]
                for i, name in enumerate(names)}  # fmt: skip
    write_captions(tmp_path / "captions.txt", captions)
    test_names = sorted(rnd.sample(names, 24))
    (tmp_path / "test.txt").write_text("\n".join(test_names) + "\n", encoding="utf-8")

    proc = run_cli(
        "eval", "--images", tmp_path / "Images", "--captions", tmp_path / "captions.txt",
        "--split", tmp_path / "test.txt", "--model", exported_model, "--json", "-q",
        home=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["decoding"] == "reference"  # eval never takes the decoder's shortcuts

    query_texts = [c for name in test_names for c in captions[name]]
    owner = [i for i, name in enumerate(test_names) for _ in captions[name]]
    paths = [tmp_path / "Images" / name for name in test_names]
    for precision in ("fp32", "int8"):
        text, image = _embed(exported_model, precision, tmp_path, query_texts, paths)
        assert text.shape == (72, image.shape[1]) and image.shape[0] == 24
        for k in (1, 5, 10):
            t2i, i2t = _recall_by_sorting(text, image, owner, k)
            assert report[precision]["t2i"][f"R@{k}"] == pytest.approx(t2i, abs=1.0), (precision, k)
            assert report[precision]["i2t"][f"R@{k}"] == pytest.approx(i2t, abs=1.0), (precision, k)
        # the figures must be informative here, not 0 or 100 everywhere
        assert (
            0 < report[precision]["t2i"]["R@10"] < 100 or 0 < report[precision]["i2t"]["R@5"] < 100
        )


def test_a_dataset_folder_not_yet_downloaded_says_how_to_get_it(tmp_path):
    # `make eval` on a fresh clone, before `make index` downloaded Flickr8k
    proc = run_cli("eval", "--dataset", tmp_path / "flickr8k", home=tmp_path)
    assert proc.returncode == 5
    assert_one_clean_line(proc.stderr)
    assert f"image folder {tmp_path / 'flickr8k' / 'Images'} does not exist" in proc.stderr
    assert f"`clipsearch dataset flickr8k --dest {tmp_path / 'flickr8k'}`" in proc.stderr
