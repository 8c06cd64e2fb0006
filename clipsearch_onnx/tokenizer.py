"""The text tokenizers, on the `tokenizers` library alone: the exported tokenizer.json plus the
rules the manifest records (`tokenizer_for(manifest)` picks the kind).

"clip" (`ClipTokenizer`): tokenizer.json is what transformers' `CLIPTokenizerFast` saves: its
normaliser (NFC, whitespace collapse, lowercase), CLIP's split regex, byte-level BPE. We switch off
its own post-processing, padding and truncation and apply CLIP's rules here, so the ids do not
depend on how the file happened to configure them: [bos] + tokens[: context_length - 2] + [eos],
padded with pad_id to the longest sequence of the batch.

"fast" (`FastTokenizer`, SigLIP and SigLIP 2): tokenizer.json is the checkpoint's own fast
tokenizer as transformers configured it when loading (its post-processor adds the special tokens,
e.g. no bos and an eos), applied the way transformers' fast tokenizers apply it: truncated to
`length` tokens including the special ones, padded on `padding_side` to `length` ("max_length")
or to the longest text of the batch ("longest").

Either returns the text tower's feeds: exactly the inputs the checkpoint's own tokenizer returns
(`inputs`: SigLIP v1 tokenizers give input_ids only, and its model expects no mask).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from clipsearch_onnx.errors import ModelError
from clipsearch_onnx.manifest import Manifest

TEXT_INPUTS = ("input_ids", "attention_mask")
T = TypeVar("T")


def load_backend(path: Path | str) -> Any:
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises plain Exception for missing or bad files
        raise ModelError(f"cannot load tokenizer {path}: {exc}") from exc


def _feeds(
    inputs: Sequence[str], input_ids: np.ndarray, attention_mask: np.ndarray
) -> dict[str, np.ndarray]:
    arrays = {"input_ids": input_ids, "attention_mask": attention_mask}
    return {name: arrays[name] for name in inputs}


def _from_entry(manifest: Manifest, build: Callable[[dict[str, Any]], T]) -> T:
    """`build(tokenizer entry)`, with a damaged entry reported as a ModelError."""
    try:
        return build(manifest.tokenizer)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(
            f"manifest.json in {manifest.model_dir} has an incomplete tokenizer entry "
            f"({exc!r}); re-run the export"
        ) from exc


class ClipTokenizer:
    inputs: tuple[str, ...] = TEXT_INPUTS

    def __init__(
        self, backend: object, bos_id: int, eos_id: int, pad_id: int, context_length: int = 77
    ) -> None:
        if context_length < 2:
            raise ModelError(f"context_length must be at least 2, not {context_length}")
        self._backend = backend
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.pad_id = pad_id
        self.context_length = context_length

    @classmethod
    def from_file(
        cls, path: Path | str, bos_id: int, eos_id: int, pad_id: int, context_length: int = 77
    ) -> ClipTokenizer:
        backend = load_backend(path)
        backend.no_padding()
        backend.no_truncation()
        backend.post_processor = None
        return cls(backend, bos_id, eos_id, pad_id, context_length)

    @classmethod
    def from_model(cls, manifest: Manifest) -> ClipTokenizer:
        return _from_entry(
            manifest,
            lambda spec: cls.from_file(
                manifest.verified(spec.get("file", "tokenizer.json")),
                bos_id=int(spec["bos_token_id"]),
                eos_id=int(spec["eos_token_id"]),
                pad_id=int(spec["pad_token_id"]),
                context_length=manifest.context_length,
            ),
        )

    def tokens(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens or truncation."""
        encodings = self._backend.encode_batch(list(texts), add_special_tokens=False)  # type: ignore[attr-defined]
        return [enc.ids for enc in encodings]

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask), int64 [B, L]; L = the longest row, <= context_length."""
        keep = self.context_length - 2
        rows = [[self.bos_id, *ids[:keep], self.eos_id] for ids in self.tokens(texts)]
        length = max((len(r) for r in rows), default=2)
        input_ids = np.full((len(rows), length), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(rows), length), dtype=np.int64)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = row
            attention_mask[i, : len(row)] = 1
        return input_ids, attention_mask

    def feeds(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The text tower's inputs for `texts`."""
        return _feeds(self.inputs, *self.encode(list(texts)))


class FastTokenizer:
    """A fast tokenizer's tokenizer.json with its own special tokens, truncated and padded as
    transformers' `PreTrainedTokenizerFast.__call__(padding=..., truncation=True, max_length=)`
    does."""

    def __init__(
        self,
        backend: Any,
        *,
        length: int,
        pad_id: int,
        pad_token: str,
        padding: str = "max_length",
        padding_side: str = "right",
        truncation_side: str = "right",
        inputs: Sequence[str] = TEXT_INPUTS,
    ) -> None:
        if length < 1 or padding not in ("max_length", "longest"):
            raise ModelError(f"bad tokenizer rules: length {length}, padding {padding!r}")
        if not set(inputs) <= set(TEXT_INPUTS) or "input_ids" not in inputs:
            raise ModelError(f"bad text inputs {list(inputs)}")
        self._backend = backend
        self.length = length
        self.pad_id = pad_id
        self.inputs = tuple(inputs)
        backend.enable_truncation(length, strategy="longest_first", direction=truncation_side)
        backend.enable_padding(
            direction=padding_side,
            pad_id=pad_id,
            pad_token=pad_token,
            length=length if padding == "max_length" else None,
        )

    @classmethod
    def from_model(cls, manifest: Manifest) -> FastTokenizer:
        return _from_entry(
            manifest,
            lambda spec: cls(
                load_backend(manifest.verified(spec.get("file", "tokenizer.json"))),
                length=int(spec["length"]),
                pad_id=int(spec["pad_token_id"]),
                pad_token=str(spec["pad_token"]),
                padding=str(spec.get("padding", "max_length")),
                padding_side=str(spec.get("padding_side", "right")),
                truncation_side=str(spec.get("truncation_side", "right")),
                inputs=manifest.text_inputs,
            ),
        )

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask), int64 [B, L]."""
        if not texts:
            return np.zeros((0, self.length), np.int64), np.zeros((0, self.length), np.int64)
        encodings = self._backend.encode_batch(list(texts), add_special_tokens=True)
        input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
        attention_mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return input_ids, attention_mask

    def feeds(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The text tower's inputs for `texts`."""
        return _feeds(self.inputs, *self.encode(list(texts)))


Tokenizer = ClipTokenizer | FastTokenizer


def tokenizer_for(manifest: Manifest) -> Tokenizer:
    """The runtime tokenizer the manifest describes."""
    kind = manifest.tokenizer.get("kind", "clip")
    if kind == "clip":
        return ClipTokenizer.from_model(manifest)
    if kind == "fast":
        return FastTokenizer.from_model(manifest)
    raise ModelError(
        f"manifest.json in {manifest.model_dir} asks for a {kind!r} tokenizer, which this "
        "version does not know; upgrade clipsearch or re-run the export"
    )
