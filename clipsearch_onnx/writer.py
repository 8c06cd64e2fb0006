"""The one writer of an index folder. `index`, `import` and the distributed import all write
through a `Writer`: it holds the folder's lock, picks the build to write (the live one, or a new
one beside it for a first run and `--rebuild`), owns the catalog, places shards, publishes the
vectors, switches builds and words every write failure.

    with Writer(index_dir, rebuild=...) as writer:
        writer.bind(manifest, precision)
        name = writer.add_shard(embeddings, items)
        writer.catalog.commit_shard(name, ...)
        writer.publish(...)
"""

from __future__ import annotations

import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from clipsearch_onnx import index as vector_index
from clipsearch_onnx import layout, models, shards
from clipsearch_onnx.catalog import Catalog
from clipsearch_onnx.errors import IndexCorrupt, IndexError_, ModelError
from clipsearch_onnx.layout import CURRENT, NEXT, SHARDS
from clipsearch_onnx.lock import WriteLock
from clipsearch_onnx.parts import CatalogParts
from clipsearch_onnx.publishing import DEFAULT_MEMORY

WRITE_ERRORS = (OSError, sqlite3.OperationalError)


def new_shard_name() -> str:
    return f"{time.time_ns():x}-{uuid.uuid4().hex[:6]}"


class Writer:
    def __init__(self, index_dir: Path, *, rebuild: bool = False, purpose: str = ""):
        """`purpose` says what a new build is for (the folder a rebuild indexes): an unfinished
        rebuild is resumed only by a rebuild with the same purpose."""
        self.index_dir = Path(index_dir)
        self.rebuild = rebuild
        self.purpose = purpose
        self.lock = WriteLock(self.index_dir)
        self.build = self.index_dir
        self.live = False  # True when readers see `build` (else it goes live when published)
        self.created = False  # `build` was made by this writer
        self.leftovers_cleaned = 0
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        assert self._catalog is not None, "use the Writer in a `with` block"
        return self._catalog

    # -- opening ----------------------------------------------------------------------------
    def __enter__(self) -> Writer:
        self.lock.__enter__()
        try:
            self._open()
        except BaseException as exc:
            self._close()
            self.lock.__exit__(None, None, None)
            if isinstance(exc, WRITE_ERRORS):
                raise self.failed(exc) from exc
            raise
        return self

    def _open(self) -> None:
        try:
            current = layout.current_dir(self.index_dir)
        except IndexCorrupt:
            if not self.rebuild:
                raise
            current = None  # a damaged pointer: the rebuild replaces it
        try:
            pending = layout.read_pointer(self.index_dir, NEXT)
        except IndexCorrupt:
            pending = None
        if pending is not None and pending == current:
            layout.write_pointer(self.index_dir, NEXT, None)  # killed just after the switch
            pending = None
        if current is not None and not self.rebuild:
            self.build, self.live = current, True
            (current / layout.READERS_LOCK).touch()  # a legacy folder may lack it
            self._catalog = Catalog.open(current)
        elif not self._resume(pending):
            self._start_fresh()
        keep = {p for p in (current, pending, self.build) if p is not None}
        layout.remove_unused(self.index_dir, keep)
        self.leftovers_cleaned = self._clean_leftovers()

    def _resume(self, pending: Path | None) -> bool:
        """Takes up a build a killed first run or rebuild left under way, if it fits."""
        if pending is None:
            return False
        try:
            catalog = Catalog.open(pending)
            fits = not self.rebuild or catalog.meta().get("purpose", "") == self.purpose
        except IndexError_:
            return False  # damaged: it was never live, start again
        if not fits:
            catalog.close()
            return False
        self.build, self._catalog = pending, catalog
        return True

    def _start_fresh(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None
        self.build = layout.create_build(self.index_dir, Catalog.create)
        self.created = True
        layout.write_pointer(self.index_dir, NEXT, self.build)
        self._catalog = Catalog.open(self.build)
        self._catalog.set_meta(purpose=self.purpose)

    def _clean_leftovers(self) -> int:
        """Removes what a killed run left in the build: shard folders never committed, temporary
        files. Returns how many shard folders were removed."""
        shard_dir = self.build / SHARDS
        known = set(self.catalog.shard_names().values())
        removed = 0
        if shard_dir.is_dir():
            for path in shard_dir.iterdir():
                if path.name not in known:
                    shutil.rmtree(path, ignore_errors=True)
                    removed += not path.name.startswith(".tmp-")
        for path in self.build.glob(".*.tmp*"):
            path.unlink(missing_ok=True)
        return removed

    # -- the model --------------------------------------------------------------------------
    def bind(self, model: models.Model) -> None:
        """Records the model of a new index; refuses to mix embeddings of different models or
        precisions in one index (`models.bind`). A rebuild under way for another model starts
        over."""
        try:
            models.bind(self.catalog, model)
        except ModelError:
            if self.live or not self.rebuild:
                raise
            self._start_fresh()
            models.bind(self.catalog, model)

    def mark_unpublished(self) -> None:
        """Records that the catalog is about to change ahead of the published vectors, so a
        searcher knows that vectors without a catalog row are files an unfinished run replaced or
        removed (not damage) until `publish` runs."""
        self.catalog.set_meta(unpublished="1")

    # -- shards -----------------------------------------------------------------------------
    def shard_path(self, name: str) -> Path:
        return self.build / SHARDS / name

    def add_shard(self, embeddings: np.ndarray, items: Sequence[dict[str, Any]]) -> str:
        """Writes a new shard into the build and returns its name (commit it to the catalog)."""
        name = new_shard_name()
        shards.write_shard(self.build / SHARDS / name, embeddings, items)
        return name

    def adopt_shard(self, source: Path) -> str:
        """Places an external shard's files in the build (hard links, else copies)."""
        name = new_shard_name()
        shards.place_shard(Path(source), self.build / SHARDS / name)
        return name

    # -- publishing -------------------------------------------------------------------------
    def publish(
        self,
        *,
        index_type: str = "auto",
        ivf_threshold: int = vector_index.DEFAULT_IVF_THRESHOLD,
        progress: vector_index.Progress | Callable[[int], None] | None = None,
        retrain: bool = False,
        memory: int | None = None,
    ) -> dict[str, Any]:
        """Publishes the vectors of every catalogued embedding, streamed shard by shard (the
        vector index encodes only shards it has not seen), and makes them current; a new build
        goes live here, and the build it replaces is removed once no reader holds it. `memory`:
        the bytes publishing may hold in flight (None: the vector index's default)."""
        catalog = self.catalog
        record = models.record_from_meta(catalog.meta())
        published = vector_index.publish(
            self.build,
            CatalogParts(catalog, self.build, record.dim if record is not None else 0),
            kind=index_type,
            ivf_threshold=ivf_threshold,
            retrain=retrain,
            memory=memory or DEFAULT_MEMORY,
            info={},  # the model is recorded once, in the catalog (models.bind)
            progress=progress,
            before_switch=lambda generation: catalog.set_meta(generation=str(generation)),
        )
        catalog.set_meta(unpublished="0")
        for name in catalog.drop_unused_shards():
            shutil.rmtree(self.build / SHARDS / name, ignore_errors=True)
        if not self.live:
            layout.write_pointer(self.index_dir, CURRENT, self.build)
            layout.write_pointer(self.index_dir, NEXT, None)
            self.live = True
            layout.remove_unused(self.index_dir, {self.build})
        return published

    # -- closing and failures ---------------------------------------------------------------
    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc is not None and self.created and not self.live:
                self._discard_if_empty()
        finally:
            self._close()
            self.lock.__exit__(kind, exc, tb)
        if isinstance(exc, WRITE_ERRORS):
            raise self.failed(exc) from exc

    def _discard_if_empty(self) -> None:
        """A new build that a failed or interrupted run left with nothing in it goes away, so
        the folder is as it was."""
        try:
            empty = self.catalog.is_empty() and not self.catalog.shard_names()
        except (sqlite3.Error, IndexCorrupt):
            return
        if empty:
            self._close()
            layout.write_pointer(self.index_dir, NEXT, None)
            shutil.rmtree(self.build, ignore_errors=True)

    def _close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None

    def failed(self, exc: BaseException) -> IndexError_:
        """The error for a write that failed (disk full, read-only folder, ...) part-way through
        a run: it says what still stands, since every step before publishing leaves that
        intact."""
        try:
            live = layout.current_dir(self.index_dir)
            if live is None:
                raise IndexError_("no index")
            count = vector_index.read_meta(live).get("count")
            state = f"searches still use the last complete index ({count} images)"
        except IndexError_:
            state = "no index has been published there yet"
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return IndexError_(
            f"could not write to the index in {self.index_dir}: {reason}; {state}, and finished "
            "batches are kept: fix the cause and run the same command again"
        )


def reindex(
    index_dir: Path, *, progress: vector_index.Progress | None = None, **options: Any
) -> dict[str, Any]:
    """Publishes the live index again with a freshly trained layout (`clipsearch reindex`):
    nothing is scanned or embedded."""
    with Writer(Path(index_dir)) as writer:
        if not writer.live:
            raise IndexError_(
                f"no index at {index_dir} to re-train; build one with `clipsearch index PHOTOS`"
            )
        return writer.publish(progress=progress, retrain=True, **options)
