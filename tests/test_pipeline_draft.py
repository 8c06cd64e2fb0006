"""Draft JPEG decoding in the indexing pipeline stays close to an exact decode."""

from __future__ import annotations

import numpy as np
from PIL import Image

from clipsearch_onnx.pipeline import read_file
from clipsearch_onnx.preprocess import Preprocessor, load_image
from tests.factories import CLIP_MEAN, CLIP_STD


def test_large_jpeg_is_decoded_reduced_but_preprocesses_almost_identically(tmp_path):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    photo = Image.fromarray(small, "RGB").resize((1600, 1200), Image.Resampling.BICUBIC)
    path = tmp_path / "photo.jpg"
    photo.save(path, quality=90)
    pre = Preprocessor(224, 224, CLIP_MEAN, CLIP_STD)

    assert load_image(path, draft=True, min_side=224).size == (400, 300)  # decoded at 1/4
    _, drafted = read_file(str(path), pre)
    _, exact = read_file(str(path), pre, draft=False)
    np.testing.assert_array_equal(exact, pre([load_image(path)])[0])
    diff = np.abs(drafted - exact)
    assert diff.max() > 0  # the pipeline did decode in draft mode
    assert diff.mean() < 0.01  # normalised units: ~0.7 grey levels
    assert diff.max() < 0.3
