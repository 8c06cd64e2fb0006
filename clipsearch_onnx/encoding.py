"""Encoding the parts a generation has not seen into one new segment, in bounded memory.

The new parts are cut into chunks of at most `memory / 2` bytes of codes; each chunk is encoded
batch by batch on worker threads (one OpenMP thread each: small products on two threads of a busy
machine wait on each other more than they compute) and written as a segment of its own in
build/, named after its inputs, so a killed run's finished chunks are found again. The chunks are
then joined list by list into the new segment (`segments.merge`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clipsearch_onnx import segments
from clipsearch_onnx.errors import IndexCorrupt
from clipsearch_onnx.generations import made, step_name
from clipsearch_onnx.layouts import Layout
from clipsearch_onnx.segments import Segment
from clipsearch_onnx.tiers import Held

if TYPE_CHECKING:
    from concurrent.futures import Future

    from clipsearch_onnx.publishing import Part, PartSource, Progress

WORKERS = max(1, min(4, os.cpu_count() or 1))


def live_rows(part: Part, count: int) -> np.ndarray:
    live = np.flatnonzero(np.asarray(part.ids) >= 0)
    if len(live) != count or len(part.ids) > len(part.vectors):
        raise IndexCorrupt(
            f"embedding shard {part.key} does not match the catalog ({len(live)} live rows of "
            f"{len(part.vectors)} where {count} were expected); rebuild with --rebuild"
        )
    return live


def read_rows(part: Part, rows: np.ndarray) -> np.ndarray:
    try:
        return np.asarray(part.vectors[rows], dtype=np.float32)
    except (OSError, ValueError, IndexError) as exc:
        raise IndexCorrupt(
            f"embedding shard {part.key} is damaged ({exc}); rebuild with --rebuild"
        ) from exc


def encode(
    build: Path,
    layout: Layout,
    source: PartSource,
    new: list[tuple[str, int]],
    memory: int,
    progress: Progress,
) -> Held:
    """Encodes the `new` parts into chunks (bounded by `memory`), then joins the chunks into one
    new segment. A chunk already encoded by a killed run (same layout, same slices) is reused."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    cs = layout.code_size
    chunk_rows = max(1024, (memory // 2) // (cs + 16))
    batch_rows = max(256, min(16384, (memory // 4) // (4 * layout.shell.d * (WORKERS + 1))))
    plan: list[list[tuple[str, int, int, int]]] = [[]]  # chunks of (key, count, lo, hi)
    room = chunk_rows
    for key, count in new:
        lo = 0
        while lo < count:
            take = min(room, count - lo)
            plan[-1].append((key, count, lo, lo + take))
            lo, room = lo + take, room - take
            if room == 0:
                plan.append([])
                room = chunk_rows
    plan = [c for c in plan if c]
    names = [step_name("chunk-", (layout.path.name, c)) for c in plan]
    dest = made(build, step_name("seg-", names))
    if dest.is_dir():  # a killed run got as far as joining the chunks
        progress.start("encoding", sum(n for _, n in new))
        progress.advance(sum(n for _, n in new))
        segment = Segment.load(dest, cs)
        return Held(segment, None, segment.count)
    progress.start("encoding", sum(n for _, n in new))
    todo: dict[str, list[tuple[str, int, int]]] = {}
    for chunk, name in zip(plan, names, strict=True):
        if (build / name).is_dir():
            progress.advance(sum(hi - lo for _, _, lo, hi in chunk))
        else:
            for key, _, lo, hi in chunk:
                todo.setdefault(key, []).append((name, lo, hi))
    buffers: dict[str, _Chunk] = {}
    sizes = {name: sum(hi - lo for _, _, lo, hi in c) for c, name in zip(plan, names, strict=True)}
    tables = {
        name: [(k, n, hi - lo) for k, n, lo, hi in c] for c, name in zip(plan, names, strict=True)
    }
    numbers = {name: {p[0]: i for i, p in enumerate(tables[name])} for name in tables}
    if todo:
        counts = dict(new)
        pending: deque[tuple[Future, str, int, np.ndarray]] = deque()

        def drain(limit: int) -> None:
            while len(pending) > limit:
                future, name, number, ids = pending.popleft()
                lists, codes = future.result()
                buf = buffers[name]
                buf.add(lists, codes, ids, number)
                progress.advance(len(ids))
                if buf.full:
                    buf.write(build / name, layout.info["nlist"], tables[name])
                    del buffers[name]

        with ThreadPoolExecutor(WORKERS, initializer=_one_omp_thread) as pool:
            for part in source.parts(set(todo)):
                live = live_rows(part, counts[part.key])
                for name, lo, hi in todo[part.key]:
                    buffers.setdefault(name, _Chunk(sizes[name], cs))
                    number = numbers[name][part.key]
                    for b in range(lo, hi, batch_rows):
                        rows = live[b : min(hi, b + batch_rows)]
                        job = pool.submit(_encode_rows, layout, part, rows)
                        pending.append((job, name, number, np.asarray(part.ids)[rows]))
                        drain(WORKERS)
            drain(0)
    if buffers:
        raise IndexCorrupt("the shards changed while publishing; run the command again")
    if len(names) == 1:
        os.replace(build / names[0], dest)
    else:
        chunks = [Segment.load(build / n, cs) for n in names]
        progress.start("merging", layout.info["nlist"])
        segments.merge(dest, [(c, None) for c in chunks], progress.advance)
    segment = Segment.load(dest, cs)
    return Held(segment, None, segment.count)


def _one_omp_thread() -> None:
    import faiss

    faiss.omp_set_num_threads(1)


def _encode_rows(layout: Layout, part: Part, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return layout.encode(read_rows(part, rows))


class _Chunk:
    def __init__(self, rows: int, code_size: int):
        self.lists = np.empty(rows, np.int32)
        self.codes = np.empty((rows, code_size), np.uint8)
        self.ids = np.empty(rows, np.int64)
        self.part = np.empty(rows, np.int32)
        self.n = 0

    @property
    def full(self) -> bool:
        return self.n == len(self.ids)

    def add(self, lists: np.ndarray, codes: np.ndarray, ids: np.ndarray, part: int) -> None:
        end = self.n + len(ids)
        self.lists[self.n : end], self.codes[self.n : end] = lists, codes
        self.ids[self.n : end], self.part[self.n : end] = ids, part
        self.n = end

    def write(self, dest: Path, nlist: int, table: Sequence[segments.Piece]) -> None:
        segments.write_encoded(dest, nlist, self.lists, self.codes, self.ids, self.part, table)
