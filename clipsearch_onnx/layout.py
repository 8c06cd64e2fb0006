"""Where things are in an index folder, and the one atomic switch between builds.

    INDEX/write.lock    held by the one writer for a whole run (`lock`)
    INDEX/current       names the live build; replaced atomically, so readers switch at once
    INDEX/next          names a build under way (a first run or a --rebuild) until it goes live
    INDEX/build-ID/     a build: catalog.sqlite, shards/, readers.lock, the vector index files

A first run and every `--rebuild` fill a new build beside the live one, which keeps answering
until `current` names the new one. A reader holds a shared lock on its build's readers.lock for
as long as it uses the build; the writer deletes a build that is no longer current only once it
can take that lock exclusively, so a reader that opened the old build keeps working.

A build folder appears complete or not at all (it is made under a temporary name and renamed),
so its catalog always has its schema. Folders written before builds existed hold one build's
files at the top level and are read as the build INDEX itself ("legacy").
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clipsearch_onnx.errors import IndexCorrupt, IndexNotFound
from clipsearch_onnx.shards import fsync_dir

CURRENT = "current"
NEXT = "next"
CATALOG = "catalog.sqlite"
SHARDS = "shards"
READERS_LOCK = "readers.lock"
_BUILD = re.compile(r"build-[0-9a-z]+-[0-9a-f]+")
# What a legacy folder holds at its top level (a rebuild removes them once the new build is live).
LEGACY_NAMES = (
    CATALOG,
    f"{CATALOG}-wal",
    f"{CATALOG}-shm",
    "index.json",
    "vectors",
    SHARDS,
    READERS_LOCK,
)
LEGACY_PREFIXES = ("vectors.", "ids.")


def _damaged(index_dir: Path, what: str) -> IndexCorrupt:
    return IndexCorrupt(
        f"the index in {index_dir} is damaged ({what}); rebuild it with "
        f"`clipsearch index PHOTOS --index {index_dir} --rebuild`"
    )


def read_pointer(index_dir: Path, name: str) -> Path | None:
    """The build folder that pointer file `name` names; None without the file. Raises
    IndexCorrupt when the file does not name an existing build."""
    try:
        text = (Path(index_dir) / name).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise _damaged(index_dir, f"cannot read {name}: {exc}") from exc
    build = Path(index_dir) / text
    if not _BUILD.fullmatch(text) or not build.is_dir():
        raise _damaged(index_dir, f"{name} names no build folder")
    return build


def is_legacy(index_dir: Path) -> bool:
    return (Path(index_dir) / CATALOG).exists()


def current_dir(index_dir: Path) -> Path | None:
    """The live build folder (INDEX itself for a legacy folder); None when there is no index."""
    build = read_pointer(index_dir, CURRENT)
    if build is None and is_legacy(index_dir):
        return Path(index_dir)
    return build


@dataclass
class Hold:
    """A reader's hold on a build: keeps the writer from deleting it until released."""

    path: Path
    fd: int | None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __del__(self) -> None:
        self.release()


def hold_current(index_dir: Path) -> Hold:
    """Opens the live build for reading: resolves `current` once and holds that build."""
    index_dir = Path(index_dir)
    for _attempt in range(100):
        build = current_dir(index_dir)
        if build is None:
            raise IndexNotFound(
                f"no index at {index_dir}; build one with "
                f"`clipsearch index PHOTOS --index {index_dir}`"
            )
        try:
            fd = os.open(build / READERS_LOCK, os.O_RDONLY)
        except FileNotFoundError:
            if build == index_dir:
                return Hold(build, None)  # a legacy folder no writer of builds has touched
            time.sleep(0.01)  # the build went away between reading `current` and opening it
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a writer is deleting it: `current` names another build by now
            time.sleep(0.01)
            continue
        if current_dir(index_dir) == build:
            return Hold(build, fd)
        os.close(fd)
    raise IndexCorrupt(f"the index in {index_dir} keeps changing under us; try again")


# -- the writer's side (called under the write lock) ----------------------------------------


def new_build_name() -> str:
    import uuid  # (writer-only imports are deferred: every search imports this module)

    return f"build-{time.time_ns():x}-{uuid.uuid4().hex[:6]}"


def write_pointer(index_dir: Path, name: str, build: Path | None) -> None:
    """Points `name` at `build` (None removes the pointer), atomically and durably."""
    path = Path(index_dir) / name
    if build is None:
        path.unlink(missing_ok=True)
    else:
        tmp = path.with_name(f".{name}.tmp{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(build.name + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    fsync_dir(path.parent)


def create_build(index_dir: Path, make_catalog: Callable[[Path], None]) -> Path:
    """A new, empty build folder beside the others: `make_catalog(folder)` writes its catalog
    in a temporary folder that is renamed into place, so the build appears complete or not at
    all."""
    import shutil

    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    name = new_build_name()
    tmp = index_dir / f".tmp-{name}"
    tmp.mkdir()
    try:
        (tmp / SHARDS).mkdir()
        (tmp / READERS_LOCK).touch()
        make_catalog(tmp)
        fsync_dir(tmp)
        os.replace(tmp, index_dir / name)
        fsync_dir(index_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return index_dir / name


def try_remove(folder: Path, *, names: tuple[str, ...] | None = None) -> bool:
    """Deletes a build folder (or, with `names`, those entries of a legacy folder) once no reader
    holds it; False if a reader still does (a later run retries)."""
    import shutil

    try:
        fd = os.open(folder / READERS_LOCK, os.O_RDONLY)
    except FileNotFoundError:
        fd = None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        if names is None:
            shutil.rmtree(folder, ignore_errors=True)
            return True
        # The catalog goes last: until it is gone the folder still reads as legacy, so a run
        # killed part-way finishes the job next time.
        entries = sorted(folder.iterdir(), key=lambda e: e.name == CATALOG)
        for entry in entries:
            if entry.name in names or entry.name.startswith(LEGACY_PREFIXES):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        return True
    finally:
        if fd is not None:
            os.close(fd)


def remove_unused(index_dir: Path, keep: set[Path]) -> None:
    """Removes builds not in `keep` and no longer read, half-made builds and pointer files, and
    a legacy folder's top-level files once a build is live."""
    import shutil

    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        return
    for entry in index_dir.iterdir():
        if entry.name.startswith(".tmp-build-"):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith((f".{CURRENT}.tmp", f".{NEXT}.tmp")):
            entry.unlink(missing_ok=True)
        elif _BUILD.fullmatch(entry.name) and entry.is_dir() and entry not in keep:
            try_remove(entry)
    if keep and index_dir not in keep and is_legacy(index_dir):
        try_remove(index_dir, names=LEGACY_NAMES)
