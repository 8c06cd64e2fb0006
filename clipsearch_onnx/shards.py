"""Embedding shards: the unit in which embeddings are committed, exchanged and imported.

A shard is a folder holding `embeddings.npy` (float32 [N, D], unit rows; plain .npy, never a
pickle) and `items.jsonl` (N lines `{"path": ..., "captions": [...]}` in the same order, optionally
with `size`, `mtime_ns`, `sha256`). The indexer writes one per committed batch; `clipsearch import`
takes shards made anywhere else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch_onnx.errors import InputError

EMBEDDINGS = "embeddings.npy"
ITEMS = "items.jsonl"
UNIT_TOLERANCE = 1e-3


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_shard(dest: Path, embeddings: np.ndarray, items: Sequence[dict[str, Any]]) -> None:
    """Writes a shard so that `dest` either does not exist or is complete: the files are written
    and fsynced in a temporary sibling folder that is then renamed into place."""
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
        os.replace(tmp, dest)
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


def read_shard(shard: Path, dim: int | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Reads and validates a shard from outside; raises InputError naming what is wrong."""
    shard = Path(shard)
    try:
        emb = load_embeddings(shard)
    except FileNotFoundError:
        raise InputError(f"{shard}: not a shard (no {EMBEDDINGS})") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{shard / EMBEDDINGS}: not a readable float32 .npy ({exc})") from exc
    if emb.ndim != 2 or emb.dtype != np.float32:
        raise InputError(
            f"{shard / EMBEDDINGS}: expected float32 [N, D], found {emb.dtype} {list(emb.shape)}"
        )
    if dim is not None and emb.shape[1] != dim:
        raise InputError(
            f"{shard}: embeddings have dimension {emb.shape[1]}, the index/model uses {dim}"
        )
    items: list[dict[str, Any]] = []
    try:
        with open(shard / ITEMS, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                item = json.loads(line)
                if not isinstance(item, dict) or not isinstance(item.get("path"), str):
                    raise ValueError(f'line {number} has no "path" string')
                captions = item.get("captions", [])
                if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
                    raise ValueError(f'line {number}: "captions" must be a list of strings')
                items.append(item)
    except FileNotFoundError:
        raise InputError(f"{shard}: not a shard (no {ITEMS})") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{shard / ITEMS}: {exc}") from exc
    if len(items) != len(emb):
        raise InputError(f"{shard}: {len(emb)} embeddings but {len(items)} items in {ITEMS}")
    # Check unit length in slices so a large shard is never read into memory whole.
    for start in range(0, len(emb), 65536):
        norms = np.linalg.norm(emb[start : start + 65536], axis=1)
        bad = np.flatnonzero(np.abs(norms - 1.0) > UNIT_TOLERANCE)
        if len(bad):
            raise InputError(
                f"{shard}: row {start + int(bad[0])} has length {norms[bad[0]]:.4f}; "
                "embeddings must be L2-normalised"
            )
    return emb, items
