"""Near-duplicates (issue 14): re-encoded, resized or slightly cropped copies of a picture.

Two images are near-duplicates when their stored embeddings score at least a threshold (cosine);
a group is a connected component of such pairs (union-find), so a chain of copies is one group.
`find_groups` streams over the index's vectors a block of rows at a time, asks the vector index
for each block's neighbours above the threshold (a range search: never an N x N matrix), and
re-scores every candidate pair with the stored float32 embeddings, so the scores reported are
exact on any layout (IVF's 8-bit codes only propose candidates, fetched `SLACK` below the
threshold; its range search reads the `nprobe` best lists, like a search).

`collapse` gives `search --collapse` its one result per group.

DEFAULT_THRESHOLD, measured by bench/duplicates.py (README, "Duplicates"): copies re-encoded as
JPEG q=60 or resized to half score >= 0.990 with their original on the sensitive tiny checkpoint
and >= 0.995 on the demo model; distinct pictures <= 0.907 and <= 0.967. 5%-cropped copies score
0.74 / 0.91: not separable on these two small models. Real CLIP models are commonly used at
0.95-0.97 for near-duplicates, crops included; --threshold sets it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clipsearch_onnx.segments import member

if TYPE_CHECKING:
    from clipsearch_onnx.catalog import Catalog
    from clipsearch_onnx.filters import Filter
    from clipsearch_onnx.search import Result, Searcher

DEFAULT_THRESHOLD = 0.98
BLOCK = 1024  # rows whose neighbours are asked for at once
SLACK = 0.02  # candidates from an approximate layout are fetched this far below the threshold
NPROBE = 16  # lists an IVF range search reads per image: a near-duplicate sits in the nearest few
ALL_PAIRS_UPTO = 32  # groups up to this size list every pair's score; larger ones their links

Embeddings = Callable[[int], "np.ndarray | None"]  # shard id -> its memory-mapped embeddings


@dataclass(frozen=True)
class Group:
    """Near-duplicates: catalog ids and paths (sorted by path), and pair scores as (index in
    paths, index in paths, cosine), best first."""

    ids: list[int]
    paths: list[str]
    pairs: list[tuple[int, int, float]]

    def to_json(self) -> dict[str, Any]:
        return {
            "size": len(self.paths),
            "paths": self.paths,
            "pairs": [
                {"a": self.paths[a], "b": self.paths[b], "score": round(s, 6)}
                for a, b, s in self.pairs
            ],
        }


def stored_vectors(
    catalog: Catalog, embeddings: Embeddings, ids: list[int]
) -> dict[int, np.ndarray]:
    """The stored float32 embedding of each catalog id that has one."""
    found: dict[int, np.ndarray] = {}
    for start in range(0, len(ids), 500):
        part = [int(i) for i in ids[start : start + 500]]
        marks = ",".join("?" * len(part))
        rows = catalog.conn.execute(
            f"SELECT id, shard, row FROM images WHERE id IN ({marks})", part
        ).fetchall()
        by_shard: dict[int, list[tuple[int, int]]] = {}
        for i, shard, row in rows:
            by_shard.setdefault(shard, []).append((row, i))
        for shard, members in by_shard.items():
            emb = embeddings(shard)
            if emb is None or emb.ndim != 2:
                continue
            members = sorted(m for m in members if m[0] < len(emb))
            got = np.asarray(emb[[r for r, _ in members]], dtype=np.float32)
            found.update((i, v) for (_, i), v in zip(members, got, strict=True))
    return found


def pairs_above(
    vectors: Any,
    catalog: Catalog,
    embeddings: Embeddings,
    queries: np.ndarray,
    query_ids: np.ndarray,
    threshold: float,
    nprobe: int = NPROBE,
    allowed: np.ndarray | None = None,
) -> Iterator[tuple[int, int, float]]:
    """(query id, other id, exact cosine) for every other catalogued image scoring at least
    `threshold` with a query row (its stored embedding, catalog id `query_ids[i]`); on IVF,
    among the `nprobe` lists nearest each query (at most the index's own nprobe); with
    `allowed` (sorted catalog ids), only those."""
    if not hasattr(vectors, "range_search"):
        from clipsearch_onnx.errors import IndexError_

        raise IndexError_(
            f"the index in {vectors.index_dir} has an older format without range search; "
            "`clipsearch index` (or `clipsearch reindex`) updates it"
        )
    exact = vectors.meta.get("type", "flat") == "flat"
    nprobe = min(nprobe, int(vectors.meta.get("nprobe", 1)))
    radius = threshold - (1e-6 if exact else SLACK)
    lims, _, ids = vectors.range_search(queries, radius, nprobe=nprobe)
    if allowed is not None:
        ids = np.where(member(ids, allowed), ids, -1)
    others = np.unique(ids[np.isin(ids, query_ids, invert=True) & (ids >= 0)]).tolist()
    known = stored_vectors(catalog, embeddings, others)
    known.update((int(i), q) for i, q in zip(query_ids, queries, strict=True))
    for q, qid in enumerate(query_ids.tolist()):
        for other in ids[lims[q] : lims[q + 1]].tolist():
            vector = known.get(other)
            if other == qid or other < 0 or vector is None:
                continue
            score = float(vector @ queries[q])
            if score >= threshold:
                yield qid, other, score


class _Sets:
    """Union-find over catalog ids."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self.parent
        root = parent.setdefault(x, x)
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def find_groups(
    index_dir: Path,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
    nprobe: int = NPROBE,
    where: Filter | None = None,
) -> list[Group]:
    """Every group of near-duplicates in the index at `index_dir`, sorted by first path; with
    `where`, among the images it allows. `total(n)` is told the images to go through,
    `progress(n)` how many more were; `nprobe`: see `pairs_above`."""
    from clipsearch_onnx.catalog import Catalog
    from clipsearch_onnx.index import VectorIndex
    from clipsearch_onnx.layout import SHARDS, hold_current
    from clipsearch_onnx.shards import load_embeddings

    hold = hold_current(Path(index_dir))
    try:
        vectors = VectorIndex.open(hold.path)
        catalog = Catalog.open(hold.path, readonly=True)
        try:
            names = catalog.shard_names()
            cache: dict[int, np.ndarray | None] = {}

            def embeddings(shard: int) -> np.ndarray | None:
                if shard not in cache:
                    try:
                        cache[shard] = load_embeddings(hold.path / SHARDS / names[shard])
                    except (KeyError, OSError, ValueError):
                        cache[shard] = None
                return cache[shard]

            sets, scores = _Sets(), {}
            shards = catalog.live_counts()
            allowed = None
            if where is not None and where.narrows:
                from clipsearch_onnx.filters import select

                allowed = np.sort(select(catalog, where).ids)
            if total is not None:
                total(len(allowed) if allowed is not None else sum(c[3] for c in shards))
            for shard, _name, rows, _live in shards:
                emb = embeddings(shard)
                ids = catalog.shard_ids(shard, rows)
                if emb is None or emb.ndim != 2:
                    continue
                for start in range(0, min(rows, len(emb)), BLOCK):
                    block_ids = ids[start : start + BLOCK]
                    live = block_ids >= 0
                    if allowed is not None:
                        live &= member(block_ids, allowed)
                    queries = np.asarray(emb[start : start + len(block_ids)], dtype=np.float32)
                    found = pairs_above(
                        vectors,
                        catalog,
                        embeddings,
                        queries[live],
                        block_ids[live],
                        threshold,
                        nprobe,
                        allowed,
                    )
                    for a, b, score in found:
                        sets.union(a, b)
                        scores[(min(a, b), max(a, b))] = score
                    if progress is not None:
                        progress(int(live.sum()))
            return _groups(catalog, embeddings, sets, scores)
        finally:
            catalog.close()
            vectors.close()
    finally:
        hold.release()


def _groups(
    catalog: Catalog,
    embeddings: Embeddings,
    sets: _Sets,
    scores: dict[tuple[int, int], float],
) -> list[Group]:
    members: dict[int, list[int]] = {}
    for i in list(sets.parent):
        members.setdefault(sets.find(i), []).append(i)
    groups = []
    for ids in members.values():
        items = catalog.by_ids(ids)
        ids = sorted((i for i in ids if i in items), key=lambda i: items[i].path)
        if len(ids) < 2:
            continue
        at = {i: n for n, i in enumerate(ids)}
        if len(ids) <= ALL_PAIRS_UPTO:
            got = stored_vectors(catalog, embeddings, ids)
            if len(got) == len(ids):
                sims = np.stack([got[i] for i in ids]) @ np.stack([got[i] for i in ids]).T
                pairs = [
                    (a, b, float(sims[a, b]))
                    for a in range(len(ids))
                    for b in range(a + 1, len(ids))
                ]
            else:
                pairs = []
        else:
            pairs = []
        if not pairs:
            pairs = [
                (min(at[a], at[b]), max(at[a], at[b]), s)
                for (a, b), s in scores.items()
                if a in at and b in at
            ]
        pairs.sort(key=lambda p: -p[2])
        groups.append(Group(ids, [items[i].path for i in ids], pairs))
    return sorted(groups, key=lambda g: g.paths[0])


def collapse(searcher: Searcher, results: list[Result], k: int, f: Filter) -> list[Result]:
    """At most k results, one per group of near-duplicates (the best-scoring member, the first
    met), each with `copies`: how many images near-duplicate of it (and passing the filter)
    it hides, among the results and in the whole index."""
    from clipsearch_onnx import filters

    catalog, embeddings = searcher.catalog, searcher._shard_embeddings
    vecs = stored_vectors(catalog, embeddings, [r.id for r in results])
    shown: list[Result] = []
    hidden: dict[int, set[int]] = {}
    for r in results:
        v = vecs.get(r.id)
        owner = None
        if v is not None:
            owner = next(
                (s for s in shown if s.id in vecs and float(vecs[s.id] @ v) >= DEFAULT_THRESHOLD),
                None,
            )
        if owner is not None:
            hidden[owner.id].add(r.id)
        elif len(shown) < k:
            shown.append(r)
            hidden[r.id] = set()
    with_vectors = [s.id for s in shown if s.id in vecs]
    if with_vectors:
        queries = np.stack([vecs[i] for i in with_vectors])
        taken = {i for ids in hidden.values() for i in ids} | {s.id for s in shown}
        near = [
            (a, b)
            for a, b, _ in pairs_above(
                searcher.vectors,
                catalog,
                embeddings,
                queries,
                np.array(with_vectors, dtype=np.int64),
                DEFAULT_THRESHOLD,
            )
            if b not in taken
        ]
        ok = filters.allowed(catalog, f, [b for _, b in near]) if f.narrows else None
        for a, b in near:
            if b not in taken and (ok is None or b in ok):
                hidden[a].add(b)
                taken.add(b)
    return [replace(s, copies=len(hidden[s.id])) for s in shown]
