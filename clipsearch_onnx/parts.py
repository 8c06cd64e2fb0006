"""The catalog's embeddings as the vector index takes them: one part per shard, streamed.

A part is a shard's embeddings (memory-mapped) with the catalog id of each row, -1 for rows whose
file was replaced or removed since. A shard only ever loses live rows (a moved file keeps its id,
shard and row), so (shard name, live rows) identifies a part's content.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path

import numpy as np

from clipsearch_onnx import shards
from clipsearch_onnx.catalog import Catalog
from clipsearch_onnx.errors import IndexCorrupt
from clipsearch_onnx.index import Part
from clipsearch_onnx.layout import SHARDS


class CatalogParts:
    """The parts of a build's catalog (a `PartSource` for `index.publish`)."""

    def __init__(self, catalog: Catalog, build: Path, dim: int):
        self.catalog = catalog
        self.build = Path(build)
        self.dim = dim
        self._live: list[tuple[int, str, int, int]] | None = None

    def _live_counts(self) -> list[tuple[int, str, int, int]]:
        """The catalog's live rows per shard, counted once per publication (a scan of every
        row: ~1 s at 10M) since the catalog does not change while it publishes."""
        if self._live is None:
            self._live = self.catalog.live_counts()
        return self._live

    def counts(self) -> list[tuple[str, int]]:
        """(key, live rows) of every shard with live rows, oldest first. Each shard's file size
        is checked (one stat): publishing reads only shards it has not seen, and a truncated one
        must not go unnoticed."""
        counts = []
        for _, name, rows, live in self._live_counts():
            path = self.build / SHARDS / name
            try:
                size = (path / shards.EMBEDDINGS).stat().st_size
            except OSError as exc:
                raise _damaged(path, exc.strerror or str(exc)) from exc
            header = size - rows * self.dim * 4  # numpy pads its header to a multiple of 64
            if header < 64 or header % 64 or header > 1 << 16:
                raise _damaged(path, f"{size} bytes for {rows} rows of {self.dim} float32")
            counts.append((name, live))
        return counts

    def parts(self, keys: Collection[str] | None = None) -> Iterator[Part]:
        """Those parts (all when None), in `counts()` order; a fresh pass on every call."""
        for shard_id, name, rows, _live in self._live_counts():
            if keys is not None and name not in keys:
                continue
            path = self.build / SHARDS / name
            try:
                vectors = shards.load_embeddings(path)
            except (OSError, ValueError) as exc:
                raise _damaged(path, str(exc)) from exc
            if vectors.shape != (rows, self.dim) or vectors.dtype != np.float32:
                raise _damaged(
                    path, f"{vectors.dtype} {list(vectors.shape)}, not [{rows}, {self.dim}]"
                )
            yield Part(name, self.catalog.shard_ids(shard_id, rows), vectors)
            del vectors  # the caller holds the only reference: unmapped once it lets go


def _damaged(path: Path, what: str) -> IndexCorrupt:
    return IndexCorrupt(f"embedding shard {path} is damaged ({what}); rebuild with --rebuild")
