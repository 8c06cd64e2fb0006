"""The model folder's `tokenizer.json` and the manifest's tokenizer entry, checked end to end.

CLIP: the checkpoint's tokenizer.json is copied (or built from its BPE files) and the runtime
applies CLIP's rules to it ("clip" kind). SigLIP: the fast tokenizer transformers loaded is saved
as it is configured (its post-processor, e.g. SigLIP 2's no-bos/eos settings, comes from
tokenizer_config.json, not from the shipped file), or SigLIP v1's slow SentencePiece tokenizer is
converted (export/siglip_spm.py); the runtime truncates and pads it as transformers does ("fast"
kind).

Either way the runtime tokenizer (`clipsearch_onnx.tokenizer`) is built from what was written and
must return exactly what the checkpoint's own tokenizer returns (the same keys, the same ids and
mask) for the sample captions plus texts chosen to break tokenizers: else the export stops.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from export import samples
from export.errors import ExportError

FILE = "tokenizer.json"
HARD_TEXTS = [
    "",
    "   ",
    "A PHOTO of a Dog!!!",
    "Hello, world... it's 2024; we're here (again) -- isn't it?",
    "tabs\tand\nnewlines\r\nand   many    spaces",
    "café naïve Ångström résumé São Paulo Zürich straße",
    "犬がビーチを走っている 一只狗在海滩上奔跑 한국어",
    "собака бежит по пляжу, κύων",
    "emoji 😀🐶🎉 and symbols © ® ™ € £ ¥ ∑ √",
    "a " * 100,
    "supercalifragilisticexpialidocious " * 20,
]


def write(ckpt, model_dir: Path) -> dict[str, Any]:
    """Write tokenizer.json into `model_dir`; return the manifest's tokenizer entry."""
    out = model_dir / FILE
    tok = ckpt.tokenizer
    if ckpt.family == "clip":
        shipped = ckpt.directory / FILE
        if shipped.is_file():
            shutil.copyfile(shipped, out)
        else:
            tok.backend_tokenizer.save(str(out))
        entry = _clip_entry(tok, out)
    else:
        from tokenizers import Tokenizer

        if tok.is_fast:
            backend = Tokenizer.from_str(tok.backend_tokenizer.to_str())
        else:  # SigLIP v1's slow SentencePiece tokenizer
            from export.siglip_spm import convert

            backend = convert(tok)
        backend.no_padding()
        backend.no_truncation()
        backend.save(str(out))
        entry = _fast_entry(ckpt)
    check(ckpt, out, entry)
    return entry


def _clip_entry(tok, path: Path) -> dict[str, Any]:
    from tokenizers import Tokenizer

    ids = {
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
    }
    if None in ids.values():
        raise ExportError("the CLIP tokenizer has no bos/eos token")
    normalizer = Tokenizer.from_file(str(path)).normalizer
    lowercase = normalizer is not None and normalizer.normalize_str("AbC") == "abc"
    return {
        "kind": "clip",
        "file": FILE,
        **{k: int(v) for k, v in ids.items()},
        "lowercase": lowercase,
    }


def _fast_entry(ckpt) -> dict[str, Any]:
    tok = ckpt.tokenizer
    if tok.pad_token_id is None:
        raise ExportError(f"the tokenizer of {ckpt.source} has no pad token")
    call = ckpt.tokenizer_call
    return {
        "kind": "fast",
        "file": FILE,
        "tokenizer_class": type(tok).__name__,
        "length": int(call["max_length"]),
        "padding": call["padding"],
        "padding_side": tok.padding_side,
        "truncation_side": tok.truncation_side,
        "pad_token": str(tok.pad_token),
        "pad_token_id": int(tok.pad_token_id),
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
    }


def runtime_tokenizer(path: Path, entry: dict[str, Any], inputs: list[str], length: int):
    """The runtime's tokenizer for the written file and entry (what `tokenizer_for` builds)."""
    from clipsearch_onnx.tokenizer import ClipTokenizer, FastTokenizer, load_backend

    if entry["kind"] == "clip":
        return ClipTokenizer.from_file(
            path, entry["bos_token_id"], entry["eos_token_id"], entry["pad_token_id"], length
        )
    return FastTokenizer(
        load_backend(path),
        length=entry["length"],
        pad_id=entry["pad_token_id"],
        pad_token=entry["pad_token"],
        padding=entry["padding"],
        padding_side=entry["padding_side"],
        truncation_side=entry["truncation_side"],
        inputs=inputs,
    )


def check(ckpt, path: Path, entry: dict[str, Any]) -> None:
    """The runtime tokenizer must reproduce the checkpoint's, text by text and batched."""
    ours = runtime_tokenizer(path, entry, ckpt.text_inputs, ckpt.context_length)
    texts = samples.captions() + HARD_TEXTS
    for batch in [*([t] for t in texts), texts]:
        want = {
            k: np.asarray(v, dtype=np.int64)
            for k, v in ckpt.tokenizer(batch, **ckpt.tokenizer_call, return_tensors="np").items()
        }
        got = ours.feeds(batch)
        if sorted(got) != sorted(want):
            raise ExportError(f"the tokenizer returns {sorted(want)}, the runtime {sorted(got)}")
        for key, value in want.items():
            if got[key].shape != value.shape or not np.array_equal(got[key], value):
                raise ExportError(
                    f"the runtime tokenizer gives other {key} than transformers for "
                    f"{batch[0][:40]!r}{' (batch)' if len(batch) > 1 else ''}: "
                    f"{got[key][0][:8].tolist()}... vs {value[0][:8].tolist()}..."
                )
