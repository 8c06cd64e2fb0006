"""Publishing a generation of the vector index from a stream of parts, in bounded memory.

A part is one embedding shard: its key (the shard's folder name), the catalog id of each row
(-1 for rows whose file was replaced or removed since) and its vectors, memory-mapped. The pair
(key, live rows) identifies a part's content, since a shard's live rows only ever shrink. So a
publication:
  1. keeps the previous layout unless the collection outgrew it (or `retrain`); a new layout is
     trained once, on a uniform sample drawn across the parts into a memory-mapped file;
  2. keeps every previous segment, marking the parts whose pair is gone as dead (their ids are
     filtered out of searches until the segment is rewritten);
  3. encodes the parts it has not seen in chunks of bounded size, and joins the chunks into one
     new segment, list by list, on disk;
  4. merges segments by size tier (and rewrites one with too many dead entries), so there are
     few segments and the cost of a merge is proportional to what is merged;
  5. writes index.json last.
Unfinished work lives in `vectors/build/` (the trained layout, encoded chunks): a run killed at
any point leaves the published generation untouched and the next publication reuses it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from clipsearch_onnx import coarse, generations, layouts, segments
from clipsearch_onnx.errors import IndexCorrupt, IndexError_
from clipsearch_onnx.generations import VECTORS
from clipsearch_onnx.layouts import Layout
from clipsearch_onnx.segments import Segment
from clipsearch_onnx.shards import fsync_dir

if TYPE_CHECKING:
    from concurrent.futures import Future

DEFAULT_IVF_THRESHOLD = 200_000
DEFAULT_MEMORY = 768 << 20  # bytes of encoded chunk + vectors in flight while publishing
LEVEL_BASE = 4096  # segments below this many live entries are all one size tier
FANOUT = 4  # this many segments of one tier are merged into one of the next
MAX_SEGMENTS = 12
MAX_DEAD = 0.25  # a segment with more dead entries than this is rewritten without them
BUILD = "build"
# Batches are encoded on this many threads, each with one OpenMP thread (see coarse.assign).
WORKERS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Part:
    key: str  # the shard's folder name: unique, never reused
    ids: np.ndarray  # int64 [rows]: catalog id of each row, -1 for dead rows
    vectors: np.ndarray  # float32 [rows, D], usually the shard's memmap


class PartSource(Protocol):
    dim: int

    def counts(self) -> list[tuple[str, int]]:
        """(key, live rows) of every part, in a stable order; cheap."""
        ...

    def parts(self, keys: Collection[str] | None = None) -> Iterator[Part]:
        """Those parts (all when None) in counts() order; a fresh pass at each call."""
        ...


@dataclass
class Progress:
    start: Callable[[str, int], None] = lambda stage, total: None
    advance: Callable[[int], None] = lambda n: None


def choose_type(kind: str, count: int, threshold: int) -> str:
    if kind == "auto":
        return "flat" if count < threshold else "ivf-sq8"
    if kind not in layouts.KINDS:
        raise ValueError(
            f"unknown index type {kind!r} (choose from auto, {', '.join(layouts.KINDS)})"
        )
    return kind


def default_nprobe(nlist: int) -> int:
    """An eighth of the lists: a text query among image embeddings has its neighbours spread
    over many lists (BENCHMARKS.md: recall@10 >= 0.95 needs ~1/8 at 1M)."""
    return max(1, min(nlist, max(8, nlist // 8)))


@dataclass(eq=False)
class _Held:
    """A segment of the new generation and which of its parts are still alive."""

    segment: Segment
    keep: np.ndarray | None  # bool over its parts; None: all
    live: int

    @property
    def dead_fraction(self) -> float:
        return 1 - self.live / max(1, self.segment.count)


def publish(
    index_dir: Path,
    source: PartSource,
    *,
    kind: str = "auto",
    ivf_threshold: int = DEFAULT_IVF_THRESHOLD,
    retrain: bool = False,
    info: dict[str, Any] | None = None,
    progress: Progress | None = None,
    before_switch: Callable[[int], None] | None = None,
    memory: int = DEFAULT_MEMORY,
) -> dict[str, Any]:
    """Makes the parts of `source` the current generation of the index in `index_dir` and
    returns its index.json. `kind`: auto (flat below `ivf_threshold` vectors, else ivf-sq8),
    flat, ivf-sq8 or ivf-pq; `retrain` trains a new layout even if the current one fits;
    `before_switch(generation)` runs once every file is written, just before index.json."""
    progress = progress or Progress()
    index_dir = Path(index_dir)
    vec, build = index_dir / VECTORS, index_dir / VECTORS / BUILD
    vec.mkdir(parents=True, exist_ok=True)
    for path in vec.glob(".*"):  # temporaries of a killed run (build/ is reused instead)
        _remove(path)
    prev = _previous(index_dir)
    generation = int(prev.get("generation", 0)) + 1 if prev else 1
    counts = [(str(k), int(n)) for k, n in source.counts() if n > 0]
    total = sum(n for _, n in counts)
    want = choose_type(kind, total, ivf_threshold)
    meta_prev = prev if prev and prev.get("format") == generations.FORMAT else None
    layout_info = meta_prev.get("layout") if meta_prev else None
    reuse = (
        layout_info is not None
        and not retrain
        and int(layout_info["dim"]) == source.dim
        and not layouts.outgrown(layout_info, want, total)
    )
    current = set(counts)
    held: list[_Held] = []
    layout: Layout | None = None
    if reuse and meta_prev is not None and layout_info is not None:
        for seg in meta_prev["segments"]:
            segment = Segment.load(vec / seg["name"], _code_size(meta_prev))
            pieces = segment.parts()
            keep = np.array([p[:2] in current for p in pieces], dtype=bool)
            live = sum(p[2] for p, k in zip(pieces, keep, strict=True) if k)
            held.append(_Held(segment, None if keep.all() else keep, live))
    seen = {p for h in held for p, k in _kept(h) if k}
    new = [p for p in counts if p not in seen]
    if new:
        if reuse and layout_info is not None:
            layout = Layout.load(vec / layout_info["name"])
        else:
            unused = {p for p in vec.glob("layout-*") if p.name not in generations.referenced(prev)}
            layout = _trained(build, unused, want, source, counts, total, progress)
        held.append(_encode(build, layout, source, new, memory, progress))
    held = _tidy(build, [h for h in held if h.live > 0], progress)

    # Everything new was made in build/ (or is there from a killed run): checksummed there,
    # then moved into vectors/ under the same names, and index.json is written last.
    fresh = [h.segment.path for h in held] + ([layout.path] if layout is not None else [])
    fresh = [p for p in fresh if p.parent == build]
    records = {
        f"{VECTORS}/{folder.name}/{f.name}": generations.file_record(f)
        for folder in fresh
        for f in folder.iterdir()
    }
    for folder in fresh:
        os.replace(folder, vec / folder.name)
    if fresh:
        fsync_dir(vec)
    for h in held:
        h.segment.path = vec / h.segment.path.name
    layout_name = layout.path.name if layout is not None else None
    if layout_name is None and reuse and layout_info is not None:
        layout_name = layout_info["name"]
    meta = _meta(index_dir, generation, layout_name, held, meta_prev, records, source.dim, want)
    meta.update(info or {})
    if before_switch:
        before_switch(generation)
    generations.write_json_atomic(index_dir / generations.INDEX_JSON, meta)
    _remove_unused(index_dir, meta, prev)
    return meta


def _uuid_hex(n: int) -> str:
    import uuid  # (imports deferred here and below: searching imports this module too)

    return uuid.uuid4().hex[:n]


def _digest(what: object) -> str:
    """A name for what a step makes from `what` (a repr-able description of its inputs), so that
    a run killed after the step finds its output again."""
    import hashlib

    return hashlib.sha1(repr(what).encode()).hexdigest()[:16]


def _made(build: Path, name: str) -> Path:
    """Where a step's output named `name` is: in vectors/ if a killed run moved it there but
    never published it, else in build/."""
    moved = build.parent / name
    return moved if moved.is_dir() else build / name


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def _previous(index_dir: Path) -> dict[str, Any] | None:
    try:
        return generations.read_meta(index_dir)
    except IndexError_:
        return None


def _code_size(meta: dict[str, Any]) -> int:
    return int(meta["layout"]["code_size"])


def _kept(held: _Held) -> Iterator[tuple[tuple[str, int], bool]]:
    pieces = held.segment.parts()
    keep = held.keep if held.keep is not None else np.ones(len(pieces), bool)
    yield from zip((p[:2] for p in pieces), (bool(k) for k in keep), strict=True)


def _trained(
    build: Path,
    unused: set[Path],
    kind: str,
    source: PartSource,
    counts: list,
    total: int,
    progress: Progress,
) -> Layout:
    """A new layout for `total` vectors: one trained by a killed run if it left one (in build/,
    or already moved into vectors/ but never published: `unused`)."""
    nlist = layouts.lists_for(kind, total)
    name = f"layout-{kind}-{nlist}-"
    for done in sorted(build.glob(f"{name}*")) + sorted(
        p for p in unused if p.name.startswith(name)
    ):
        layout = Layout.load(done)
        if int(layout.info["dim"]) == source.dim:
            return layout
    build.mkdir(parents=True, exist_ok=True)
    dest = build / f"layout-{kind}-{nlist}-{_uuid_hex(6)}"
    if nlist == 1:
        return layouts.train(dest, kind, np.zeros((0, source.dim), np.float32), 1, total)
    size = coarse.sample_size(nlist, total)
    path = build / f".sample-{nlist}.npy"
    sample = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(size, source.dim))
    progress.start("sampling", size)
    picks = np.sort(np.random.default_rng(4321).choice(total, size=size, replace=False))
    ends = np.cumsum([n for _, n in counts])
    starts = {key: int(end - n) for (key, n), end in zip(counts, ends, strict=True)}
    expected = dict(counts)
    for part in source.parts(set(expected)):
        live = _live_rows(part, expected[part.key])
        start = starts[part.key]
        lo, hi = np.searchsorted(picks, [start, start + len(live)])
        if hi > lo:
            sample[lo:hi] = _read(part, live[picks[lo:hi] - start])
            progress.advance(int(hi - lo))
    progress.start("training", size)
    layout = layouts.train(dest, kind, sample, nlist, total)
    del sample
    path.unlink(missing_ok=True)
    return layout


def _live_rows(part: Part, count: int) -> np.ndarray:
    live = np.flatnonzero(np.asarray(part.ids) >= 0)
    if len(live) != count or len(part.ids) > len(part.vectors):
        raise IndexCorrupt(
            f"embedding shard {part.key} does not match the catalog ({len(live)} live rows of "
            f"{len(part.vectors)} where {count} were expected); rebuild with --rebuild"
        )
    return live


def _read(part: Part, rows: np.ndarray) -> np.ndarray:
    try:
        return np.asarray(part.vectors[rows], dtype=np.float32)
    except (OSError, ValueError, IndexError) as exc:
        raise IndexCorrupt(
            f"embedding shard {part.key} is damaged ({exc}); rebuild with --rebuild"
        ) from exc


def _encode(
    build: Path,
    layout: Layout,
    source: PartSource,
    new: list[tuple[str, int]],
    memory: int,
    progress: Progress,
) -> _Held:
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
    names = ["chunk-" + _digest((layout.path.name, c)) for c in plan]
    dest = _made(build, "seg-" + _digest(names))
    if dest.is_dir():  # a killed run got as far as joining the chunks
        progress.start("encoding", sum(n for _, n in new))
        progress.advance(sum(n for _, n in new))
        segment = Segment.load(dest, cs)
        return _Held(segment, None, segment.count)
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
                live = _live_rows(part, counts[part.key])
                for name, lo, hi in todo[part.key]:
                    buffers.setdefault(name, _Chunk(sizes[name], cs))
                    number = [p[0] for p in tables[name]].index(part.key)
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
    return _Held(segment, None, segment.count)


def _one_omp_thread() -> None:
    import faiss

    faiss.omp_set_num_threads(1)


def _encode_rows(layout: Layout, part: Part, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return layout.encode(_read(part, rows))


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


def _level(live: int) -> int:
    return 0 if live < LEVEL_BASE else int(math.log(live / LEVEL_BASE, FANOUT)) + 1


def _tidy(build: Path, held: list[_Held], progress: Progress) -> list[_Held]:
    """Merges segments until: no tier holds FANOUT segments, none is more than MAX_DEAD dead,
    and there are at most MAX_SEGMENTS."""
    while True:
        group: list[_Held] = []
        levels: dict[int, list[_Held]] = {}
        for h in held:
            levels.setdefault(_level(h.live), []).append(h)
        crowded = [hs for hs in levels.values() if len(hs) >= FANOUT]
        if crowded:
            group = crowded[0]
        elif len(held) > MAX_SEGMENTS:
            group = sorted(held, key=lambda h: h.live)[: len(held) - MAX_SEGMENTS + 1]
        else:
            group = [h for h in held if h.dead_fraction > MAX_DEAD][:1]
        if not group:
            return held
        inputs = [
            (h.segment.path.name, None if h.keep is None else h.keep.tobytes()) for h in group
        ]
        dest = _made(build, "seg-" + _digest(inputs))
        if not dest.is_dir():  # (else a killed run merged these already)
            progress.start("merging", len(group[0].segment.sizes))
            segments.merge(dest, [(h.segment, h.keep) for h in group], progress.advance)
        merged = Segment.load(dest, group[0].segment.code_size)
        held = [h for h in held if h not in group] + [_Held(merged, None, merged.count)]


def _meta(
    index_dir: Path,
    generation: int,
    layout_name: str | None,
    held: list[_Held],
    prev: dict[str, Any] | None,
    records: dict[str, dict[str, Any]],
    dim: int,
    kind: str,
) -> dict[str, Any]:
    """index.json for the generation. File records: those just computed (`records`), else the
    previous generation's, else computed now (files a killed run moved in but never published)."""
    vec = index_dir / VECTORS
    old_records = {**(prev or {}).get("files", {}), **records}
    names: list[str] = []
    layout_info: dict[str, Any] | None = None
    if layout_name is not None:
        layout_info = {**layouts.read_info(vec / layout_name), "name": layout_name}
        names += [f"{VECTORS}/{layout_name}/{f}" for f in layouts.FILES]
    segs = []
    for h in held:
        name = h.segment.path.name
        names += [f"{VECTORS}/{name}/{f}" for f in segments.FILES]
        dead_name = None
        dead = segments.dead_ids(h.segment, h.keep)
        if dead is not None:
            dead_name = f"dead-{generation}-{name}.npy"
            segments.save_array(vec / dead_name, dead)
            names.append(f"{VECTORS}/{dead_name}")
        segs.append({"name": name, "entries": h.segment.count, "live": h.live, "dead": dead_name})
    files = {
        n: old_records[n] if n in old_records else generations.file_record(index_dir / n)
        for n in names
    }
    if layout_info is not None:
        kind = layout_info["kind"]
    nlist = int(layout_info["nlist"]) if layout_info else 1
    return {
        "format": generations.FORMAT,
        "generation": generation,
        "count": int(sum(h.live for h in held)),
        "dim": int(dim),
        "type": kind,
        "nlist": nlist,
        "nprobe": default_nprobe(nlist),
        "layout": layout_info,
        "segments": segs,
        "files": files,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _remove_unused(index_dir: Path, meta: dict[str, Any], prev: dict[str, Any] | None) -> None:
    """Removes what neither this generation nor the previous one uses (a reader may just be
    opening the previous one), and the build folder."""
    keep = generations.referenced(meta) | generations.referenced(prev)
    vec = index_dir / VECTORS
    for path in vec.iterdir():
        if path.name not in keep:
            _remove(path)
    for pattern in ("vectors.*.faiss", "ids.*.npy"):  # the single-file generations of format 1
        for path in index_dir.glob(pattern):
            if path.name not in keep:
                path.unlink(missing_ok=True)
