"""The coarse quantiser of an IVF index: how many lists, their centroids, and which list each
vector goes to.

Centroids are trained by two-level spherical k-means (as faiss `contrib.clustering.
two_level_clustering`): about sqrt(nlist) top-level centroids first, then each top-level group of
the training sample is split into its share of the lists. Vectors are assigned the same way: the
best top-level group, then the best list inside it. Both cost about 2 * sqrt(nlist) inner
products per vector instead of nlist, which is what makes 16k lists and 10M vectors affordable on
two cores (a flat assignment of 10M vectors to 16k lists is ~2e14 flops: hours here). A query
ranks ALL lists exactly (`rank`), so a vector near a group border is still found, one list away.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

MIN_POINTS_PER_LIST = 39  # faiss warns below this many training points per centroid
TRAIN_POINTS_PER_LIST = 32  # training sample per list (autofaiss: 30 to 256)
MAX_LISTS = 1 << 16
BLOCK = 16384  # rows per block in the dense products below (BLOCK x 256 floats)


def lists_for(count: int) -> int:
    """nlist for `count` vectors: 4 sqrt(N) rounded to a power of two (autofaiss's heuristic and
    faiss's guidelines: 4096 at 1M, 16384 at 10M), with enough vectors per list to train on."""
    if count < 2 * MIN_POINTS_PER_LIST:
        return 1
    want = 2 ** round(math.log2(4 * math.sqrt(count)))
    cap = 2 ** int(math.log2(count // MIN_POINTS_PER_LIST))
    return int(max(1, min(want, cap, MAX_LISTS)))


def tier(nlist: int) -> int:
    """The layout's tier: log2 of its list count (recorded in index.json)."""
    return int(round(math.log2(max(1, nlist))))


def sample_size(nlist: int, count: int) -> int:
    return int(min(count, max(TRAIN_POINTS_PER_LIST * nlist, 4096)))


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass
class Coarse:
    """Fine centroids grouped by top-level centroid: group g owns lists bounds[g]:bounds[g+1]."""

    centroids: np.ndarray  # float32 [nlist, D], unit rows
    top: np.ndarray  # float32 [groups, D]
    bounds: np.ndarray  # int64 [groups + 1]

    @property
    def nlist(self) -> int:
        return len(self.centroids)

    def assign(self, x: np.ndarray) -> np.ndarray:
        """The list of each row of `x` (int64 [n]). Runs faiss's BLAS on the calling thread's
        OpenMP setting: callers encode batches in parallel, one thread each (small products on
        two threads of a busy machine wait on each other more than they compute)."""
        out = np.zeros(len(x), dtype=np.int64)
        if self.nlist == 1:
            return out
        x = np.ascontiguousarray(x, dtype=np.float32)
        group = _nearest(x, self.top)
        order = np.argsort(group, kind="stable")
        edges = np.searchsorted(group[order], np.arange(len(self.top) + 1))
        for g in np.flatnonzero(np.diff(edges)):
            rows = order[edges[g] : edges[g + 1]]
            lo, hi = int(self.bounds[g]), int(self.bounds[g + 1])
            out[rows] = lo + _nearest(x[rows], self.centroids[lo:hi])
        return out

    def rank(
        self, queries: np.ndarray, nprobe: int, among: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `nprobe` best lists of each query (of lists `among`, default all), best first:
        (lists int64 [n, nprobe], scores float32); -1 padded when there are fewer."""
        import faiss

        if among is not None and len(among) == self.nlist:
            among = None
        pool = self.centroids if among is None else self.centroids[among]
        width = max(1, min(nprobe, len(pool)))
        scores, lists = faiss.knn(queries, pool, width, metric=faiss.METRIC_INNER_PRODUCT)
        if among is not None:
            lists = np.where(lists >= 0, among[np.clip(lists, 0, None)], -1)
        return lists.astype(np.int64), scores.astype(np.float32)


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    import faiss

    _, best = faiss.knn(x, centroids, 1, metric=faiss.METRIC_INNER_PRODUCT)
    return best[:, 0]


def _kmeans(x: np.ndarray, k: int, niter: int, seed: int, threads: int = 0) -> np.ndarray:
    """Spherical k-means centroids; `threads`: OpenMP threads (0: faiss's default)."""
    import faiss

    if k >= len(x):
        return _unit(np.array(x[:k], dtype=np.float32))
    km = faiss.Kmeans(
        x.shape[1],
        k,
        niter=niter,
        spherical=True,
        seed=seed,
        max_points_per_centroid=256,
        min_points_per_centroid=1,
    )
    before = faiss.omp_get_max_threads()
    if threads:
        faiss.omp_set_num_threads(threads)  # per calling thread
    try:
        km.train(np.ascontiguousarray(x, dtype=np.float32))
    finally:
        faiss.omp_set_num_threads(before)
    return _unit(np.asarray(km.centroids, dtype=np.float32))


def _shares(counts: np.ndarray, nlist: int) -> np.ndarray:
    """Lists per group, proportional to its training points, at least one per non-empty group,
    never more than its points, summing to nlist."""
    share = counts / counts.sum() * nlist
    out = np.where(counts > 0, np.maximum(1, np.floor(share)), 0).astype(np.int64)
    out = np.minimum(out, counts)
    while out.sum() < nlist:
        room = np.where(out < counts, share - out, -np.inf)
        out[int(np.argmax(room))] += 1
    while out.sum() > nlist:
        out[int(np.argmax(out))] -= 1
    return out


def train(sample: np.ndarray, nlist: int, seed: int = 1234) -> Coarse:
    """Centroids for `nlist` lists from `sample` (float32 [S, D], S >= nlist; may be a memmap:
    it is read in blocks and one group at a time)."""
    dim = sample.shape[1]
    if nlist == 1:
        zero = np.zeros((1, dim), np.float32)
        return Coarse(zero, zero, np.array([0, 1], dtype=np.int64))
    groups = max(1, min(round(math.sqrt(nlist)), nlist))
    rng = np.random.default_rng(seed)
    head = np.sort(rng.choice(len(sample), size=min(len(sample), 256 * groups), replace=False))
    top = _kmeans(sample[head], groups, 20, seed)
    group = np.concatenate(
        [_nearest(np.asarray(sample[s : s + BLOCK]), top) for s in range(0, len(sample), BLOCK)]
    )
    counts = np.bincount(group, minlength=groups)
    shares = _shares(counts, nlist)
    order = np.argsort(group, kind="stable")
    edges = np.concatenate([[0], np.cumsum(counts)])

    def split(g: int) -> np.ndarray:
        rows = np.sort(order[edges[g] : edges[g + 1]])
        return _kmeans(sample[rows], int(shares[g]), 10, seed + 1 + g, threads=1)

    # The groups are independent small problems: one per worker thread, one OpenMP thread each
    # (faiss releases the GIL).
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
        parts = list(pool.map(split, [g for g in range(groups) if shares[g] > 0]))
    keep = shares > 0
    bounds = np.concatenate([[0], np.cumsum(shares[keep])]).astype(np.int64)
    return Coarse(np.concatenate(parts), top[keep], bounds)
