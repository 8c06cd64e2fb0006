"""Answering queries: a text, an image, or both, against an opened index.

`open_searcher(settings)` is the one factory the CLI, the TUI and the tests use.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clipsearch_onnx import filtered, models
from clipsearch_onnx import query as q_
from clipsearch_onnx.catalog import Catalog, Item
from clipsearch_onnx.encoder import Encoder
from clipsearch_onnx.errors import ImageError, IndexCorrupt, InputError
from clipsearch_onnx.index import VectorIndex
from clipsearch_onnx.layout import SHARDS, Hold, hold_current
from clipsearch_onnx.lock import is_locked
from clipsearch_onnx.relevance import Cut
from clipsearch_onnx.settings import Settings
from clipsearch_onnx.shards import load_embeddings

if TYPE_CHECKING:
    from clipsearch_onnx.filters import Filter

DEFAULT_K = 10


@dataclass(frozen=True)
class Result:
    rank: int
    score: float
    path: str
    captions: list[str]
    id: int
    date: str | None = None  # the photo's date, given when results are sorted by it
    copies: int | None = None  # near-duplicates hidden behind this one (search --collapse)
    prob: float | None = None  # SigLIP: the match probability of the score (issue 16)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "rank": self.rank,
            "score": round(self.score, 6),
            "path": self.path,
            "captions": self.captions,
        }
        if self.date is not None:
            data["date"] = self.date
        if self.copies is not None:
            data["copies"] = self.copies
        if self.prob is not None:
            data["prob"] = round(self.prob, 6)
        return data


@dataclass(frozen=True)
class Response:
    query: dict[str, Any]
    results: list[Result]
    took_ms: float
    cut: dict[str, Any] | None = None  # what a relevance cut kept and why (relevance.Cut)

    def to_json(self) -> dict[str, Any]:
        out = {
            "query": self.query,
            "results": [r.to_json() for r in self.results],
            "took_ms": round(self.took_ms, 2),
        }
        if self.cut is not None:
            out["cut"] = self.cut
        return out


@dataclass(frozen=True)
class IndexInfo:
    index_dir: str
    count: int
    model_dir: str | None
    model_source: str | None
    precision: str | None
    index_type: str
    bytes_on_disk: int
    updated: str | None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    model_family: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        return data


class Searcher:
    """An opened index plus the encoder of the model that built it (towers load on first use).
    `decoding`: the `decoding` setting, for query images that are not in the index (None: the
    single-file default, `pipeline.decoding_for`)."""

    def __init__(
        self,
        index_dir: Path,
        vectors: VectorIndex,
        catalog: Catalog,
        encoder: Encoder,
        hold: Hold,
        decoding: str | None = None,
    ):
        self.index_dir = index_dir
        self.decoding = decoding
        self.hold = hold  # the build this searcher reads (see `layout`), kept until close()
        self.vectors = vectors
        self.catalog = catalog
        self.encoder = encoder
        self._shards: dict[int, np.ndarray] = {}  # shard id -> memory-mapped embeddings

    @property
    def count(self) -> int:
        return self.vectors.count

    def view(self) -> Searcher:
        """This searcher with a catalog connection of its own, for another thread (a SQLite
        connection belongs to the thread that opened it); vectors and encoder are shared."""
        catalog = Catalog.open(self.hold.path, readonly=True)
        # the build stays held by this searcher, not by its views
        view_hold = Hold(self.hold.path, None)
        return Searcher(
            self.index_dir, self.vectors, catalog, self.encoder, view_hold, self.decoding
        )

    def embed_query(
        self,
        text: str | None = None,
        image: str | Path | None = None,
        *,
        image_data: bytes | None = None,
    ) -> np.ndarray:
        """The query vector [1, D] of a text (in the query syntax of clipsearch_onnx.query) and
        an image. With `image_data` (an upload's bytes) the image is decoded from them and
        `image` only names it."""
        query = self.make_query(text, image, uploaded=image_data is not None)
        return self.query_vector(query, image_data=image_data)[None]

    def make_query(
        self,
        text: str | None = None,
        image: str | Path | None = None,
        terms: Sequence[q_.Term] = (),
        *,
        uploaded: bool = False,
        cwd: str | None = None,
    ) -> q_.Query:
        """The Query of a text in the query syntax, an image (a path or URL, taken whole) and
        more `terms`; image files are checked (relative ones against `cwd`). `uploaded`: the
        image's bytes come with the search, its name is not a file to check."""
        found = q_.parse_terms(text) if text is not None and text.strip() else []
        upload = None
        if image is not None and uploaded:
            upload = q_.Term(q_.IMAGE, str(image))
        elif image is not None:
            found.append(q_.image_term(str(image)))
        found += terms
        if upload is None and not found:
            raise InputError("give a text, an image, or both to search for")
        return q_.build(found, cwd, upload=upload)

    def query_vector(self, query: q_.Query, *, image_data: bytes | None = None) -> np.ndarray:
        """The unit vector [D] of a Query: each term through the model (an image through the one
        way from file to vector; an indexed one reuses its stored vector), then combined
        (clipsearch_onnx.query.combine). `image_data`: the bytes of the query's uploaded image
        (its last term)."""
        return self._embed(query, image_data)[0]

    def _embed(
        self, query: q_.Query, image_data: bytes | None = None
    ) -> tuple[np.ndarray, set[str], set[str]]:
        """(vector, the paths and the sha256s of the query's images)."""
        from clipsearch_onnx.urlimage import fetch

        texts = [t.value for t in query.terms if t.kind == q_.TEXT]
        text_vectors = iter(self.encoder.embed_texts(texts) if texts else [])
        rows, paths, shas = [], set(), set()
        for i, term in enumerate(query.terms):
            if term.kind == q_.TEXT:
                rows.append(next(text_vectors))
                continue
            data = image_data if i == len(query.terms) - 1 else None
            if term.kind == q_.URL:
                data = fetch(term.value)
            elif data is None:
                paths.add(os.path.abspath(os.path.expanduser(term.value)))
            vector, sha = self._image_vector(term.value, data)
            rows.append(vector)
            if sha is not None:
                shas.add(sha)
        return q_.combine(query, np.stack(rows)), paths, shas

    def _image_vector(self, source: str, data: bytes | None) -> tuple[np.ndarray, str | None]:
        """(vector, sha256 of the file if known) of an image file's path, or of `data` (then
        `source` only names it). An indexed file (same path, size and mtime,
        or the same content) gives its stored vector: an exact self-match, and the vision
        tower is not even loaded. Other files go through the one way from file to vector
        (clipsearch_onnx.pipeline), decoded the single-file way unless the setting says."""
        from clipsearch_onnx.decode import reason
        from clipsearch_onnx.pipeline import decoding_for, embed_bytes
        from clipsearch_onnx.scan import not_a_file

        if data is None:
            path = Path(source).expanduser()
            try:
                stat = path.stat()
            except OSError:
                raise InputError(f"query image {path} does not exist") from None
            item = self.catalog.by_path(os.path.abspath(path))
            if item is not None and (item.size, item.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
                stored = self.vector_of(item.id)
                if stored is not None:
                    return stored, item.sha256
            why = not_a_file(stat.st_mode, pipes=True)
            if why is not None:
                raise ImageError(path, why)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise ImageError(path, reason(exc)) from None
        digest = hashlib.sha256(data).hexdigest()
        same = self.catalog.by_sha256([digest]).get(digest)
        stored = None if same is None else self.vector_of(same.id)
        if stored is not None:
            return stored, digest
        decoding = decoding_for(self.decoding, bulk=False)
        return embed_bytes(self.encoder, data, source, decoding), digest

    def search(
        self,
        text: str | None = None,
        image: str | Path | None = None,
        k: int = DEFAULT_K,
        *,
        image_data: bytes | None = None,
        where: Filter | None = None,
        terms: Sequence[q_.Term] = (),
        cwd: str | None = None,
        cut: Cut | None = None,
        exclude_query: bool = False,
    ) -> Response:
        """The top `k` for a text in the query syntax (clipsearch_onnx.query), an image (a path
        or URL, or an upload's name with `image_data`) and more `terms` (relative paths against
        `cwd`). `where`: which images may be returned and how they are shown (see `filters`);
        `cut` drops the results that are not relevant enough (clipsearch_onnx.relevance);
        `exclude_query` drops the query's own images (same path or content)."""
        started = time.perf_counter()
        query = self.make_query(text, image, terms, uploaded=image_data is not None, cwd=cwd)
        if cut is not None:
            cut.check(self.encoder.manifest)
        vector, paths, shas = self._embed(query, image_data)
        extra = 4 * len(query.images) if exclude_query else 0
        results = self.search_vector(vector, k + extra, where=where, ordered=False)
        if exclude_query:
            results = self._without(results, paths, shas)
        results = results[:k]
        cut_info = None
        if cut is not None:
            results, cut_info = cut.apply(results, vector, self)
        if where is not None:  # --sort orders what is kept
            results = filtered.order(self.catalog, results, where)
        took = (time.perf_counter() - started) * 1000
        q: dict[str, Any] = {}
        if text is not None:
            q["text"] = text
        if image is not None:
            q["image"] = str(image)
        if where is not None and where.to_json():
            q["filter"] = where.to_json()
        given = (text is not None and bool(text.strip())) + (image is not None)
        plain = len(query.terms) == given and all(t.factor == 1 for t in query.terms)
        if terms or not plain or (given and text and query.terms[0].kind != q_.TEXT):
            q["terms"] = query.to_json()  # what the query's arithmetic made of them
        return Response(q, results, took, cut_info)

    def _without(self, results: list[Result], paths: set[str], shas: set[str]) -> list[Result]:
        """`results` less the query's own images (by path or content), ranked again."""
        items = self.catalog.by_ids(r.id for r in results)
        kept = [
            r
            for r in results
            if r.path not in paths and (items[r.id].sha256 not in shas if r.id in items else True)
        ]
        return [replace(r, rank=n) for n, r in enumerate(kept, 1)]

    def vector_of(self, item_id: int) -> np.ndarray | None:
        """The stored embedding of a catalogued image; None if it is not catalogued (or its
        shard went away meanwhile)."""
        item = self.catalog.by_ids([item_id]).get(item_id)
        emb = None if item is None else self._shard_embeddings(item.shard)
        if item is None or emb is None or emb.ndim != 2 or item.row >= len(emb):
            return None
        return np.asarray(emb[item.row], dtype=np.float32)

    def similar(self, item_id: int, k: int = DEFAULT_K, *, where: Filter | None = None) -> Response:
        """More like a catalogued image, from its stored embedding (nothing is decoded)."""
        started = time.perf_counter()
        item = self.catalog.by_ids([item_id]).get(item_id)
        vector = self.vector_of(item_id)
        if item is None or vector is None:
            raise InputError(f"no image with id {item_id} in the index {self.index_dir}")
        results = self.search_vector(vector, k, where=where)
        took = (time.perf_counter() - started) * 1000
        q: dict[str, Any] = {"id": item_id, "image": item.path}
        if where is not None and where.to_json():
            q["filter"] = where.to_json()
        return Response(q, results, took)

    def search_vector(
        self,
        vector: np.ndarray,
        k: int = DEFAULT_K,
        *,
        where: Filter | None = None,
        ordered: bool = True,
    ) -> list[Result]:
        """The top k for a unit `vector`; `where` filters, collapses and (if `ordered`) sorts
        them (see `filters`)."""
        if k < 1:
            raise InputError("k must be at least 1")
        if self.count == 0:
            return []
        # Ask for a few more than k: rows deleted by an index run under way are dropped below.
        # An approximate index (IVF with 8-bit codes) is asked for more still, and its
        # candidates are re-scored with their exact embeddings: its codes perturb scores by
        # ~0.001, enough to swap near-ties at the k-th place (recall@10 0.979 -> 1.000 at 1M).
        exact = self.vectors.meta.get("type", "flat") == "flat"
        keep = k if where is None else where.candidates(k)  # --collapse picks from more
        fetch = keep + 8 if exact else max(keep + 8, 4 * keep)
        if where is not None and where.narrows:  # the search runs among the images allowed
            scores, ids = filtered.search(
                self.vectors, self.catalog, self._shard_embeddings, vector, fetch, where
            )
        else:
            scores, ids = self.vectors.search(vector[None, :], fetch)
        pairs = [(float(s), int(i)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]
        items = self.catalog.by_ids(i for _, i in pairs)
        if not exact:
            rescored = self._exact_scores(vector, items)
            pairs = sorted(((rescored.get(i, s), i) for s, i in pairs), reverse=True)
        missing = [i for _, i in pairs if i not in items]
        # Vectors whose rows are gone belong to files an index run replaced or removed: normal
        # while it runs or after it was killed before publishing; damage otherwise.
        if missing and not is_locked(self.index_dir) and not self._rows_may_be_missing():
            raise IndexCorrupt(
                f"the catalog in {self.index_dir} lacks entries the vector index refers to "
                "(damaged); rebuild with `clipsearch index PHOTOS --rebuild`"
            )
        results: list[Result] = []
        manifest = self.encoder.manifest
        for score, i in pairs:
            item = items.get(i)
            if item is not None and len(results) < keep:
                prob = manifest.probability(score)
                results.append(
                    Result(len(results) + 1, score, item.path, item.captions, i, prob=prob)
                )
        if where is not None:
            results = filtered.finish(self, vector, results, k, where)
            if ordered:
                results = filtered.order(self.catalog, results, where)
        return results

    def _exact_scores(self, vector: np.ndarray, items: dict[int, Item]) -> dict[int, float]:
        """Scores from the embeddings in the index's shards (memory-mapped; only the rows read
        are paged in). Items whose shard cannot be read keep their approximate score."""
        by_shard: dict[int, list[Item]] = {}
        for item in items.values():
            by_shard.setdefault(item.shard, []).append(item)
        scores: dict[int, float] = {}
        for shard, members in by_shard.items():
            emb = self._shard_embeddings(shard)
            rows = [m.row for m in members]
            if emb is None or emb.ndim != 2 or emb.shape[1] != len(vector) or max(rows) >= len(emb):
                continue
            exact = np.asarray(emb[rows], dtype=np.float32) @ vector
            scores.update((m.id, float(x)) for m, x in zip(members, exact, strict=True))
        return scores

    def _shard_embeddings(self, shard: int) -> np.ndarray | None:
        if shard not in self._shards:
            names = self.catalog.shard_names()
            try:
                self._shards[shard] = load_embeddings(self.hold.path / SHARDS / names[shard])
            except (KeyError, OSError, ValueError):
                return None  # a shard dropped meanwhile: its rows keep their approximate score
        return self._shards[shard]

    def _rows_may_be_missing(self) -> bool:
        return self.catalog.rows_may_be_missing(int(self.vectors.meta.get("generation", 0)))

    def info(self) -> IndexInfo:
        return _info(self.index_dir, self.hold.path, self.vectors, self.catalog)

    def close(self) -> None:
        self.catalog.close()
        self.hold.release()


def _info(index_dir: Path, build: Path, vectors: VectorIndex, catalog: Catalog) -> IndexInfo:
    meta = vectors.meta
    record = models.record_from_meta(catalog.meta())
    size = sum(p.stat().st_size for p in build.rglob("*") if p.is_file())
    return IndexInfo(
        index_dir=str(index_dir),
        count=vectors.count,
        model_dir=record.dir if record else None,
        model_source=record.source if record else None,
        precision=record.precision if record else None,
        index_type=meta.get("type", "?"),
        bytes_on_disk=size,
        updated=meta.get("updated"),
        skipped=catalog.skipped(),
        model_family=record.family if record else None,
    )


def read_info(index_dir: Path, *, verify_full: bool = False) -> IndexInfo:
    """What `clipsearch info` shows; `verify_full` checksums every index file whole."""
    hold = hold_current(index_dir)
    try:
        vectors = VectorIndex.open(hold.path, verify_full=verify_full)
        catalog = Catalog.open(hold.path, readonly=True)
        try:
            return _info(index_dir, hold.path, vectors, catalog)
        finally:
            catalog.close()
    finally:
        hold.release()


def open_searcher(
    settings: Settings, *, reuse: Encoder | None = None, quick_start: bool = False
) -> Searcher:
    """The index of `settings` with the encoder of its model; `reuse` is taken instead of a new
    encoder when it is that model at that precision (a server reopening a republished index).
    `quick_start`: for a process that answers one query and exits (see `backends.load`)."""
    index_dir = settings.resolved_index_dir()
    hold = hold_current(index_dir)  # the live build, kept while this searcher reads it
    try:
        vectors = VectorIndex.open(hold.path)
        catalog = Catalog.open(hold.path, readonly=True)
    except BaseException:
        hold.release()
        raise
    try:
        model = models.for_query(settings, index_dir, catalog=catalog)
    except BaseException:
        catalog.close()
        hold.release()
        raise
    if (
        reuse is not None
        and reuse.manifest.fingerprint == model.manifest.fingerprint
        and reuse.precision == model.precision
    ):
        encoder = reuse
    else:
        # Queries are embedded one at a time: one text-tower thread unless --threads says so.
        encoder = model.encoder(
            settings.threads,
            text_threads=settings.threads or 1,
            quick_start=quick_start,
            backend=settings.backend,
        )
    return Searcher(index_dir, vectors, catalog, encoder, hold, settings.decoding)
