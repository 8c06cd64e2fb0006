"""Opening a catalogued image for the browser, by catalog id only.

Nothing from the request names a path: the id is looked up in the catalog, and the file is served
only if it still lies inside the indexed folder once every symlink is resolved. A photo that has
since been replaced by a symlink to ~/.ssh/id_rsa, or a folder replaced by a symlink to /etc, is
refused, and so is the indexed folder itself replaced by a symlink: its real path is pinned the
first time a server resolves it (`Roots`, at start), not resolved again for every request. The
check and the read use the same open file descriptor (opened without following a final symlink,
and its real path read back from /proc), so the file cannot be swapped between them.
"""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import dataclass

from clipsearch_onnx.catalog import Catalog, Item


class NotServed(Exception):
    """The id names no servable file; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class OpenFile:
    item: Item
    fd: int
    real_path: str
    st: os.stat_result

    @property
    def identity(self) -> str:
        """Changes whenever the file's content may have changed."""
        st = self.st
        return f"{st.st_dev}-{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> OpenFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def indexed_folders(catalog: Catalog) -> list[str]:
    """The folders the catalogued files must stay inside, as catalogued: those given to
    `clipsearch index`. A catalog without them (imported shards only, or older than the record)
    falls back to the deepest folder holding every catalogued file: the lexically first and last
    paths share exactly the prefix all paths share, and both come from the path index."""
    roots = catalog.roots()
    if not roots:
        low, high = catalog.conn.execute("SELECT min(path), max(path) FROM images").fetchone()
        if low is None:
            return []
        roots = [os.path.commonpath([os.path.dirname(low), os.path.dirname(high)])]
    return roots


class Roots:
    """The indexed folders' real paths, each pinned the first time it is resolved. Resolving the
    folder again for every request would follow it wherever it points by then: a photo folder
    replaced by a symlink to the home folder would have every catalogued name looked up there.
    A folder that now resolves elsewhere than it was pinned to is no longer served from (until
    the server restarts)."""

    def __init__(self) -> None:
        self._pinned: dict[str, str] = {}
        self._lock = threading.Lock()

    def of(self, catalog: Catalog) -> list[str]:
        real = []
        for folder in indexed_folders(catalog):
            now = os.path.realpath(folder)
            with self._lock:
                pinned = self._pinned.setdefault(folder, now)
            if now == pinned:
                real.append(now)
        return real


def _inside(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _fd_path(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no /proc: the O_NOFOLLOW open of the resolved path has to do
        return None


def open_item(catalog: Catalog, item_id: int, roots: Roots) -> OpenFile:
    """The catalogued file `item_id`, opened for reading, or NotServed saying why not."""
    item = catalog.by_ids([item_id]).get(item_id)
    if item is None:
        raise NotServed(404, f"no image with id {item_id} in the index")
    path = item.path
    if not os.path.isabs(path) or os.path.normpath(path) != path:
        raise NotServed(403, f"image {item_id} has no plain absolute path in the catalog")
    real = os.path.realpath(path)
    if not _inside(real, roots.of(catalog)):
        raise NotServed(403, f"image {item_id} now resolves outside the indexed folder")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except FileNotFoundError:
        raise NotServed(404, f"image {item_id} is no longer on disk") from None
    except OSError as exc:
        raise NotServed(403, f"image {item_id} cannot be opened ({exc.strerror})") from None
    opened = OpenFile(item, fd, real, os.fstat(fd))
    seen = _fd_path(fd)
    if not stat.S_ISREG(opened.st.st_mode) or (seen is not None and seen != real):
        opened.close()
        raise NotServed(403, f"image {item_id} is not a regular file inside the indexed folder")
    return opened


def read_all(opened: OpenFile) -> bytes:
    chunks = []
    while chunk := os.read(opened.fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
