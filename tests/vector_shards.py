"""Seeded shards of clustered unit vectors as a PartSource, and brute-force ground truth (kept
free of pytest: subprocesses of the tests import it)."""

from __future__ import annotations

import numpy as np

from clipsearch_onnx.index import Part

DIM = 32


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class Shards:
    """An in-memory PartSource: shards of clustered unit vectors with catalog ids."""

    def __init__(self, seed: int = 0, dim: int = DIM):
        self.rng = np.random.default_rng(seed)
        self.centres = self.rng.standard_normal((24, dim))
        self.dim = dim
        self.shards: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.next_id = 1
        self.made = 0

    def draw(self, n: int) -> np.ndarray:
        picks = self.centres[self.rng.integers(0, len(self.centres), n)]
        return unit(picks + 0.45 * self.rng.standard_normal((n, self.dim)))

    def add(self, n: int) -> str:
        key = f"shard-{self.made:04d}"  # never reused, as shard folder names
        self.made += 1
        ids = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        self.shards[key] = (ids, self.draw(n))
        self.next_id += n
        return key

    def counts(self) -> list[tuple[str, int]]:
        return [(k, int((ids >= 0).sum())) for k, (ids, _) in self.shards.items()]

    def parts(self, keys=None):
        for key, (ids, vectors) in self.shards.items():
            if keys is None or key in keys:
                yield Part(key, ids, vectors)

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        ids = np.concatenate([i[i >= 0] for i, _ in self.shards.values()])
        vectors = np.concatenate([v[i >= 0] for i, v in self.shards.values()])
        return ids, vectors


def truth(shards: Shards, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    ids, vectors = shards.live()
    sims = queries @ vectors.T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, top, axis=1), ids[top]


def recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want, strict=True)]))
