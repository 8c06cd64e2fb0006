"""One writer per index: an advisory lock file held for the whole of an index or import run."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from clipsearch_onnx.errors import IndexError_

LOCK = "write.lock"


class WriteLock:
    def __init__(self, index_dir: Path):
        self.path = Path(index_dir) / LOCK
        self.fd: int | None = None

    def __enter__(self) -> WriteLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise IndexError_(
                f"another clipsearch run is writing to {self.path.parent}; wait for it to finish"
            ) from None
        self.fd = fd
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock; the kernel does it too on kill -9
            self.fd = None


def is_locked(index_dir: Path) -> bool:
    """True while some process holds the write lock (an index or import run is under way)."""
    path = Path(index_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
