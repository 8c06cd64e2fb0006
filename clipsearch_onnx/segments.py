"""Segments: immutable inverted lists on disk.

A segment folder holds
    lists.ivfdata   every list's codes then its int64 catalog ids, list after list: the byte layout
                    of faiss's OnDiskInvertedLists, which searches it memory-mapped
    sizes.npy       int64 [nlist]: entries per list (offsets follow from them)
    entries.npy     (id, list, part) of every entry, sorted by id: which lists hold an id (for
                    filters) and which entries a part contributed (for tombstones)
    parts.json      the pieces of parts it holds, in part-number order: (shard key, the part's
                    live count, rows of it here): a large part may come in pieces
It is written in a temporary folder that is renamed into place, so it exists complete or not at
all. Segments are made by encoding parts (`write_encoded`) or by concatenating other segments'
lists with their dead entries left out (`merge`); faiss's `merge_from_multiple` does the same
but prints to stdout and cannot drop entries.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch_onnx.shards import fsync_dir

LISTS = "lists.ivfdata"
SIZES = "sizes.npy"
ENTRIES = "entries.npy"
PARTS = "parts.json"
FILES = (LISTS, SIZES, ENTRIES, PARTS)
ENTRY = np.dtype([("id", "<i8"), ("list", "<i4"), ("part", "<i4")])
WRITE_BUFFER = 4 << 20
ROWS = 1 << 16  # list entries copied at a time
ENTRY_BLOCK = 1 << 18  # entries handled at a time (16 bytes each)


def save_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


Piece = tuple[str, int, int]  # (part key, part's live count, rows of it in this segment)


def _finish(tmp: Path, dest: Path, parts: Sequence[Piece], sizes: np.ndarray) -> None:
    save_array(tmp / SIZES, sizes.astype(np.int64))
    with open(tmp / PARTS, "w", encoding="utf-8") as fh:
        json.dump({"count": int(sizes.sum()), "parts": [list(p) for p in parts]}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    fsync_dir(tmp)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)


def _tmp_for(dest: Path, prefix: str) -> Path:
    import shutil

    tmp = dest.with_name(f"{prefix}{dest.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def write_encoded(
    dest: Path,
    nlist: int,
    lists: np.ndarray,
    codes: np.ndarray,
    ids: np.ndarray,
    part_of: np.ndarray,
    parts: Sequence[Piece],
) -> None:
    """A segment from encoded entries: list number, code bytes [n, code_size], id and part number
    of each (any order)."""
    order = np.lexsort((ids, lists))  # by list, then id: the same input gives the same bytes
    sizes = np.bincount(lists, minlength=nlist).astype(np.int64)
    tmp = _tmp_for(dest, ".tmp-")
    with open(tmp / LISTS, "wb", buffering=WRITE_BUFFER) as fh:
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            for source in (codes, ids):
                for a in range(lo, hi, ROWS):
                    rows = order[a : min(hi, a + ROWS)]
                    fh.write(np.ascontiguousarray(source[rows]).data)
        fh.flush()
        os.fsync(fh.fileno())
    entries = np.empty(len(ids), dtype=ENTRY)
    entries["id"], entries["list"], entries["part"] = ids, lists, part_of
    save_array(tmp / ENTRIES, np.sort(entries, order="id", kind="stable"))
    _finish(tmp, dest, parts, sizes)


@dataclass(eq=False)
class Segment:
    """A segment on disk, read with numpy (for merging) or opened for faiss (for searching)."""

    path: Path
    sizes: np.ndarray
    code_size: int

    @classmethod
    def load(cls, path: Path, code_size: int) -> Segment:
        return cls(Path(path), read_sizes(path), code_size)

    @property
    def count(self) -> int:
        return int(self.sizes.sum())

    @property
    def offsets(self) -> np.ndarray:
        """Byte offset of each list in lists.ivfdata."""
        ends = np.cumsum(self.sizes * (self.code_size + 8))
        return np.concatenate([[0], ends[:-1]]).astype(np.int64)

    def parts(self) -> list[Piece]:
        data = json.loads((self.path / PARTS).read_text(encoding="utf-8"))
        return [(str(k), int(n), int(r)) for k, n, r in data["parts"]]

    def entries(self) -> np.ndarray:
        return np.load(self.path / ENTRIES, mmap_mode="r", allow_pickle=False)

    def data(self) -> np.ndarray:
        if self.count == 0:
            return np.zeros(0, np.uint8)
        return np.memmap(self.path / LISTS, dtype=np.uint8, mode="r")

    def invlists(self) -> Any:
        """The lists as a read-only, memory-mapped faiss OnDiskInvertedLists. Its table of
        (size, capacity, offset) per list is filled in directly (three size_t per list): faiss's
        own reader of that table announces itself on stdout, which is our data channel."""
        import ctypes

        import faiss

        nlist = len(self.sizes)
        lists = faiss.OnDiskInvertedLists(nlist, self.code_size, str(self.path / LISTS))
        table = np.ctypeslib.as_array(
            (ctypes.c_uint64 * (3 * nlist)).from_address(int(lists.lists.data().this))  # type: ignore[attr-defined]
        ).reshape(nlist, 3)
        table[:, 0] = table[:, 1] = self.sizes
        table[:, 2] = self.offsets
        lists.totsize = int(self.sizes.sum()) * (self.code_size + 8)
        lists.read_only = True
        lists.prefetch_nthread = 0  # see VectorIndex.prefetch
        if lists.totsize:
            lists.do_mmap()
        return lists


def dead_ids(segment: Segment, keep: np.ndarray | None) -> np.ndarray | None:
    """Sorted ids of the entries of the parts `keep` (bool mask over the segment's parts) leaves
    out; None when it keeps them all."""
    if keep is None or bool(np.all(keep)):
        return None
    entries, dropped = segment.entries(), ~np.asarray(keep, bool)
    found = [
        np.asarray(block["id"][dropped[block["part"]]])
        for block in (entries[i : i + ENTRY_BLOCK] for i in range(0, len(entries), ENTRY_BLOCK))
    ]
    return np.concatenate(found) if found else np.zeros(0, np.int64)  # sorted, as entries are


def merge(
    dest: Path,
    inputs: Sequence[tuple[Segment, np.ndarray | None]],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Concatenates the inputs' lists into a new segment at `dest`, list by list. Each input
    comes with a bool mask over its parts (None: all): the entries of parts left out are
    dropped. Returns the entry count."""
    first = inputs[0][0]
    nlist, cs = len(first.sizes), first.code_size
    datas = [seg.data() for seg, _ in inputs]
    offsets = [seg.offsets for seg, _ in inputs]
    deads = [dead_ids(seg, keep) for seg, keep in inputs]
    sizes = np.zeros(nlist, dtype=np.int64)
    tmp = _tmp_for(dest, ".merge-")
    with open(tmp / LISTS, "wb", buffering=WRITE_BUFFER) as fh:
        for lst in range(nlist):
            # a list is its codes, then its ids: two passes over the inputs' pieces of it, in
            # blocks of ROWS entries (a flat layout is one list as large as the segment)
            for want_ids in (False, True):
                for i, (seg, _) in enumerate(inputs):
                    n = int(seg.sizes[lst])
                    at = int(offsets[i][lst])
                    for a in range(0, n, ROWS):
                        b = min(n, a + ROWS)
                        ids = datas[i][at + n * cs + 8 * a : at + n * cs + 8 * b].view(np.int64)
                        out = ids if want_ids else datas[i][at + cs * a : at + cs * b]
                        dead = deads[i]
                        if dead is not None:
                            alive = ~member(ids, dead)
                            out = (ids if want_ids else out.reshape(-1, cs))[alive]
                            if want_ids:
                                sizes[lst] += len(out)
                        elif want_ids:
                            sizes[lst] += b - a
                        fh.write(np.ascontiguousarray(out).data)
            if progress and (lst % 64 == 63 or lst == nlist - 1):
                progress(lst % 64 + 1)
        fh.flush()
        os.fsync(fh.fileno())
    del datas
    parts: list[Piece] = []
    renumbered = []
    for seg, keep in inputs:
        pieces = seg.parts()
        mask = np.ones(len(pieces), bool) if keep is None else np.asarray(keep, bool)
        renumber = np.full(len(pieces), -1, np.int32)
        renumber[mask] = np.arange(int(mask.sum())) + len(parts)
        parts += [p for p, m in zip(pieces, mask, strict=True) if m]
        renumbered.append(renumber)
    _merge_entries(
        tmp / ENTRIES, [seg.entries() for seg, _ in inputs], renumbered, int(sizes.sum())
    )
    _finish(tmp, dest, parts, sizes)
    return int(sizes.sum())


def _merge_entries(
    dest: Path, inputs: Sequence[np.ndarray], renumber: Sequence[np.ndarray], total: int
) -> None:
    """Writes the inputs' entries (each sorted by id) as one array sorted by id, range of ids by
    range of ids so that memory stays bounded; entries of dropped parts (renumbered -1) go."""
    out = np.lib.format.open_memmap(dest, mode="w+", dtype=ENTRY, shape=(total,))
    biggest = max(inputs, key=len)
    cuts = np.asarray(biggest["id"][:: max(1, ENTRY_BLOCK // max(1, len(inputs)))])
    bounds = np.concatenate([cuts[1:], [np.iinfo(np.int64).max]]) if len(cuts) else [np.inf]
    starts = [0] * len(inputs)
    filled = 0
    for bound in bounds:
        pieces = []
        for i, entries in enumerate(inputs):
            end = int(np.searchsorted(entries["id"], bound))
            block = np.array(entries[starts[i] : end])
            starts[i] = end
            block["part"] = renumber[i][block["part"]]
            pieces.append(block[block["part"] >= 0])
        block = np.concatenate(pieces)
        block = block[np.argsort(block["id"], kind="stable")]
        out[filled : filled + len(block)] = block
        filled += len(block)
    if filled != total:
        raise ValueError(f"merged {filled} entries where the lists hold {total}")
    out.flush()
    with open(dest, "rb+") as fh:
        os.fsync(fh.fileno())
    del out


def read_sizes(folder: Path) -> np.ndarray:
    """Entries per list of the segment in `folder`."""
    path = Path(folder) / SIZES
    return np.load(path, allow_pickle=False)


def member(ids: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which of `ids` are in `sorted_set` (sorted, unique)."""
    if not len(sorted_set):
        return np.zeros(len(ids), dtype=bool)
    at = np.searchsorted(sorted_set, ids)
    at[at >= len(sorted_set)] = len(sorted_set) - 1
    return sorted_set[at] == ids
