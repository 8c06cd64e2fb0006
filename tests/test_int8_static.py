"""int8 image vectors with static activation scales: the same picture gives the same vector,
alone or among others, and the export calibrates them on the pictures it is given. The text tower
stays dynamic; the encoder embeds one text at a time there, so a text's vector is the same too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipsearch_onnx.encoder import Encoder
from clipsearch_onnx.manifest import Manifest
from export import calibration
from export.errors import ExportError
from tests.factories import make_images


def test_int8_image_vector_does_not_depend_on_its_batch(exported_model, tmp_path):
    images = [Image.open(p).convert("RGB") for p in make_images(tmp_path, 4, seed=5)]
    encoder = Encoder(Manifest.load(exported_model), "int8", 1)
    pixels = encoder.preprocess(images)
    alone = np.concatenate([encoder.embed_pixels(pixels[i : i + 1]) for i in range(len(pixels))])
    together = encoder.embed_pixels(pixels)
    # one of the four with three very different neighbours: dynamic scales would move it
    assert (alone * together).sum(axis=1).min() >= 0.99999


def test_int8_text_vector_does_not_depend_on_the_texts_beside_it(exported_model):
    texts = ["a dog", "two children fly a red kite on a windy beach at dusk", "x", "ÄÖÜ 東京 ☃"]
    texts += [f"{word} " * (3 + i % 20) for i, word in enumerate(["sky", "blue", "zz"] * 20)]
    encoder = Encoder(Manifest.load(exported_model), "int8", 1)
    alone = np.concatenate([encoder.embed_texts([t]) for t in texts])
    together = encoder.embed_texts(texts)  # what `embed --text ...` and `eval` do
    assert np.array_equal(alone, together)


def test_calibration_pictures_spread_over_the_folder(tmp_path):
    paths = make_images(tmp_path / "photos", 10, seed=2)
    (tmp_path / "photos" / "notes.txt").write_text("not a picture")
    picked = calibration.image_files(tmp_path / "photos", count=4)
    assert len(picked) == 4 and set(picked) <= set(paths)
    assert picked[0] == sorted(paths)[0] and picked[-1] != sorted(paths)[3]


def test_calibration_folder_without_pictures_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="no image files"):
        calibration.image_files(tmp_path / "empty")
    with pytest.raises(ExportError, match="not a folder"):
        calibration.image_files(Path(tmp_path / "missing"))


def test_calibration_batches_come_from_the_folder(export_checkpoint, tmp_path):
    from export import checkpoint

    make_images(tmp_path / "photos", 11, size=(90, 70), seed=4)
    ckpt = checkpoint.load(str(export_checkpoint), None)
    calib = calibration.load(ckpt, tmp_path / "photos")
    assert [len(f["pixel_values"]) for f in calib.feeds] == [8, 3]
    assert calib.feeds[0]["pixel_values"].shape[1:] == (3, ckpt.image_size, ckpt.image_size)
    assert str(tmp_path / "photos") in calib.source
