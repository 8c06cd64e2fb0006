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
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np

from clipsearch_onnx.errors import ClipSearchError
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

    async def search(self, k: int, text: str | None = None, image: Path | None = None) -> Page:
        """The top `k` for a new query; `more` pages on from it."""

        def do_search() -> Page:
            searcher = self._open()
            started = time.perf_counter()
            vector = searcher.embed_query(text, image)[0]
            results = searcher.search_vector(vector, k)
            self._vector = vector
            return Page(results, k, (time.perf_counter() - started) * 1000, searcher.count)

        return await self._call(do_search)

    async def more(self, k: int) -> Page:
        """The top `k` for the last query (a larger k than before: the next page)."""

        def do_more() -> Page:
            searcher = self._open()
            if self._vector is None:
                raise NotOpen("search first")
            started = time.perf_counter()
            results = searcher.search_vector(self._vector, k)
            return Page(results, k, (time.perf_counter() - started) * 1000, searcher.count)

        return await self._call(do_more)

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
