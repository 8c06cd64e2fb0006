"""Clustered unit vectors standing in for a large photo collection's embeddings.

Two levels, as photo collections have (themes, then near-duplicates and bursts within a theme):
`themes` random directions, each with `clusters // themes` cluster centres scattered around it,
members scattered around their centre; cluster sizes are log-normal, so a few are large.
Queries for recall are fresh members drawn the same way (held out: never in the index).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DIM = 512
SHARD_ROWS = 100_000


class ClusterModel:
    def __init__(self, dim: int = DIM, clusters: int = 2000, themes: int = 200, seed: int = 0):
        rng = np.random.default_rng(seed)
        theme_dirs = _unit(rng.standard_normal((themes, dim)))
        parent = rng.integers(0, themes, clusters)
        self.centres = _unit(theme_dirs[parent] + 0.8 * _unit(rng.standard_normal((clusters, dim))))
        weights = rng.lognormal(0.0, 1.0, clusters)
        self.weights = weights / weights.sum()
        self.spread = 0.9  # member = centre + spread * unit noise: cosine to centre ~0.74
        self.dim = dim

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        which = rng.choice(len(self.centres), size=n, p=self.weights)
        noise = _unit(rng.standard_normal((n, self.dim), dtype=np.float32))
        return _unit(self.centres[which] + self.spread * noise)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_shards(out_dir: Path, n: int, model: ClusterModel, seed: int) -> list[Path]:
    """`n` vectors as shards of up to SHARD_ROWS rows (kept if complete already)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [out_dir / f"shard-{number:03d}" for number in range(-(-n // SHARD_ROWS))]
    if all((shard / "items.jsonl").exists() for shard in names):
        return names  # (drawing 10M vectors again only to skip them takes minutes)
    rng = np.random.default_rng(seed)
    shards = []
    for number, start in enumerate(range(0, n, SHARD_ROWS)):
        rows = min(SHARD_ROWS, n - start)
        shard = out_dir / f"shard-{number:03d}"
        vectors = model.sample(rows, rng)  # drawn even when cached, to keep the stream seeded
        shards.append(shard)
        if (shard / "items.jsonl").exists():
            continue
        shard.mkdir(exist_ok=True)
        np.save(shard / "embeddings.npy", vectors)
        with open(shard / ".items.tmp", "w", encoding="utf-8") as fh:
            for i in range(start, start + rows):
                fh.write(json.dumps({"path": f"/synthetic/{i:07d}.jpg"}) + "\n")
        (shard / ".items.tmp").rename(shard / "items.jsonl")
    return shards


def read_all(shards: list[Path]) -> np.ndarray:
    return np.concatenate([np.load(s / "embeddings.npy") for s in shards])


def row_of(path: str) -> int:
    """The row a synthetic item was generated at, from its path."""
    return int(path.rsplit("/", 1)[1].split(".")[0])
