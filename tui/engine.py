"""The searcher behind the TUI, owned by one background thread.

The catalog's SQLite connection may only be used by the thread that opened it, and ONNX Runtime
sessions are best not shared between concurrent calls, so opening the index and every query run
one after another on a single worker thread. A query submitted while the index is still loading
simply waits its turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, TypeVar

import numpy as np

from clipsearch_onnx.errors import ClipSearchError, InputError
from clipsearch_onnx.filters import Filter
from clipsearch_onnx.query import Query
from clipsearch_onnx.search import IndexInfo, Result, Searcher, open_searcher
from clipsearch_onnx.settings import Settings

T = TypeVar("T")


class Page(NamedTuple):
    """The top `k` results of the last query (fewer when the index holds fewer)."""

    results: list[Result]
    k: int
    took_ms: float
    total: int  # images in the index

    @property
    def complete(self) -> bool:
        """Whether these are all the results there are (asking for more would add none)."""
        return len(self.results) < self.k or len(self.results) >= self.total


class NotOpen(ClipSearchError):
    """A query was made although the index could not be opened."""


class Engine:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clipsearch-tui")
        self._searcher: Searcher | None = None
        self._open_error: ClipSearchError | None = None
        self._vector: np.ndarray | None = None  # the last query's, to page on without re-encoding
        self._where: Filter | None = None

    async def _call(self, func: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func)

    async def open(self) -> IndexInfo:
        """Open the index and load the text tower (so that the first query is quick)."""

        def do_open() -> IndexInfo:
            try:
                searcher = open_searcher(self.settings)
                searcher.encoder.session("text")
            except ClipSearchError as exc:
                self._open_error = exc
                raise
            self._searcher = searcher
            return searcher.info()

        return await self._call(do_open)

    async def search(self, k: int, query: Query, where: Filter | None = None) -> Page:
        """The top `k` for a new query (the core's syntax), among the images `where` allows;
        `more` pages on from it."""

        def do_search() -> Page:
            searcher = self._open()
            started = time.perf_counter()
            vector = searcher.query_vector(query)
            return self._page(searcher, vector, k, where, started)

        return await self._call(do_search)

    async def similar(self, k: int, item_id: int, where: Filter | None = None) -> Page:
        """The top `k` like an indexed image, from its stored vector (nothing is decoded)."""

        def do_similar() -> Page:
            searcher = self._open()
            started = time.perf_counter()
            vector = searcher.vector_of(item_id)
            if vector is None:
                raise InputError("that image has left the index meanwhile; search again")
            return self._page(searcher, vector, k, where, started)

        return await self._call(do_similar)

    async def more(self, k: int) -> Page:
        """The top `k` for the last query and filter (a larger k than before: the next page)."""

        def do_more() -> Page:
            searcher = self._open()
            if self._vector is None:
                raise NotOpen("search first")
            return self._page(searcher, self._vector, k, self._where, time.perf_counter())

        return await self._call(do_more)

    def _page(
        self,
        searcher: Searcher,
        vector: np.ndarray,
        k: int,
        where: Filter | None,
        started: float,
    ) -> Page:
        results = searcher.search_vector(vector, k, where=where)
        self._vector, self._where = vector, where
        return Page(results, k, (time.perf_counter() - started) * 1000, searcher.count)

    def _open(self) -> Searcher:
        if self._searcher is None:
            raise NotOpen("no index is open: see the message above (ctrl+q quits)")
        return self._searcher

    @property
    def precision(self) -> str | None:
        return self._searcher.encoder.precision if self._searcher else None

    def close(self) -> None:
        """Release the catalog on its own thread; do not wait for a query still running."""

        def do_close() -> None:
            if self._searcher is not None:
                self._searcher.close()
                self._searcher = None

        self._executor.submit(do_close)
        self._executor.shutdown(wait=False, cancel_futures=False)
