"""Thumbnails for the gallery: decoded off the UI thread, kept for the next query.

Decoding goes through the core's `termgraphics.thumbnail` (the same upright, reduced picture
`search --preview` draws); a file that cannot be shown is remembered with its reason.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from PIL import Image

from clipsearch_onnx.errors import ClipSearchError, ImageError
from clipsearch_onnx.termgraphics import thumbnail

SIDE = 256  # pixels: a tile is ~24x9 cells, at most ~240x180 pixels on a graphics terminal
KEEP = 512  # thumbnails kept (~200 KB each at most): a few pages of results


class Thumbnails:
    """path -> Pillow image or the reason it cannot be shown; thread-safe, least recently
    used thumbnails dropped past KEEP."""

    def __init__(self, keep: int = KEEP, side: int = SIDE) -> None:
        self.keep = keep
        self.side = side
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Image.Image | str] = OrderedDict()

    def cached(self, path: str) -> Image.Image | str | None:
        with self._lock:
            found = self._cache.get(path)
            if found is not None:
                self._cache.move_to_end(path)
            return found

    def load(self, path: str) -> Image.Image | str:
        """The thumbnail of `path`, or why there is none (blocking: call it on a thread)."""
        found = self.cached(path)
        if found is not None:
            return found
        try:
            img: Image.Image | str = thumbnail(path, self.side)
        except ImageError as exc:
            img = exc.reason
        except (ClipSearchError, OSError) as exc:
            img = str(exc)
        with self._lock:
            self._cache[path] = img
            while len(self._cache) > self.keep:
                self._cache.popitem(last=False)
        return img
