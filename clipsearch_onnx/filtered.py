"""Searching among the images a filter allows (issue 14), so that a selective filter still
returns k results and stays fast, and showing them as the filter asks (--collapse, --sort).

How `search` runs depends on how many images the filter allows: at most EXACT_BELOW are scored
exactly from their stored embeddings (no vector index involved, exact even on IVF); a share of
at least POST_FILTER_FROM of the index is found among the plain search's best (checked in SQL);
anything else goes to the vector index as allowed ids (a faiss IDSelector inside the scan, see
`index.search`). A broad filter on a large index never scans the catalog: its share is estimated
on a sample of ids first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from clipsearch_onnx.filters import Filter, Selection, allowed, dates, register, select

if TYPE_CHECKING:
    from clipsearch_onnx.catalog import Catalog
    from clipsearch_onnx.search import Result, Searcher

EXACT_BELOW = 16384  # selections up to this many images are scored exactly from the shards
POST_FILTER_FROM = 0.05  # selections of this fraction of the index or more: the plain search's
# results are checked against the filter (a few times n of them), before any ID selector
SAMPLE_ABOVE = 100_000  # larger indexes estimate a filter's share on a sample of ids first
SAMPLE = 1024


def search(
    vectors: Any,
    catalog: Catalog,
    embeddings: Callable[[int], np.ndarray | None],
    query: np.ndarray,
    n: int,
    f: Filter,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-n (scores [1, n], ids [1, n]) of `query` among the images `f` allows, as
    `VectorIndex.search` answers. The images allowed are counted in SQL first; then
    - at most EXACT_BELOW: scored exactly from their stored embeddings (`embeddings(shard)`,
      memory-mapped: only their rows are read);
    - at least POST_FILTER_FROM of the collection: the plain search's top n / fraction x 2,
      those allowed kept (checked in SQL), if that leaves n;
    - otherwise (or if that left fewer than n): the vector index restricted to their ids (a
      faiss IDSelector inside the scan)."""
    query = np.asarray(query, dtype=np.float32).reshape(-1)
    condition, params = f.where()
    register(catalog, f)
    sql = f"FROM images WHERE {condition}"
    total = max(1, int(vectors.count))
    large = total > SAMPLE_ABOVE
    if f.under is not None or not large:  # read from the path index, or a small catalog
        bounded = f"SELECT count(*) FROM (SELECT 1 {sql} LIMIT {EXACT_BELOW + 1})"
        count = catalog.conn.execute(bounded, params).fetchone()[0]
        if count <= EXACT_BELOW:
            return _small(vectors, embeddings, query, n, select(catalog, f))
    # A large catalog is sampled first: a broad filter then skips counting every row (a scan).
    share = _sampled_share(catalog, condition, params) if large else None
    if share is not None and share >= POST_FILTER_FROM:
        found = _post_filtered(vectors, catalog, f, query, n, share)
        if found is not None:
            return found
    count = catalog.conn.execute(f"SELECT count(*) {sql}", params).fetchone()[0]
    if count <= EXACT_BELOW:
        return _small(vectors, embeddings, query, n, select(catalog, f))
    if share is None and count >= POST_FILTER_FROM * total:
        found = _post_filtered(vectors, catalog, f, query, n, count / total)
        if found is not None:
            return found
    cur = catalog.conn.execute(f"SELECT group_concat(id) {sql}", params)
    chosen = np.array(cur.fetchone()[0].split(","), dtype=np.int64)
    return vectors.search(query[None, :], n, allowed_ids=chosen)


def _sampled_share(catalog: Catalog, condition: str, params: list[Any]) -> float | None:
    """The share of catalogued images a condition allows, estimated on SAMPLE ids drawn at
    random (seeded) between the smallest and the largest (primary-key lookups, no scan)."""
    (lo,) = catalog.conn.execute("SELECT min(id) FROM images").fetchone()  # (one each: the
    (hi,) = catalog.conn.execute("SELECT max(id) FROM images").fetchone()  # key's ends, no scan)
    if lo is None:
        return None
    ids = np.unique(np.random.default_rng(0).integers(lo, hi + 1, SAMPLE)).tolist()
    present = hits = 0
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        marks = ",".join("?" * len(part))
        sql = f"SELECT count(*), total({condition}) FROM images WHERE id IN ({marks})"
        found, allowed = catalog.conn.execute(sql, [*params, *part]).fetchone()
        present, hits = present + found, hits + int(allowed)
    return hits / present if present >= SAMPLE // 4 else None


def _post_filtered(
    vectors: Any, catalog: Catalog, f: Filter, query: np.ndarray, n: int, share: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """The first n allowed among the plain search's top 2n/share + 16; None if fewer."""
    total = max(1, int(vectors.count))
    fetch = min(total, int(2 * n / share) + 16)
    scores, ids = vectors.search(query[None, :], fetch)
    ok = allowed(catalog, f, [int(i) for i in ids[0] if i >= 0])
    keep = [j for j, i in enumerate(ids[0]) if int(i) in ok][:n]
    if len(keep) >= n or fetch >= total:
        return _padded(scores[0, keep], ids[0, keep], n)
    return None


def _small(
    vectors: Any,
    embeddings: Callable[[int], np.ndarray | None],
    query: np.ndarray,
    n: int,
    chosen: Selection,
) -> tuple[np.ndarray, np.ndarray]:
    if not len(chosen):
        return np.full((1, n), -np.inf, np.float32), np.full((1, n), -1, np.int64)
    found = _exact(embeddings, query, n, chosen)
    if found is None:  # a shard dropped meanwhile: the vector index answers instead
        return vectors.search(query[None, :], n, allowed_ids=chosen.ids)
    return found


def _padded(scores: np.ndarray, ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    out_s = np.full((1, n), -np.inf, np.float32)
    out_i = np.full((1, n), -1, np.int64)
    out_s[0, : len(ids)], out_i[0, : len(ids)] = scores[:n], ids[:n]
    return out_s, out_i


def _exact(
    embeddings: Callable[[int], np.ndarray | None], query: np.ndarray, n: int, chosen: Selection
) -> tuple[np.ndarray, np.ndarray] | None:
    """Top-n of `chosen` by their stored embeddings; None if a shard cannot be read."""
    scores = np.empty(len(chosen), dtype=np.float32)
    for shard in np.unique(chosen.shards):
        at = np.flatnonzero(chosen.shards == shard)
        emb = embeddings(int(shard))
        rows = chosen.rows[at]
        if emb is None or emb.ndim != 2 or emb.shape[1] != len(query) or rows.max() >= len(emb):
            return None  # a shard dropped meanwhile: the vector index answers instead
        order = np.argsort(rows)  # rows read in file order
        scores[at[order]] = np.asarray(emb[rows[order]], dtype=np.float32) @ query
    top = np.argsort(-scores, kind="stable")[:n]
    return _padded(scores[top], chosen.ids[top], n)


def finish(
    searcher: Searcher, query: np.ndarray, results: list[Result], k: int, f: Filter
) -> list[Result]:
    """The top k of `results` (best first) as `f` picks them: near-duplicates collapsed."""
    from dataclasses import replace

    if f.collapse:
        from clipsearch_onnx.dups import collapse

        results = collapse(searcher, results, k, f)
    return [replace(r, rank=n) for n, r in enumerate(results[:k], 1)]


def order(catalog: Catalog, results: list[Result], f: Filter) -> list[Result]:
    """`results` in the order `f` asks for, ranked again; each carries its date when sorted by
    it or filtered on it. Applied last, to the results kept (after any cut by score)."""
    from dataclasses import replace

    if f.sort == "date" or f.after is not None or f.before is not None:
        when = dates(catalog, [r.id for r in results])
        results = [replace(r, date=when.get(r.id)) for r in results]
    if f.sort == "date":  # oldest first; undated last
        results = sorted(results, key=lambda r: (r.date is None, r.date or "", -r.score))
    elif f.sort == "path":
        results = sorted(results, key=lambda r: r.path)
    return [replace(r, rank=n) for n, r in enumerate(results, 1)]
