"""CLIP towers: text and images in, L2-normalised float32 embeddings out.

Each tower is loaded on first use, so a text query never pays for loading the vision tower and
vice versa. Which runtime runs a tower (ONNX Runtime, OpenVINO) is a backend's business
(`clipsearch_onnx.backends`); the encoder asks for one per tower.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clipsearch_onnx import backends
from clipsearch_onnx.errors import ModelError
from clipsearch_onnx.manifest import Manifest
from clipsearch_onnx.tokenizer import Tokenizer, tokenizer_for

if TYPE_CHECKING:
    from clipsearch_onnx.preprocess import Preprocessor


def physical_cores() -> int:
    """Physical cores of this machine (hyper-threads add little to matrix-heavy inference)."""
    try:
        cores = set()
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            phys = core = None
            for line in fh:
                if line.startswith("physical id"):
                    phys = line.split(":")[1].strip()
                elif line.startswith("core id"):
                    core = line.split(":")[1].strip()
                elif not line.strip() and core is not None:
                    cores.add((phys, core))
                    phys = core = None
        if cores:
            return len(cores)
    except OSError:
        pass
    return os.cpu_count() or 1


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class Encoder:
    """Embeds texts and images with one exported model at one precision."""

    def __init__(
        self,
        manifest: Manifest,
        precision: str | None = None,
        threads: int | None = None,
        *,
        text_threads: int | None = None,
        spinning: bool = False,
        backend: str | None = None,
        quick_start: bool = False,
    ):
        precision = precision or manifest.default_precision
        if precision not in manifest.precisions:
            raise ModelError(
                f"model {manifest.model_dir} has no {precision} variant "
                f"(it has: {', '.join(sorted(manifest.precisions))})"
            )
        self.manifest = manifest
        self.precision = precision
        self.threads = threads or physical_cores()
        # The searcher embeds one caption at a time, where a second thread costs more in
        # synchronisation than it saves (BENCHMARKS.md, "levers"); batches want all the cores.
        self.text_threads = text_threads or self.threads
        # ONNX Runtime's threads busy-wait between operators by default; that steals the cores
        # decode workers and other processes need (measured in BENCHMARKS.md, "levers").
        self.spinning = spinning
        # "auto" (None) lets `backends.choose` pick per tower; a name forces that runtime.
        self.backend = backends.check_name(backend or backends.AUTO)
        # A one-shot query: load the text tower fast rather than run it fast (backends.load).
        self.quick_start = quick_start
        self.dim = manifest.embedding_dim
        self._sessions: dict[str, backends.Tower] = {}
        self._backends: dict[str, str] = {}
        self._tokenizer: Tokenizer | None = None
        self._preprocess: Preprocessor | None = None

    def session(self, tower: str) -> backends.Tower:
        """The loaded tower ('vision' or 'text'), loading it on first use."""
        if tower not in self._sessions:
            name = self.backend_of(tower)
            path = self.manifest.tower_path(tower, self.precision, name)
            threads = self.text_threads if tower == "text" else self.threads
            self._sessions[tower] = backends.load(
                name,
                path,
                threads=threads,
                spinning=self.spinning,
                quick_start=self.quick_start and tower == "text",
            )
        return self._sessions[tower]

    def backend_of(self, tower: str) -> str:
        """The backend that runs (or will run) `tower`: the one asked for, else `choose`'s."""
        if tower not in self._backends:
            path = Path(self.manifest.tower_name(tower, self.precision))
            self._backends[tower] = backends.choose(
                self.backend, tower, path, self.manifest.gated_backends
            )
        return self._backends[tower]

    @property
    def preprocess(self) -> Preprocessor:
        if self._preprocess is None:  # Pillow is imported only by what handles images
            from clipsearch_onnx.preprocess import Preprocessor

            self._preprocess = Preprocessor.from_manifest(self.manifest)
        return self._preprocess

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            self._tokenizer = tokenizer_for(self.manifest)
        return self._tokenizer

    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        if self._text_scales_per_batch():
            # Dynamic int8 quantises each activation tensor with one scale for the whole batch
            # (padding included): a text's vector would depend on the texts beside it (cosine
            # down to 0.9983 alone against in a batch of 600). A search embeds one text at a
            # time; `embed` and `eval` give each text that same vector.
            batch_size = 1
        out = []
        sess = self.session("text")
        for start in range(0, len(texts), batch_size):
            out.append(sess.run(self.tokenizer.feeds(texts[start : start + batch_size])))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return normalise(np.concatenate(out))

    def _text_scales_per_batch(self) -> bool:
        towers = (self.manifest.raw.get("quantization") or {}).get("towers") or {}
        mode = (towers.get("text") or {}).get("mode", "dynamic")
        return self.precision == "int8" and mode == "dynamic"

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Embeds a preprocessed batch float32 [B,3,S,S]."""
        if len(pixels) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return normalise(self.session("vision").run({"pixel_values": pixels}))
