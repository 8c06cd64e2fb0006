"""The one searcher behind the HTTP API and the query socket.

The index and its model are opened once. Queries run on a small pool of worker threads; each
worker keeps its own view of the searcher (its own SQLite connection: a connection belongs to the
thread that opened it) while the vectors and the ONNX Runtime sessions are shared (both are safe
to use from several threads at once). When the index is republished (`index.json` replaced) the
next query reopens it, reusing the loaded model when it is the same; queries keep being answered
from the old generation until the new one is ready.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from clipsearch_onnx.errors import ClipSearchError
from clipsearch_onnx.index import INDEX_JSON
from clipsearch_onnx.layout import current_dir
from clipsearch_onnx.search import Searcher, open_searcher
from clipsearch_onnx.settings import Settings

T = TypeVar("T")
RETRY_FAILED_RELOAD_S = 2.0


def _stamp(index_dir: Path) -> tuple[str, int, int, int] | None:
    """Identity of the published index: the live build (`current`, switched by a rebuild) and
    its `index.json` (replaced atomically on every publication)."""
    try:
        build = current_dir(index_dir)
        if build is None:
            return None
        st = os.stat(build / INDEX_JSON)
    except (OSError, ClipSearchError):
        return None
    return (build.name, st.st_ino, st.st_mtime_ns, st.st_size)


def _warm(searcher: Searcher) -> None:
    """Load both towers and the tokenizer now, not in the first queries (and not twice when
    the first queries arrive together)."""
    encoder = searcher.encoder
    encoder.session("text")
    encoder.session("vision")
    encoder.tokenizer  # noqa: B018 - loads it
    encoder.preprocess  # noqa: B018


class SearchService:
    def __init__(self, settings: Settings, workers: int = 4):
        self.settings = settings
        self.index_dir = settings.resolved_index_dir()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._retry_at = 0.0
        self._stamp = _stamp(self.index_dir)
        self._base = self._open(None)
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="clipsearch-query")

    def _open(self, reuse: Searcher | None) -> Searcher:
        base = open_searcher(self.settings, reuse=reuse.encoder if reuse else None)
        # The base searcher only lends its vectors and encoder to the workers' views; its own
        # catalog connection belongs to this thread, which will not query it. (Closing the
        # whole searcher would also let go of the index files it holds open.)
        base.catalog.close()
        if reuse is None or base.encoder is not reuse.encoder:
            _warm(base)
        return base

    @property
    def base(self) -> Searcher:
        return self._base

    def _current_base(self) -> Searcher:
        stamp = _stamp(self.index_dir)
        if stamp == self._stamp or time.monotonic() < self._retry_at:
            return self._base
        if not self._lock.acquire(blocking=False):
            return self._base  # another worker is reopening: answer from the current one
        try:
            if _stamp(self.index_dir) != self._stamp:
                try:
                    self._base = self._open(self._base)
                    self._stamp = stamp
                except Exception as exc:  # keep answering from the generation we have
                    self._retry_at = time.monotonic() + RETRY_FAILED_RELOAD_S
                    print(f"clipsearch serve: cannot reopen the index: {exc}", file=sys.stderr)
        finally:
            self._lock.release()
        return self._base

    def searcher(self) -> Searcher:
        """This thread's view of the current generation (reopened after a publication)."""
        base = self._current_base()
        view: Searcher | None = getattr(self._local, "view", None)
        if view is None or getattr(self._local, "base", None) is not base:
            if view is not None:
                view.close()
            view = base.view()
            self._local.view, self._local.base = view, base
        return view

    def run(self, func: Callable[[Searcher], T]) -> T:
        """`func(searcher)` on the calling thread (a worker of `pool`, or any thread that
        does not mind holding a SQLite connection of its own)."""
        return func(self.searcher())

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
