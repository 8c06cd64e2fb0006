"""Finding the images below a folder."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


@dataclass(frozen=True)
class Found:
    path: str  # absolute
    relpath: str  # relative to the scanned root, with '/'
    size: int
    mtime_ns: int


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def scan(root: Path) -> Iterator[Found | tuple[str, str]]:
    """Yields every image file below `root` (recursively, sorted, symlinked files followed), or a
    (path, reason) pair for an entry named like an image that is not a readable file: a folder,
    a dangling or looping symlink, or anything but a regular file (a FIFO, a socket, a device,
    also through a symlink), which is never opened; and for a folder that cannot be listed
    (permission denied), whose pictures would otherwise be missing without a word."""
    root = Path(os.path.abspath(root))
    top = str(root)
    unreadable: list[OSError] = []  # folders os.walk could not list: named, not dropped
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable.append):
        yield from _folders(unreadable)
        dirnames.sort()
        # relative folder once per folder (os.path.relpath per file was half a 100k-file scan)
        folder = dirpath[len(top) :].lstrip(os.sep).replace(os.sep, "/")
        prefix = f"{folder}/" if folder else ""
        readable = _utf8(folder)
        for name in sorted(dirnames):
            if is_image_name(name):
                yield os.path.join(dirpath, name), "is a directory, not an image file"
        for name in sorted(filenames):
            if not is_image_name(name):
                continue
            path = os.path.join(dirpath, name)
            if not (readable and _utf8(name)):
                # The catalog and the shards' JSON hold text, which these bytes are not; the
                # path is reported with them written as \xNN.
                shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                yield shown, "its name is not valid UTF-8; rename it to index it"
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                reason = "dangling symlink" if os.path.islink(path) else "vanished while scanning"
                yield path, reason
                continue
            except OSError as exc:
                yield path, f"cannot stat: {exc.strerror}"
                continue
            why = not_a_file(st.st_mode)
            if why is not None:
                yield path, why
                continue
            yield Found(path, prefix + name, st.st_size, st.st_mtime_ns)
    yield from _folders(unreadable)


def _folders(unreadable: list[OSError]) -> Iterator[tuple[str, str]]:
    while unreadable:
        exc = unreadable.pop(0)
        yield (
            str(exc.filename),
            f"cannot read this folder ({exc.strerror}): its images are not indexed",
        )


def not_a_file(mode: int, *, pipes: bool = False) -> str | None:
    """Why a file system entry of this st_mode is not read as an image file, or None for a
    regular file. Opening a FIFO waits for a writer forever, and a device such as /dev/zero
    never ends and would fill the memory. `pipes` lets a FIFO through, for a query file named
    on purpose (`--image <(curl ...)`); a scan never opens one."""
    if stat.S_ISREG(mode) or (pipes and stat.S_ISFIFO(mode)):
        return None
    if stat.S_ISFIFO(mode):
        kind = "a FIFO"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    elif stat.S_ISDIR(mode):
        kind = "a folder"
    else:
        kind = "a special file"
    return f"not a regular file ({kind})"


def _utf8(name: str) -> bool:
    """Whether a file name decoded from the file system is valid UTF-8 (Python keeps other
    bytes as lone surrogates, which neither SQLite nor JSON as UTF-8 can hold)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
