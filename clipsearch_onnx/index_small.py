"""Searching a small flat index with numpy alone, so that a one-shot query on a personal
collection never imports FAISS (~50-60 ms of a ~0.5 s search, speed's measurement).

A flat layout's segment is one inverted list whose codes are the float32 vectors themselves,
followed by their int64 catalog ids (see `segments`): both are read here as memory-mapped arrays.
The scores are the same inner products FAISS computes, so results equal the FAISS path's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from clipsearch_onnx.generations import VECTORS
from clipsearch_onnx.segments import LISTS, member, read_sizes

SMALL_BYTES = 64 << 20  # flat layouts up to this many bytes of vectors (32k x 512-d) use numpy
BLOCK = 8192  # vectors scored at a time


def fits(meta: dict[str, Any]) -> bool:
    layout = meta.get("layout") or {}
    return layout.get("kind") == "flat" and meta["count"] * meta["dim"] * 4 <= SMALL_BYTES


class SmallFlatIndex:
    """The `VectorIndex` interface over numpy views of a flat layout's segments."""

    nlist = nprobe = 1

    def __init__(self, index_dir: Path, meta: dict[str, Any]):
        self.index_dir, self.meta = index_dir, meta
        dim = int(meta["dim"])
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
        for seg in meta["segments"]:
            folder = index_dir / VECTORS / seg["name"]
            n = int(read_sizes(folder).sum())
            data = np.memmap(folder / LISTS, dtype=np.uint8, mode="r")
            vectors = data[: n * dim * 4].view(np.float32).reshape(n, dim)
            ids = data[n * dim * 4 : n * (dim * 4 + 8)].view(np.int64)
            dead = None
            if seg["dead"]:
                dead = np.load(index_dir / VECTORS / seg["dead"], allow_pickle=False)
            self._parts.append((vectors, ids, dead))

    @property
    def count(self) -> int:
        return int(self.meta["count"])

    def close(self) -> None:
        self._parts = []

    def _scores(self, queries: np.ndarray, allowed: np.ndarray | None):
        """(scores [n, m], ids [m]) of every live (and allowed) vector, segment by segment."""
        for vectors, ids, dead in self._parts:
            for start in range(0, len(ids), BLOCK):
                block_ids = np.asarray(ids[start : start + BLOCK])
                keep = np.ones(len(block_ids), bool)
                if dead is not None:
                    keep &= ~member(block_ids, dead)
                if allowed is not None:
                    keep &= member(block_ids, allowed)
                block = vectors[start : start + BLOCK]
                if keep.all():
                    yield queries @ block.T, block_ids
                elif keep.any():
                    yield queries @ np.asarray(block)[keep].T, block_ids[keep]

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        nprobe: int | None = None,
        allowed_ids: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(int(k), max(1, self.count)))
        best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
        best_i = np.full((len(queries), k), -1, dtype=np.int64)
        allowed = None if allowed_ids is None else np.unique(np.asarray(allowed_ids, np.int64))
        for scores, ids in self._scores(queries, allowed):
            all_s = np.concatenate([best_s, scores.astype(np.float32)], axis=1)
            all_i = np.concatenate([best_i, np.broadcast_to(ids, scores.shape)], axis=1)
            top = np.argsort(-all_s, axis=1, kind="stable")[:, :k]
            best_s = np.take_along_axis(all_s, top, axis=1)
            best_i = np.take_along_axis(all_i, top, axis=1)
        best_i[~np.isfinite(best_s)] = -1
        return best_s, best_i

    def range_search(
        self, queries: np.ndarray, threshold: float, *, nprobe: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        found: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in queries]
        for scores, ids in self._scores(queries, None):
            for q, row in enumerate(scores):
                hit = row > threshold  # as FAISS's inner-product range search
                found[q].append((row[hit].astype(np.float32), ids[hit]))
        sizes = [sum(len(s) for s, _ in rows) for rows in found]
        lims = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        scores = np.concatenate([s for rows in found for s, _ in rows] or [np.zeros(0, np.float32)])
        ids = np.concatenate([i for rows in found for _, i in rows] or [np.zeros(0, np.int64)])
        return lims, scores.astype(np.float32), ids.astype(np.int64)
