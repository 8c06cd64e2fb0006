"""`index.json`: the one file that says which generation of the vector index is current.

A generation is a layout (trained coarse quantiser and codec) plus segments, all immutable files
under `vectors/`, each recorded in index.json with its size and checksums. A publication writes
its new files first, fsyncs them, and swaps index.json in last, atomically, so a reader sees one
complete generation; the files of the previous generation are kept until the next publication,
so a reader that has just read index.json can still open them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from clipsearch_onnx.errors import IndexCorrupt, IndexNotFound
from clipsearch_onnx.shards import fsync_dir

INDEX_JSON = "index.json"
VECTORS = "vectors"  # the folder of layouts, segments and dead-id files
FORMAT = 2
FULL_CHECK_BYTES = 4 << 20  # files up to this size are fully checksummed at every open
EDGE_BYTES = 1 << 20  # larger files: size plus checksums of the first and last MiB
REBUILD = "rebuild it with `clipsearch index PHOTOS --index DIR --rebuild`"


def _digest(path: Path, start: int = 0, length: int | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(start)
        left = length if length is not None else math.inf
        while left > 0 and (block := fh.read(int(min(1 << 20, left)))):
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def file_record(path: Path) -> dict[str, Any]:
    size = path.stat().st_size
    record: dict[str, Any] = {"bytes": size, "sha256": _digest(path)}
    if size > FULL_CHECK_BYTES:
        record["head_sha256"] = _digest(path, 0, EDGE_BYTES)
        record["tail_sha256"] = _digest(path, size - EDGE_BYTES, EDGE_BYTES)
    return record


def check_file(path: Path, record: dict[str, Any], *, full: bool = False) -> None:
    """Raises IndexCorrupt if `path` does not match its record (FileNotFoundError if it is gone:
    a writer replaced the generation meanwhile). Large files are checked by size and edges
    unless `full`."""
    size = path.stat().st_size
    if size != record["bytes"]:
        raise IndexCorrupt(
            f"index file {path} has {size} bytes where {record['bytes']} were written "
            f"(truncated or damaged); {REBUILD}"
        )
    if full or "head_sha256" not in record:
        ok = _digest(path) == record["sha256"]
    else:
        ok = (
            _digest(path, 0, EDGE_BYTES) == record["head_sha256"]
            and _digest(path, size - EDGE_BYTES, EDGE_BYTES) == record["tail_sha256"]
        )
    if not ok:
        raise IndexCorrupt(f"index file {path} does not match its checksum (damaged); {REBUILD}")


def read_meta(index_dir: Path) -> dict[str, Any]:
    path = Path(index_dir) / INDEX_JSON
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexNotFound(
            f"no index at {index_dir}; build one with `clipsearch index PHOTOS --index {index_dir}`"
        ) from None
    except (OSError, ValueError) as exc:
        raise IndexCorrupt(
            f"{path} is damaged ({exc}); rebuild with `clipsearch index PHOTOS --index "
            f"{index_dir} --rebuild`"
        ) from exc


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def referenced(meta: dict[str, Any] | None) -> set[str]:
    """The top-level names under `vectors/` (and old-format file names) a generation uses."""
    if not meta:
        return set()
    names = {name.split("/")[1] for name in meta.get("files", {}) if name.startswith(VECTORS)}
    # format 1: {"vectors": {"name": "vectors.3.faiss", ...}, "ids": {...}}
    names |= {rec["name"] for rec in meta.get("files", {}).values() if "name" in rec}
    return names


def step_name(prefix: str, what: object) -> str:
    """A name for what a step makes from `what` (a repr-able description of its inputs), so that
    a run killed after the step finds its output again."""
    return prefix + hashlib.sha1(repr(what).encode()).hexdigest()[:16]


def made(build: Path, name: str) -> Path:
    """Where a step's output named `name` is: in vectors/ if a killed run moved it there but
    never published it, else in build/."""
    moved = build.parent / name
    return moved if moved.is_dir() else build / name
