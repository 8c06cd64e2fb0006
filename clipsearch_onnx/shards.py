"""Embedding shards: the unit in which embeddings are committed, exchanged and imported.

A shard is a folder holding `embeddings.npy` (float32 [N, D], unit rows; plain .npy, never a
pickle) and `items.jsonl` (N lines `{"path": ..., "captions": [...]}` in the same order, optionally
with `size`, `mtime_ns`, `sha256`, `width`, `height`, `taken`, `fingerprint`: a signed 64-bit
integer, clipsearch_onnx/fingerprint.py). The indexer writes one per
committed batch; `clipsearch import` takes shards made anywhere else, alone or as a job folder of
shards each marked complete by a `shard.json` written last.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch_onnx.errors import InputError

EMBEDDINGS = "embeddings.npy"
ITEMS = "items.jsonl"
DONE = "shard.json"  # written last by a job's writer (`embed-shards`): the shard is complete
UNIT_TOLERANCE = 1e-3
CHUNK_ROWS = 8192


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_shard(
    dest: Path,
    embeddings: np.ndarray,
    items: Sequence[dict[str, Any]],
    done: dict[str, Any] | None = None,
) -> None:
    """Writes a shard so that `dest` either does not exist or is complete: the files are written
    and fsynced in a temporary sibling folder that is then renamed into place. `done`: a job
    shard's record, written last as its `shard.json`. Raises OSError if `dest` exists already
    (another writer finished it first); the temporary folder is removed either way."""
    import shutil
    import uuid

    if len(embeddings) != len(items):
        raise ValueError("one item per embedding row")
    tmp = dest.with_name(f".tmp-{dest.name}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        with open(tmp / EMBEDDINGS, "wb") as fh:
            np.save(fh, np.ascontiguousarray(embeddings, dtype=np.float32), allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        with open(tmp / ITEMS, "w", encoding="utf-8") as fh:
            for item in items:
                fh.write(json.dumps(item, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if done is not None:
            with open(tmp / DONE, "w", encoding="utf-8") as fh:
                json.dump(done, fh, ensure_ascii=False, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
        os.rename(tmp, dest)  # never over a finished shard (rename fails on a non-empty folder)
        fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def place_shard(source: Path, dest: Path) -> None:
    """Puts a shard's two files at `dest` without copying them where it can: hard links on the
    same file system, copies elsewhere. `dest` appears complete or not at all."""
    import shutil

    tmp = dest.with_name(f".tmp-{dest.name}")
    tmp.mkdir(parents=True)
    try:
        for name in (EMBEDDINGS, ITEMS):
            try:
                os.link(source / name, tmp / name)
            except OSError:  # another file system, or links not allowed there
                shutil.copyfile(source / name, tmp / name)
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_embeddings(shard: Path) -> np.ndarray:
    """The shard's embeddings, memory-mapped (nothing is read until used)."""
    return np.load(shard / EMBEDDINGS, mmap_mode="r", allow_pickle=False)


def _embeddings_header(path: Path) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """(shape, dtype, fortran order, data offset) of a .npy file, read from its header only."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f".npy format version {version} is not supported")
        return shape, dtype, fortran, fh.tell()


def embedding_chunks(path: Path, rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """A shard's embeddings in chunks of `rows` rows, read with plain reads (not mapped), so a
    pass over a large shard keeps only one chunk in memory."""
    shape, dtype, _, offset = _embeddings_header(path / EMBEDDINGS)
    with open(path / EMBEDDINGS, "rb") as fh:
        fh.seek(offset)
        for start in range(0, shape[0], rows):
            count = min(rows, shape[0] - start) * shape[1]
            chunk = np.fromfile(fh, dtype=dtype, count=count)
            if len(chunk) != count:
                raise ValueError(f"the file ends at row {start + len(chunk) // shape[1]}")
            yield chunk.reshape(-1, shape[1])


def iter_items(shard: Path) -> Iterator[dict[str, Any]]:
    """The lines of a shard's items.jsonl, checked one by one (raises InputError)."""
    try:
        with open(shard / ITEMS, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"line {number}: {exc}") from None
                if not isinstance(item, dict) or not isinstance(item.get("path"), str):
                    raise ValueError(f'line {number} has no "path" string')
                captions = item.get("captions", [])
                if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
                    raise ValueError(f'line {number}: "captions" must be a list of strings')
                for key in ("size", "mtime_ns", "width", "height", "fingerprint"):
                    if not isinstance(item.get(key) or 0, int):
                        raise ValueError(f'line {number}: "{key}" must be an integer')
                if not isinstance(item.get("taken") or "", str):
                    raise ValueError(f'line {number}: "taken" must be a string')
                yield item
    except FileNotFoundError:
        raise InputError(f"{shard}: not a shard (no {ITEMS})") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{shard / ITEMS}: {exc}") from exc


def check_shard(shard: Path, dim: int | None = None, *, relative_ok: bool = False) -> int:
    """Validates a shard from outside without holding it in memory; returns its row count.
    Item paths must be absolute unless `relative_ok` (a root to resolve them against is known).
    Raises InputError naming what is wrong."""
    shard = Path(shard)
    try:
        shape, dtype, fortran, _ = _embeddings_header(shard / EMBEDDINGS)
    except FileNotFoundError:
        raise InputError(f"{shard}: not a shard (no {EMBEDDINGS})") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{shard / EMBEDDINGS}: not a readable float32 .npy ({exc})") from exc
    if len(shape) != 2 or dtype != np.float32 or fortran:
        raise InputError(
            f"{shard / EMBEDDINGS}: expected float32 [N, D], found {dtype} {list(shape)}"
        )
    if dim is not None and shape[1] != dim:
        raise InputError(
            f"{shard}: embeddings have dimension {shape[1]}, the index/model uses {dim}"
        )
    count = 0
    for item in iter_items(shard):
        if not relative_ok and not os.path.isabs(item["path"]):
            raise InputError(
                f"{shard / ITEMS}: line {count + 1}: {item['path']!r} is a relative path; "
                "give --root DIR, the folder it is relative to"
            )
        count += 1
    if count != shape[0]:
        raise InputError(f"{shard}: {shape[0]} embeddings but {count} items in {ITEMS}")
    start = 0
    try:
        for chunk in embedding_chunks(shard):
            norms = np.linalg.norm(chunk, axis=1)
            bad = np.flatnonzero(~(np.abs(norms - 1.0) <= UNIT_TOLERANCE))
            if len(bad):
                raise InputError(
                    f"{shard}: row {start + int(bad[0])} has length {norms[bad[0]]:.4f}; "
                    "embeddings must be L2-normalised"
                )
            start += len(chunk)
    except (OSError, ValueError) as exc:
        raise InputError(f"{shard / EMBEDDINGS}: {exc}") from exc
    return count
