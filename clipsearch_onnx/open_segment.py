"""A segment opened for searching: its lists mapped by faiss, its dead ids as an ID selector, and
the kernel asked to read the lists a query probes before the scan needs them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clipsearch_onnx.segments import Segment

BATCH_IDS_BELOW = 1 << 16  # smaller id sets are hashed (IDSelectorBatch), larger ones a bitmap
FADV_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None)
PREFETCH_ABOVE = 16 << 20  # segments whose lists take more bytes than this are prefetched


def selector(ids: np.ndarray) -> tuple[Any, list[Any]]:
    """A faiss IDSelector for sorted, unique int64 `ids`, and the objects it must outlive."""
    import faiss

    if len(ids) < BATCH_IDS_BELOW or ids[0] < 0:
        keep = np.ascontiguousarray(ids, dtype=np.int64)
        return faiss.IDSelectorBatch(len(keep), faiss.swig_ptr(keep)), [keep]
    bits = np.zeros(int(ids[-1]) + 1, dtype=bool)
    bits[ids] = True
    bitmap = np.packbits(bits, bitorder="little")
    return faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bitmap)), [bitmap]


@dataclass
class OpenSegment:
    """One segment, opened for searching."""

    segment: Segment
    invlists: Any
    entries: np.ndarray
    dead: Any  # IDSelectorNot of the dead ids, or None
    fd: int | None
    keep: list[Any] = field(default_factory=list)

    def prefetch(self, lists: np.ndarray) -> None:
        """Asks the kernel to read the probed lists now, in file order, so that the scan that
        follows finds them in the page cache instead of faulting them in one page at a time
        (a cold one-shot query at 1M vectors: 11.7 s of random page faults before). Small
        segments are left to the kernel's own read-ahead: a few pages, often cached already."""
        if self.fd is None or FADV_WILLNEED is None or self.bytes < PREFETCH_ABOVE:
            return
        sizes = self.segment.sizes[lists]
        lists = lists[sizes > 0]
        if not len(lists):
            return
        starts = self.segment.offsets[lists]
        ends = starts + self.segment.sizes[lists] * (self.segment.code_size + 8)
        order = np.argsort(starts)
        starts, ends = starts[order], ends[order]
        gap = starts[1:] > ends[:-1] + (256 << 10)  # join ranges less than 256 KiB apart
        first = np.concatenate([[0], np.flatnonzero(gap) + 1])
        last = np.concatenate([np.flatnonzero(gap), [len(starts) - 1]])
        for a, b in zip(starts[first], ends[last], strict=True):
            os.posix_fadvise(self.fd, int(a), int(b - a), FADV_WILLNEED)

    @property
    def bytes(self) -> int:
        return self.segment.count * (self.segment.code_size + 8)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
