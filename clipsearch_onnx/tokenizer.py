"""CLIP's text tokenizer on the `tokenizers` library: the exported tokenizer.json plus CLIP's rules.

tokenizer.json is what transformers' `CLIPTokenizerFast` saves: its normaliser (NFC, whitespace
collapse, lowercase), CLIP's split regex, byte-level BPE. We switch off its own post-processing,
padding and truncation and apply CLIP's rules here, so the ids do not depend on how the file
happened to configure them: [bos] + tokens[: context_length - 2] + [eos], padded with pad_id to
the longest sequence of the batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clipsearch_onnx.errors import ModelError
from clipsearch_onnx.manifest import Manifest


class ClipTokenizer:
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
        from tokenizers import Tokenizer

        try:
            backend = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises plain Exception for missing or bad files
            raise ModelError(f"cannot load tokenizer {path}: {exc}") from exc
        backend.no_padding()
        backend.no_truncation()
        backend.post_processor = None
        return cls(backend, bos_id, eos_id, pad_id, context_length)

    @classmethod
    def from_model(cls, manifest: Manifest) -> ClipTokenizer:
        spec = manifest.tokenizer
        try:
            return cls.from_file(
                manifest.verified(spec.get("file", "tokenizer.json")),
                bos_id=int(spec["bos_token_id"]),
                eos_id=int(spec["eos_token_id"]),
                pad_id=int(spec["pad_token_id"]),
                context_length=manifest.context_length,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"manifest.json in {manifest.model_dir} has an incomplete tokenizer entry "
                f"({exc!r}); re-run the export"
            ) from exc

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
