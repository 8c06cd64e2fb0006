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

import os
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from clipsearch_onnx import coarse, encoding, generations, layouts, segments, tiers
from clipsearch_onnx.encoding import live_rows, read_rows
from clipsearch_onnx.errors import IndexError_
from clipsearch_onnx.generations import VECTORS
from clipsearch_onnx.layouts import DEFAULT_IVF_THRESHOLD, Layout, choose_type
from clipsearch_onnx.segments import Segment
from clipsearch_onnx.shards import fsync_dir
from clipsearch_onnx.tiers import Held

DEFAULT_MEMORY = 512 << 20  # bytes of encoded chunks + vectors in flight while publishing
BUILD = "build"
SAMPLE_BLOCK = 16384  # training rows read at a time (32 MB at 512-d, whatever a shard's size)


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


def default_nprobe(nlist: int) -> int:
    """An eighth of the lists: a text query among image embeddings has its neighbours spread
    over many lists (BENCHMARKS.md: recall@10 >= 0.95 needs ~1/8 at 1M)."""
    return max(1, min(nlist, max(8, nlist // 8)))


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
    held: list[Held] = []
    layout: Layout | None = None
    if reuse and meta_prev is not None and layout_info is not None:
        for seg in meta_prev["segments"]:
            segment = Segment.load(vec / seg["name"], _code_size(meta_prev))
            pieces = segment.parts()
            keep = np.array([p[:2] in current for p in pieces], dtype=bool)
            live = sum(p[2] for p, k in zip(pieces, keep, strict=True) if k)
            held.append(Held(segment, None if keep.all() else keep, live))
    seen = {p for h in held for p, k in _kept(h) if k}
    new = [p for p in counts if p not in seen]
    if new:
        if reuse and layout_info is not None:
            layout = Layout.load(vec / layout_info["name"])
        else:
            layout = _trained(build, generation, want, source, counts, total, progress)
        held.append(encoding.encode(build, layout, source, new, memory, progress))
    held = tiers.tidy(build, [h for h in held if h.live > 0], progress)

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


def _kept(held: Held) -> Iterator[tuple[tuple[str, int], bool]]:
    pieces = held.segment.parts()
    keep = held.keep if held.keep is not None else np.ones(len(pieces), bool)
    yield from zip((p[:2] for p in pieces), (bool(k) for k in keep), strict=True)


def _trained(
    build: Path,
    generation: int,
    kind: str,
    source: PartSource,
    counts: list,
    total: int,
    progress: Progress,
) -> Layout:
    """A new layout for `total` vectors, for publication `generation`: the one a killed run of
    that publication trained, if it left one (in build/, or moved into vectors/ just before it
    was killed)."""
    nlist = layouts.lists_for(kind, total)
    name = f"layout-{kind}-{nlist}-"
    for done in sorted(build.glob(f"{name}*")) + sorted(build.parent.glob(f"{name}*")):
        info = layouts.read_info(done)
        if info.get("generation") == generation and int(info["dim"]) == source.dim:
            return Layout.load(done)
    build.mkdir(parents=True, exist_ok=True)
    dest = build / f"layout-{kind}-{nlist}-{_uuid_hex(6)}"
    if nlist == 1:
        empty = np.zeros((0, source.dim), np.float32)
        return layouts.train(dest, kind, empty, 1, total, generation)
    size = coarse.sample_size(nlist, total)
    path = build / f".sample-{nlist}.npy"
    sample = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(size, source.dim))
    progress.start("sampling", size)
    picks = np.sort(np.random.default_rng(4321).choice(total, size=size, replace=False))
    ends = np.cumsum([n for _, n in counts])
    starts = {key: int(end - n) for (key, n), end in zip(counts, ends, strict=True)}
    expected = dict(counts)
    for part in source.parts(set(expected)):
        live = live_rows(part, expected[part.key])
        start = starts[part.key]
        lo, hi = (int(x) for x in np.searchsorted(picks, [start, start + len(live)]))
        for a in range(lo, hi, SAMPLE_BLOCK):  # (a shard of 10M rows gives 1 GB of picks)
            b = min(hi, a + SAMPLE_BLOCK)
            sample[a:b] = read_rows(part, live[picks[a:b] - start])
            progress.advance(b - a)
    progress.start("training", size)
    layout = layouts.train(dest, kind, sample, nlist, total, generation)
    del sample
    path.unlink(missing_ok=True)
    return layout


def _meta(
    index_dir: Path,
    generation: int,
    layout_name: str | None,
    held: list[Held],
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
