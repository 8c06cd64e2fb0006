"""Near-duplicates (issue 14): re-encoded, resized or slightly cropped copies of a picture.

Two images are near-duplicates when their stored embeddings score at least a threshold (cosine);
a group is a connected component of such pairs (union-find), so a chain of copies is one group.
`find_groups` streams over the index's vectors a block of rows at a time, asks the vector index
for each block's neighbours above the threshold (a range search: never an N x N matrix), and
re-scores every candidate pair with the stored float32 embeddings, so the scores reported are
exact on any layout (IVF's 8-bit codes only propose candidates, fetched `SLACK` below the
threshold; its range search reads the `nprobe` best lists, like a search).

Cropped copies move an embedding further than re-encoding does (on the small models measured, as
far as a distinct picture), so a second rule links a pair whose perceptual fingerprints
(clipsearch_onnx/fingerprint.py, stored at index time) differ in at most FINGERPRINT_BITS bits
and whose embeddings still score at least CROP_COSINE. Those pairs are found by comparing every
pair of stored fingerprints (`fingerprint.candidate_pairs`, a FAISS binary range search, never an
N x N matrix; all of them, as `collapse` finds them), and scored
from the stored embeddings; images indexed before fingerprints existed have none (NULL) and are
linked by the first rule only.

`collapse` gives `search --collapse` its one result per group, by the same two rules.

DEFAULT_THRESHOLD, measured by bench/duplicates.py (README, "Duplicates"): copies re-encoded as
JPEG q=60 or resized to half score >= 0.990 with their original on the sensitive tiny checkpoint
and >= 0.998 on the demo model; distinct pictures <= 0.911 and <= 0.986 (one pair of demo scenes,
a white square and a white circle). 5%-cropped copies score from 0.53 / 0.79 (crops off one side,
all sides, at random, off one side then halved): not separable by the embedding on these two
small models. Real CLIP models are commonly used at
0.95-0.97 for near-duplicates, crops included; --threshold sets it.

FINGERPRINT_BITS and CROP_COSINE, measured by the same bench on the tests' natural-ish pictures
(sensitive checkpoint): a copy differs from its original in <= 9 bits (13 for 5% off two sides,
in an earlier run) and scores >= 0.533 with it; distinct pictures differ in >= 17 bits (none
within 16), so the cosine bar is a guard against fingerprint collisions of unrelated pictures,
set below the lowest copy. On the demo's 96-pixel flat scenes fingerprints do not separate
(distinct scenes of one layout: 3 bits apart, cosine up to 0.93 on the demo model): README,
Duplicates; `fingerprint_bits=0` groups by the embeddings alone.
"""

from __future__ import annotations

import weakref
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
FINGERPRINT_BITS = 14  # at most this many fingerprint bits apart ...
CROP_COSINE = 0.5  # ... and at least this cosine: near-duplicates too
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


def fingerprints(
    catalog: Catalog, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(catalog ids, fingerprints), int64, of every image that has one (with `allowed`: among
    those); 16 bytes an image."""
    ids, prints = [], []
    cur = catalog.conn.execute("SELECT id, fingerprint FROM images WHERE fingerprint IS NOT NULL")
    while chunk := cur.fetchmany(65536):
        at = np.array(chunk, dtype=np.int64)
        if allowed is not None:
            at = at[member(at[:, 0], allowed)]
        ids.append(at[:, 0])
        prints.append(at[:, 1])
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(ids), np.concatenate(prints)


def fingerprint_pairs(
    catalog: Catalog,
    embeddings: Embeddings,
    threshold: float,
    allowed: np.ndarray | None = None,
    bits: int = FINGERPRINT_BITS,
) -> Iterator[tuple[int, int, float]]:
    """(id, id, exact cosine) of every pair whose fingerprints differ in at most `bits` bits
    and whose stored embeddings score at least CROP_COSINE (or `threshold`, if lower)."""
    from clipsearch_onnx.fingerprint import candidate_pairs

    bar = min(CROP_COSINE, threshold)
    ids, prints = fingerprints(catalog, allowed)
    for a, b, _bits in candidate_pairs(ids, prints, bits):
        for start in range(0, len(a), 4096):
            pa, pb = a[start : start + 4096].tolist(), b[start : start + 4096].tolist()
            known = stored_vectors(catalog, embeddings, sorted(set(pa) | set(pb)))
            for x, y in zip(pa, pb, strict=True):
                if x in known and y in known:
                    score = float(known[x] @ known[y])
                    if score >= bar:
                        yield x, y, score


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
    fingerprint_bits: int = FINGERPRINT_BITS,
) -> list[Group]:
    """Every group of near-duplicates in the index at `index_dir`, sorted by first path; with
    `where`, among the images it allows. `total(n)` is told the images to go through,
    `progress(n)` how many more were; `nprobe`: see `pairs_above`; `fingerprint_bits`: see
    `fingerprint_pairs` (0: the embeddings alone)."""
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
            if fingerprint_bits > 0:
                found = fingerprint_pairs(catalog, embeddings, threshold, allowed, fingerprint_bits)
                for a, b, score in found:
                    sets.union(a, b)
                    scores[(a, b)] = score
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
    prints = {i: item.fingerprint for i, item in catalog.by_ids([r.id for r in results]).items()}

    def near(a: int, b: int) -> bool:
        score = float(vecs[a] @ vecs[b])
        return score >= DEFAULT_THRESHOLD or (score >= CROP_COSINE and _close(prints, a, b))

    shown: list[Result] = []
    hidden: dict[int, set[int]] = {}
    for r in results:
        owner = None
        if r.id in vecs:
            owner = next((s for s in shown if s.id in vecs and near(s.id, r.id)), None)
        if owner is not None:
            hidden[owner.id].add(r.id)
        elif len(shown) < k:
            shown.append(r)
            hidden[r.id] = set()
    with_vectors = [s.id for s in shown if s.id in vecs]
    if with_vectors:
        queries = np.stack([vecs[i] for i in with_vectors])
        taken = {i for ids in hidden.values() for i in ids} | {s.id for s in shown}
        linked = [
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
        linked += [(a, b) for a, b in _close_in_index(catalog, embeddings, vecs, prints, with_vectors)
                   if b not in taken]  # fmt: skip
        ok = filters.allowed(catalog, f, [b for _, b in linked]) if f.narrows else None
        for a, b in linked:
            if b not in taken and (ok is None or b in ok):
                hidden[a].add(b)
                taken.add(b)
    return [replace(s, copies=len(hidden[s.id])) for s in shown]


def _close(prints: dict[int, int | None], a: int, b: int) -> bool:
    from clipsearch_onnx.fingerprint import hamming

    pa, pb = prints.get(a), prints.get(b)
    if pa is None or pb is None:
        return False
    return int(hamming(pa, pb)) <= FINGERPRINT_BITS


_CACHE: weakref.WeakKeyDictionary[Any, tuple[int, np.ndarray, np.ndarray]] = (
    weakref.WeakKeyDictionary()
)


def _cached_fingerprints(catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """`fingerprints(catalog)`, read again only when the catalog changed (SQLite's
    data_version: a long-lived searcher, e.g. `serve`, reads them once per change)."""
    version = int(catalog.conn.execute("PRAGMA data_version").fetchone()[0])
    cached = _CACHE.get(catalog)
    if cached is None or cached[0] != version:
        cached = (version, *fingerprints(catalog))
        _CACHE[catalog] = cached
    return cached[1], cached[2]


def _close_in_index(
    catalog: Catalog,
    embeddings: Embeddings,
    vecs: dict[int, np.ndarray],
    prints: dict[int, int | None],
    shown: list[int],
) -> list[tuple[int, int]]:
    """(shown id, other id) for the images of the index whose fingerprint is within
    FINGERPRINT_BITS bits of a shown one and whose embedding scores at least CROP_COSINE with it
    (the index's fingerprints are held in memory: 16 bytes an image)."""
    from clipsearch_onnx.fingerprint import hamming

    queries = [(i, p) for i in shown if (p := prints.get(i)) is not None]
    if not queries:
        return []
    ids, all_prints = _cached_fingerprints(catalog)
    found = []
    for i, p in queries:
        close = ids[(hamming(all_prints, np.int64(p)) <= FINGERPRINT_BITS) & (ids != i)]
        others = stored_vectors(catalog, embeddings, close.tolist())
        found += [(i, o) for o, v in others.items() if float(v @ vecs[i]) >= CROP_COSINE]
    return found
