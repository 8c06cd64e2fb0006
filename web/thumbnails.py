"""Thumbnails of catalogued images, made on first request and kept in a bounded disk cache.

A thumbnail is named after the catalog id, its size and the identity of the file it was made from
(device, inode, size, mtime), so a changed photo gets a new one. When the cache grows past its
budget the least recently used thumbnails go first (a hit refreshes the file's mtime, at most once
a minute) until it is back under 80% of the budget.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import time
from pathlib import Path

from .files import NotServed, OpenFile, read_all

SIZES = (256, 1024)  # grid cells and the larger view
QUALITY = 82
TOUCH_EVERY_S = 60
LOW_WATER = 0.8


def render(data: bytes, size: int) -> bytes:
    """A JPEG no larger than size x size of the (upright, RGB) image in `data`."""
    from PIL import Image, ImageOps

    from clipsearch_onnx.decode import to_rgb

    with Image.open(io.BytesIO(data)) as img:
        if img.format == "JPEG":
            img.draft("RGB", (size, size))  # libjpeg scales down while decoding
        img.seek(0)
        upright = ImageOps.exif_transpose(img)
        rgb = to_rgb(upright)
        rgb.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
        out = io.BytesIO()
        rgb.save(out, "JPEG", quality=QUALITY, optimize=True)
        return out.getvalue()


class ThumbnailCache:
    def __init__(self, folder: Path, max_bytes: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._total = sum(p.stat().st_size for p in self.folder.glob("*.jpg"))

    def _name(self, opened: OpenFile, size: int) -> Path:
        digest = hashlib.sha256(opened.identity.encode()).hexdigest()[:20]
        return self.folder / f"{opened.item.id}-{size}-{digest}.jpg"

    def get(self, opened: OpenFile, size: int) -> bytes:
        """The thumbnail of an opened (already vetted) catalogued file."""
        if size not in SIZES:
            raise NotServed(400, f"thumbnail size must be one of {', '.join(map(str, SIZES))}")
        path = self._name(opened, size)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            pass
        else:
            self._touch(path)
            return data
        try:
            data = render(read_all(opened), size)
        except Exception as exc:  # Pillow raises many types for files it cannot decode
            raise NotServed(415, f"image {opened.item.id} cannot be decoded ({exc})") from None
        self._store(path, data)
        return data

    def _touch(self, path: Path) -> None:
        try:
            if time.time() - path.stat().st_mtime > TOUCH_EVERY_S:
                os.utime(path)
        except OSError:
            pass

    def _store(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".jpg")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            return  # a full disk or a read-only cache only costs re-rendering
        with self._lock:
            self._total += len(data)
            if self._total > self.max_bytes:
                self._evict()

    def _evict(self) -> None:
        entries = []
        for p in self.folder.glob("*.jpg"):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            entries.append((st.st_mtime, st.st_size, p))
        entries.sort()
        total = sum(size for _, size, _ in entries)
        for _, size, p in entries:
            if total <= self.max_bytes * LOW_WATER:
                break
            p.unlink(missing_ok=True)
            total -= size
        self._total = total
