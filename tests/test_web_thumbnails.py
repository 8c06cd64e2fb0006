"""Thumbnails: JPEGs made from the vetted file, kept on disk within their budget, the least
recently used going first."""

from __future__ import annotations

import io
import os
import time

from PIL import Image

from clipsearch_onnx.search import open_searcher
from clipsearch_onnx.settings import Settings
from clipsearch_web.files import Roots, open_item
from clipsearch_web.thumbnails import ThumbnailCache


def test_the_cache_stays_within_its_budget_and_keeps_what_was_used_last(web_collection, tmp_path):
    searcher = open_searcher(Settings(index_dir=web_collection.index))
    catalog = searcher.catalog
    try:
        ids = sorted(catalog.by_ids(range(1, 200)))[:8]
        cache = ThumbnailCache(tmp_path / "thumbs", max_bytes=1)  # measure one thumbnail first
        with open_item(catalog, ids[0], Roots()) as opened:
            first = cache.get(opened, 256)
        with Image.open(io.BytesIO(first)) as img:
            assert img.format == "JPEG" and max(img.size) <= 256
        budget = 3 * len(first) + 100
        cache = ThumbnailCache(tmp_path / "budget", max_bytes=budget)
        for n, item_id in enumerate(ids):
            with open_item(catalog, item_id, Roots()) as opened:
                cache.get(opened, 256)
            if n == 0:  # the first one stays in use: it must outlive the others
                keep = next((tmp_path / "budget").glob(f"{item_id}-256-*.jpg"))
            os.utime(keep, (time.time() + 3600, time.time() + 3600))
            size = sum(p.stat().st_size for p in (tmp_path / "budget").glob("*.jpg"))
            assert size <= budget
        assert keep.exists()
        assert len(list((tmp_path / "budget").glob("*.jpg"))) < len(ids)
    finally:
        searcher.close()
