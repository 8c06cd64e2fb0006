"""The tiny checkpoint factory produces what the export and runtime expect of a hub model."""

from __future__ import annotations

import json

from PIL import Image

from tests.factories import make_images


def test_tiny_checkpoint_loads_with_transformers(tiny_checkpoint):
    from transformers import CLIPModel, CLIPTokenizer, CLIPTokenizerFast

    vocab = json.loads((tiny_checkpoint / "vocab.json").read_text(encoding="utf-8"))
    model = CLIPModel.from_pretrained(tiny_checkpoint)
    assert model.config.projection_dim == 24
    assert model.config.text_config.projection_dim == 24
    assert model.config.vision_config.projection_dim == 24
    assert model.config.text_config.vocab_size == len(vocab)
    assert model.config.text_config.eos_token_id == vocab["<|endoftext|>"]
    for cls in (CLIPTokenizer, CLIPTokenizerFast):
        tok = cls.from_pretrained(tiny_checkpoint)
        ids = tok(["a dog on the beach"])["input_ids"][0]
        assert ids[0] == vocab["<|startoftext|>"] and ids[-1] == vocab["<|endoftext|>"]
        assert len(ids) < 10  # learned merges, not one token per byte


def test_make_images_is_seeded_and_varied(tmp_path):
    a = make_images(tmp_path / "a", 6, size=(40, 30), seed=3)
    b = make_images(tmp_path / "b", 6, size=(40, 30), seed=3)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    pixels = {Image.open(p).convert("RGB").tobytes() for p in a}
    assert len(pixels) == 6
    assert all(Image.open(p).size == (40, 30) for p in a)
