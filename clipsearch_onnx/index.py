"""The vector index: FAISS inverted lists on disk, opened memory-mapped, described by
`index.json`; FAISS ids are catalog ids.

Writing: `publish(index_dir, source)` (see `publishing`) takes the collection as a stream of parts,
one per embedding shard, and never holds all vectors at once. Reading: `VectorIndex.open` maps the
current generation read-only; `search` ranks every list centroid exactly, reads the `nprobe` best
lists of every segment (prefetched in file order, so a cold page cache is read nearly
sequentially instead of by random page faults), and can be restricted to a set of catalog ids
inside the search (issue 14's filters), so a selective filter still returns k results.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clipsearch_onnx import generations, index_small
from clipsearch_onnx.errors import IndexCorrupt
from clipsearch_onnx.generations import INDEX_JSON, VECTORS, check_file, read_meta
from clipsearch_onnx.layouts import DEFAULT_IVF_THRESHOLD, Layout, choose_type
from clipsearch_onnx.open_segment import OpenSegment, selector
from clipsearch_onnx.segments import Segment

if TYPE_CHECKING:
    from clipsearch_onnx.publishing import Part, PartSource, Progress

__all__ = [
    "DEFAULT_IVF_THRESHOLD",
    "INDEX_JSON",
    "INDEX_TYPES",
    "Part",
    "PartSource",
    "Progress",
    "VectorIndex",
    "choose_type",
    "publish",
    "read_meta",
]

INDEX_TYPES = ("auto", "flat", "ivf-sq8", "ivf-pq")
SERIAL_BELOW = 16  # searches of fewer queries run on one thread (see VectorIndex.search)
RESTRICT_BELOW = 64  # allowed ids per list below which a filter also narrows the lists probed


def __getattr__(name: str) -> Any:
    """The writer's names, imported from `publishing` only when asked for: a search never is."""
    if name in ("Part", "PartSource", "Progress"):
        from clipsearch_onnx import publishing

        return getattr(publishing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def publish(
    index_dir: Path,
    source: PartSource,
    *,
    progress: Progress | Callable[[int], None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Publishes the parts of `source` as the current generation (`publishing.publish`; see
    there for `options`). `progress` may also be a plain callable: it is then told the vectors
    encoded."""
    from clipsearch_onnx import publishing
    from clipsearch_onnx.publishing import Progress

    if progress is not None and not isinstance(progress, Progress):
        advance, stage = progress, [""]
        progress = Progress(
            start=lambda name, total: stage.__setitem__(0, name),
            advance=lambda n: advance(n) if stage[0] == "encoding" else None,
        )
    return publishing.publish(index_dir, source, progress=progress, **options)


class VectorIndex:
    """An opened generation: the layout's trained shell plus its memory-mapped segments."""

    def __init__(self, index_dir: Path, meta: dict[str, Any], layout: Layout | None, opened):
        self.index_dir = index_dir
        self.meta = meta
        self.layout = layout
        self._segments: list[OpenSegment] = opened
        self._lock = threading.Lock()

    @classmethod
    def open(cls, index_dir: Path, *, verify_full: bool = False) -> VectorIndex:
        index_dir = Path(index_dir)
        for _attempt in range(20):
            meta = read_meta(index_dir)
            if meta.get("format", 1) != generations.FORMAT:
                from clipsearch_onnx.index_v1 import LegacyIndex

                return LegacyIndex.open(index_dir, meta, verify_full)  # type: ignore[return-value]
            try:
                if index_small.fits(meta):  # numpy alone: a one-shot query skips FAISS
                    _check_files(index_dir, meta, verify_full)
                    return index_small.SmallFlatIndex(index_dir, meta)  # type: ignore[return-value]
                return cls._open(index_dir, meta, verify_full)
            except FileNotFoundError:
                time.sleep(0.05)  # a writer replaced this generation meanwhile: read again
            except (KeyError, TypeError) as exc:
                raise IndexCorrupt(f"{index_dir / INDEX_JSON} is malformed ({exc!r})") from exc
            except (RuntimeError, ValueError, OSError) as exc:
                raise IndexCorrupt(f"cannot open the index in {index_dir}: {exc}") from exc
        raise IndexCorrupt(f"the index in {index_dir} keeps changing under us; try again")

    @classmethod
    def _open(cls, index_dir: Path, meta: dict[str, Any], verify_full: bool) -> VectorIndex:
        _check_files(index_dir, meta, verify_full)
        if meta["layout"] is None:
            return cls(index_dir, meta, None, [])
        vec = index_dir / VECTORS
        layout = Layout.load(vec / meta["layout"]["name"])
        opened: list[OpenSegment] = []
        for seg in meta["segments"]:
            segment = Segment.load(vec / seg["name"], layout.code_size)
            dead: Any = None
            keep: list[Any] = []
            if seg["dead"]:
                import faiss

                ids = np.load(vec / seg["dead"], allow_pickle=False)
                inner, keep = selector(ids)
                dead = faiss.IDSelectorNot(inner)
                keep.append(inner)
            fd = os.open(segment.path / "lists.ivfdata", os.O_RDONLY)
            entries = segment.entries()
            opened.append(OpenSegment(segment, segment.invlists(), entries, dead, fd, keep))
        if sum(s["live"] for s in meta["segments"]) != meta["count"]:
            raise IndexCorrupt(f"the index in {index_dir} is inconsistent (vector count)")
        return cls(index_dir, meta, layout, opened)

    @property
    def count(self) -> int:
        return int(self.meta["count"])

    @property
    def nlist(self) -> int:
        return int(self.meta.get("nlist", 1))

    @property
    def nprobe(self) -> int:
        return int(self.meta.get("nprobe", 1))

    def close(self) -> None:
        for s in self._segments:
            s.close()

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        nprobe: int | None = None,
        allowed_ids: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, catalog ids) per query row, best first; ids are -1 where fewer than k
        exist. `nprobe`: lists read per query (default: index.json's). `allowed_ids`: only these
        catalog ids can be returned (checked inside the scan); the lists probed are then the best
        of those holding an allowed id, enough of them to expect 2k matches, and all of them if
        that still leaves a query short of k: a selective filter returns k results when k match."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(int(k), max(1, self.count)))
        empty = (
            np.full((len(queries), k), -np.inf, dtype=np.float32),
            np.full((len(queries), k), -1, dtype=np.int64),
        )
        if self.layout is None or not self._segments:
            return empty
        nprobe = max(1, min(int(nprobe or self.nprobe), self.nlist))
        if allowed_ids is None:
            with self._lock, _serial_for(queries):
                lists, dis = self.layout.coarse.rank(queries, nprobe)
                return self._search(queries, k, lists, dis, None)
        allowed = np.unique(np.asarray(allowed_ids, dtype=np.int64))
        holding = self._lists_holding(allowed)
        if not len(allowed) or not len(holding):
            return empty
        width = max(nprobe, int(np.ceil(2 * k * len(holding) / len(allowed))))
        only, keep = selector(allowed)
        with self._lock, _serial_for(queries):
            while True:
                lists, dis = self.layout.coarse.rank(queries, width, among=holding)
                scores, ids = self._search(queries, k, lists, dis, only)
                if width >= len(holding) or (ids >= 0).sum(axis=1).min() >= k:
                    del keep
                    return scores, ids
                width = len(holding)

    def _search(
        self, queries: np.ndarray, k: int, lists: np.ndarray, dis: np.ndarray, only: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        found = []
        for s in self._segments:
            out_d = np.empty((len(queries), k), dtype=np.float32)
            out_i = np.empty((len(queries), k), dtype=np.int64)
            self._run(s, queries, lists, dis, only, "search", k, out_d, out_i)
            out_d[out_i < 0] = -np.inf
            found.append((out_d, out_i))
        all_scores = np.concatenate([f[0] for f in found], axis=1)
        all_ids = np.concatenate([f[1] for f in found], axis=1)
        best = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
        scores = np.take_along_axis(all_scores, best, axis=1)
        ids = np.take_along_axis(all_ids, best, axis=1)
        ids[~np.isfinite(scores) | (ids < 0)] = -1
        return scores, ids

    def _lists_holding(self, allowed: np.ndarray) -> np.ndarray:
        """The lists (of any segment) that hold any of the sorted ids `allowed`."""
        if len(allowed) >= RESTRICT_BELOW * self.nlist:
            return np.arange(self.nlist)  # every list holds some, most likely: skip the lookup
        holding = np.zeros(self.nlist, dtype=bool)
        for s in self._segments:
            ids = s.entries["id"]
            at = np.searchsorted(ids, allowed)
            inside = at < len(ids)
            at = at[inside]
            hit = at[np.asarray(ids[at]) == allowed[inside]]
            holding[np.asarray(s.entries["list"][hit])] = True
        return np.flatnonzero(holding)

    def range_search(
        self, queries: np.ndarray, threshold: float, *, nprobe: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every vector scoring at least `threshold` with each query, in faiss's layout: query i's
        results are scores[lims[i]:lims[i + 1]], ids[...] (unordered). Approximate on IVF."""
        import faiss

        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        n = len(queries)
        if self.layout is None or not self._segments:
            return np.zeros(n + 1, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)
        nprobe = max(1, min(int(nprobe or self.nprobe), self.nlist))
        per_query: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(n)]
        results = []
        with self._lock, _serial_for(queries):
            lists, dis = self.layout.coarse.rank(queries, nprobe)
            for s in self._segments:
                results.append(faiss.RangeSearchResult(n))
                self._run(s, queries, lists, dis, None, "range", float(threshold), results[-1])
        for res in results:
            lims = faiss.rev_swig_ptr(res.lims, n + 1).copy()
            if not lims[-1]:
                continue
            got_d = faiss.rev_swig_ptr(res.distances, int(lims[-1])).copy()
            got_i = faiss.rev_swig_ptr(res.labels, int(lims[-1])).copy()
            for q in range(n):
                per_query[q].append((got_d[lims[q] : lims[q + 1]], got_i[lims[q] : lims[q + 1]]))
        sizes = [sum(len(d) for d, _ in rows) for rows in per_query]
        lims = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        scores = np.concatenate([d for rows in per_query for d, _ in rows] or [np.zeros(0)])
        ids = np.concatenate([i for rows in per_query for _, i in rows] or [np.zeros(0)])
        return lims, scores.astype(np.float32), ids.astype(np.int64)

    def _run(
        self,
        s: OpenSegment,
        queries: np.ndarray,
        lists: np.ndarray,
        dis: np.ndarray,
        only: Any,
        what: str,
        *args: Any,
    ) -> None:
        """One segment's part of a search ("search": k, D, I) or range search ("range": threshold,
        result), through the layout's shell with this segment's lists swapped in. `only`: an
        IDSelector of the ids allowed (or None); the segment's dead ids are always left out."""
        import faiss

        assert self.layout is not None
        s.prefetch(np.unique(lists[lists >= 0]))
        params = faiss.SearchParametersIVF()
        params.nprobe = lists.shape[1]
        both = None
        if only is not None and s.dead is not None:
            both = faiss.IDSelectorAnd(only, s.dead)
        sel = both or only or s.dead
        if sel is not None:
            params.sel = sel
        lists = np.ascontiguousarray(lists, dtype=np.int64)
        dis = np.ascontiguousarray(dis, dtype=np.float32)
        n, x = len(queries), faiss.swig_ptr(queries)
        shell = self.layout.shell
        shell.replace_invlists(s.invlists, False)
        if what == "search":
            k, out_d, out_i = args
            shell.search_preassigned_c(
                n, x, k, faiss.swig_ptr(lists), faiss.swig_ptr(dis),
                faiss.swig_ptr(out_d), faiss.swig_ptr(out_i), False, params,
            )  # fmt: skip
        else:
            radius, result = args
            shell.range_search_preassigned_c(
                n, x, radius, faiss.swig_ptr(lists), faiss.swig_ptr(dis), result, False, params
            )


def _check_files(index_dir: Path, meta: dict[str, Any], full: bool) -> None:
    for name, record in meta["files"].items():
        if not name.endswith("parts.json"):  # read by writers only
            check_file(index_dir / name, record, full=full)


@contextmanager
def _serial_for(queries: np.ndarray) -> Iterator[None]:
    """A few queries gain nothing from OpenMP's threads and can lose a lot waiting for them on a
    busy machine: they run on one. The setting is per calling thread, restored after."""
    import faiss

    threads = faiss.omp_get_max_threads()
    if len(queries) < SERIAL_BELOW:
        faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)
