"""A one-shot query loads the text tower the quick way and gets the same vectors; the weights the
graphs keep beside them are checked like the graphs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from clipsearch_onnx.encoder import Encoder
from clipsearch_onnx.errors import ModelError
from clipsearch_onnx.manifest import Manifest

TEXTS = ["a dog running on the beach", "two red squares", "x"]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_quick_start_text_tower_gives_the_same_vectors(exported_model, precision):
    manifest = Manifest.load(exported_model)
    quick = Encoder(manifest, precision, 1, quick_start=True).embed_texts(TEXTS)
    usual = Encoder(manifest, precision, 1).embed_texts(TEXTS)
    assert (quick * usual).sum(axis=1).min() >= 0.99999


def test_graph_weights_live_beside_the_graph_and_are_verified(exported_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(exported_model, model)
    weights = model / "text.int8.onnx.data"
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    weights.write_bytes(bytes(blob))
    encoder = Encoder(Manifest.load(model), "int8", 1)
    with pytest.raises(ModelError, match=r"text\.int8\.onnx\.data does not match its sha256"):
        encoder.embed_texts(["a cat"])
    pixels = np.zeros((1, 3, encoder.manifest.image_size, encoder.manifest.image_size), np.float32)
    assert np.isfinite(encoder.embed_pixels(pixels)).all()  # the other tower is not affected
