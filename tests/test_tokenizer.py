"""The runtime tokenizer gives the ids transformers' CLIP tokenizers give, without transformers.

Reference: `CLIPTokenizer` (slow) and `CLIPTokenizerFast` with padding="longest", truncation and
max_length=77, loaded from the same tiny checkpoint. Our tokenizer reads the fast tokenizer's
tokenizer.json, so it agrees with the fast one everywhere. The slow one differs in two documented
ways because ftfy is not installed: transformers then falls back to BERT's BasicTokenizer, which
(1) puts spaces around every CJK ideograph, so "日本語" becomes three words instead of one, and
(2) deletes control and format characters (Cc/Cf: e.g. the zero-width joiner inside emoji
sequences, U+FFFD). OpenAI's own CLIP tokenizer (ftfy + regex) does neither, so on those texts
the fast tokenizer, and ours, are the faithful ones.
"""

from __future__ import annotations

import json
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clipsearch_onnx.errors import ModelError
from clipsearch_onnx.tokenizer import ClipTokenizer

TEXTS = [
    "a photo of a dog",
    "A PHOTO of a Dog!!!",
    "Hello, world... it's 2024; we're here (again) -- isn't it?",
    "  leading and trailing whitespace \t\n ",
    "tabs\tand\nnewlines\r\nand   many    spaces",
    "café naïve Ångström résumé São Paulo Zürich",
    "ΣΟΦΙΑ Σοφία straße",
    "emoji 😀🐶🎉 and symbols © ® ™ € £ ¥ ∑ √",
    "numbers 3.14159 and 1,000,000 and 42nd",
    "e-mail: someone@example.com, url: https://example.com/a?b=c",
    "",
    "   ",
    "a " * 100,  # far more than 77 tokens: truncated, eos kept
    "supercalifragilisticexpialidocious " * 20,
    "<|startoftext|> typed by a user <|endoftext|>",
]
CJK = ["日本語のテキスト", "一只狗在海滩上奔跑", "한국어 문장 and 中文"]
FORMAT_CHARS = ["family 👨\u200d👩\u200d👧 emoji", "soft\u00adhyphen", "bad \ufffd byte"]


@pytest.fixture(scope="module")
def hf(tiny_checkpoint):
    from transformers import CLIPTokenizer, CLIPTokenizerFast

    return (
        CLIPTokenizer.from_pretrained(tiny_checkpoint),
        CLIPTokenizerFast.from_pretrained(tiny_checkpoint),
    )


@pytest.fixture(scope="module")
def tok(tiny_checkpoint):
    vocab = json.loads((tiny_checkpoint / "vocab.json").read_text(encoding="utf-8"))
    eos = vocab["<|endoftext|>"]
    return ClipTokenizer.from_file(
        tiny_checkpoint / "tokenizer.json", vocab["<|startoftext|>"], eos, eos
    )


def reference(hf_tokenizer, texts):
    out = hf_tokenizer(
        texts, padding="longest", truncation=True, max_length=77, return_tensors="np"
    )
    return out["input_ids"].astype(np.int64), out["attention_mask"].astype(np.int64)


def assert_same(ours, theirs):
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])


@pytest.mark.parametrize("which", [0, 1], ids=["slow", "fast"])
def test_ids_match_transformers_per_text_and_batched(tok, hf, which):
    for text in TEXTS:
        assert_same(tok.encode([text]), reference(hf[which], [text]))
    assert_same(tok.encode(TEXTS), reference(hf[which], TEXTS))


def test_cjk_and_format_characters_match_fast_and_explain_slow(tok, hf):
    slow, fast = hf
    texts = CJK + FORMAT_CHARS
    assert_same(tok.encode(texts), reference(fast, texts))
    for text in CJK:
        assert not np.array_equal(tok.encode([text])[0], reference(slow, [text])[0])
        spaced = "".join(f" {c} " if unicodedata.name(c, "").startswith("CJK") else c for c in text)
        assert_same(tok.encode([spaced]), reference(slow, [text]))
    for text in FORMAT_CHARS:
        stripped = "".join(c for c in text if not unicodedata.category(c).startswith("C"))
        stripped = stripped.replace("\ufffd", "")
        assert_same(tok.encode([stripped]), reference(slow, [text]))


def test_clip_rules(tok):
    ids, mask = tok.encode(["", "a dog", "word " * 200])
    assert ids.dtype == np.int64 and mask.dtype == np.int64
    assert ids.shape == mask.shape == (3, 77)
    assert list(ids[0, :2]) == [tok.bos_id, tok.eos_id] and mask[0].sum() == 2
    assert (ids[0, 2:] == tok.pad_id).all() and (mask[0, 2:] == 0).all()
    assert ids[2, 0] == tok.bos_id and ids[2, 76] == tok.eos_id and mask[2].all()
    short, _ = tok.encode(["a dog", "a"])
    assert short.shape[1] == 1 + len(tok.tokens(["a dog"])[0]) + 1  # longest in batch, no more


def test_short_context_length(tiny_checkpoint, tok):
    small = ClipTokenizer.from_file(
        tiny_checkpoint / "tokenizer.json", tok.bos_id, tok.eos_id, tok.pad_id, context_length=5
    )
    ids, _ = small.encode(["one two three four five six"])
    assert ids.shape == (1, 5) and ids[0, -1] == tok.eos_id
    assert list(ids[0, 1:4]) == tok.tokens(["one two three four five six"])[0][:3]


def test_missing_or_broken_tokenizer_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="cannot load tokenizer"):
        ClipTokenizer.from_file(tmp_path / "tokenizer.json", 1, 2, 2)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot load tokenizer"):
        ClipTokenizer.from_file(tmp_path / "tokenizer.json", 1, 2, 2)


def _manifest(model_dir, tokenizer_spec):
    from clipsearch_onnx.manifest import Manifest, sha256_file

    tj = model_dir / "tokenizer.json"
    manifest = {
        "format": 1,
        "source": {"model": "tiny", "revision": None},
        "embedding_dim": 24,
        "image_size": 32,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.25, 0.25, 0.25],
        "context_length": 77,
        "tokenizer": tokenizer_spec,
        "files": {"tokenizer.json": {"sha256": sha256_file(tj), "bytes": tj.stat().st_size}},
        "precisions": {},
    }
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    return Manifest.load(model_dir)


def test_from_model_uses_manifest_ids_and_refuses_a_damaged_file(tmp_path, tiny_checkpoint, tok):
    (tmp_path / "tokenizer.json").write_bytes((tiny_checkpoint / "tokenizer.json").read_bytes())
    spec = {"file": "tokenizer.json", "bos_token_id": tok.bos_id, "eos_token_id": tok.eos_id,
            "pad_token_id": 0, "lowercase": True}  # fmt: skip
    loaded = ClipTokenizer.from_model(_manifest(tmp_path, spec))
    ids, _ = loaded.encode(["a dog", "a"])
    assert ids[1, -1] == 0  # the manifest's pad id, not eos
    assert list(ids[0]) == list(tok.encode(["a dog"])[0][0])

    with pytest.raises(ModelError, match="tokenizer entry"):
        ClipTokenizer.from_model(_manifest(tmp_path, {"file": "tokenizer.json"}))

    data = (tmp_path / "tokenizer.json").read_text(encoding="utf-8")
    manifest = _manifest(tmp_path, spec)
    (tmp_path / "tokenizer.json").write_text(data.replace('"dog', '"cat', 1), encoding="utf-8")
    with pytest.raises(ModelError, match="sha256|bytes"):
        ClipTokenizer.from_model(manifest)


# Characters on which the slow tokenizer's BasicTokenizer fallback behaves like CLIP's own.
def _slow_safe(c: str) -> bool:
    return not unicodedata.category(c).startswith(("C", "Z")) and "CJK" not in unicodedata.name(
        c, "CJK"
    ) and c != "\ufffd"  # fmt: skip


SAFE_TEXT = st.text(
    st.one_of(
        st.sampled_from(list(" \t\nabcdefghijklmnopqrstuvwxyzABCXYZ0123456789.,!?'-\"éüñ😀")),
        st.characters(max_codepoint=0x2FFF).filter(_slow_safe),
    ),
    max_size=120,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(SAFE_TEXT, min_size=1, max_size=4))
def test_random_text_matches_slow_and_fast(tok, hf, texts):
    ours = tok.encode(texts)
    assert_same(ours, reference(hf[0], texts))
    assert_same(ours, reference(hf[1], texts))
