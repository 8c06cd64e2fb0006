"""The vector index: FAISS files on disk, opened memory-mapped, described by `index.json`.

Each publication writes a new generation (`vectors.<g>.faiss`, `ids.<g>.npy`), fsyncs it, records
sizes and checksums in `index.json` and swaps that file in atomically, so a reader always sees one
complete generation. The previous generation is kept until the next one, so a reader that has just
read `index.json` can still open its files.

Flat indexes are opened with IO_FLAG_MMAP_IFC (in faiss 1.15 plain IO_FLAG_MMAP still reads a flat
index into RAM); IVF indexes with IO_FLAG_MMAP, which maps their inverted lists.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch_onnx.errors import IndexCorrupt, IndexNotFound
from clipsearch_onnx.shards import fsync_dir

INDEX_JSON = "index.json"
INDEX_TYPES = ("auto", "flat", "ivf-sq8", "ivf-pq")
DEFAULT_IVF_THRESHOLD = 200_000
FULL_CHECK_BYTES = 64 << 20  # files up to this size are fully checksummed at every open
EDGE_BYTES = 1 << 20  # larger files: size plus checksums of the first and last MiB
SERIAL_BELOW = 16  # searches of fewer queries run on one thread (see VectorIndex.search)


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
    """Raises IndexCorrupt if `path` does not match its record in index.json."""
    fix = "rebuild it with `clipsearch index PHOTOS --index DIR --rebuild`"
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise
    if size != record["bytes"]:
        raise IndexCorrupt(
            f"index file {path} has {size} bytes where {record['bytes']} were written "
            f"(truncated or damaged); {fix}"
        )
    if full or size <= FULL_CHECK_BYTES:
        ok = _digest(path) == record["sha256"]
    else:
        ok = (
            _digest(path, 0, EDGE_BYTES) == record["head_sha256"]
            and _digest(path, size - EDGE_BYTES, EDGE_BYTES) == record["tail_sha256"]
        )
    if not ok:
        raise IndexCorrupt(f"index file {path} does not match its checksum (damaged); {fix}")


def choose_type(kind: str, count: int, threshold: int) -> str:
    if kind == "auto":
        return "flat" if count < threshold else "ivf-sq8"
    return kind


def _nlist(count: int) -> int:
    # ~4*sqrt(N) lists, and at least ~40 training points per list.
    return max(1, min(int(4 * math.sqrt(count)), count // 40))


def build_faiss(
    vectors: np.ndarray,
    kind: str,
    progress: Callable[[int], None] | None = None,
    seed: int = 1234,
) -> Any:
    import faiss

    count, dim = vectors.shape
    chunk = 65536
    index: Any
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind in ("ivf-sq8", "ivf-pq"):
        nlist = _nlist(count)
        quantizer = faiss.IndexFlatIP(dim)
        if kind == "ivf-sq8":
            index = faiss.IndexIVFScalarQuantizer(
                quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
            )
        else:
            m = next(m for m in (64, 48, 32, 16, 8, 4, 2, 1) if dim % m == 0)
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = min(count, max(nlist * 64, 50_000), 256 * nlist)
        rows = np.sort(rng.choice(count, size=sample, replace=False))
        index.cp.seed = seed
        index.train(np.ascontiguousarray(vectors[rows], dtype=np.float32))
        # An eighth of the lists. Queries far from every cluster (a text query among image
        # embeddings) have their neighbours spread over many lists: at 1M vectors, 4000 lists,
        # recall@10 of such queries reaches 0.95-1.0 on clustered data from nprobe ~500 on
        # (after the searcher's exact re-scoring), where 125 gave 0.88-0.96 (BENCHMARKS.md).
        index.nprobe = max(1, min(nlist, max(8, nlist // 8)))
    else:
        raise ValueError(f"unknown index type {kind!r} (choose from {', '.join(INDEX_TYPES)})")
    for start in range(0, count, chunk):
        index.add(np.ascontiguousarray(vectors[start : start + chunk], dtype=np.float32))
        if progress:
            progress(min(chunk, count - start))
    return index


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


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def publish(
    index_dir: Path,
    vectors: np.ndarray,
    ids: np.ndarray,
    *,
    kind: str,
    info: dict[str, Any],
    progress: Callable[[int], None] | None = None,
    before_switch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Writes a new generation from `vectors` (rows in the order of `ids`) and makes it current.

    `info` (model, precision, ...) is stored in index.json beside the files' records;
    `before_switch(generation)` runs once the files are safely written, just before the switch.
    """
    import faiss

    index_dir = Path(index_dir)
    try:
        previous = read_meta(index_dir)
        generation = int(previous["generation"]) + 1
    except (IndexNotFound, IndexCorrupt, KeyError, ValueError):
        previous, generation = None, 1
    faiss_name, ids_name = f"vectors.{generation}.faiss", f"ids.{generation}.npy"
    index = build_faiss(vectors, kind, progress)
    faiss_tmp = index_dir / f".{faiss_name}.tmp"
    faiss.write_index(index, str(faiss_tmp))
    with open(faiss_tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(faiss_tmp, index_dir / faiss_name)
    ids_tmp = index_dir / f".{ids_name}.tmp"
    with open(ids_tmp, "wb") as fh:
        np.save(fh, np.asarray(ids, dtype=np.int64), allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(ids_tmp, index_dir / ids_name)
    meta = {
        "format": 1,
        "generation": generation,
        "count": int(len(ids)),
        "dim": int(vectors.shape[1]) if vectors.ndim == 2 else 0,
        "type": kind,
        "nprobe": int(getattr(index, "nprobe", 0)),
        "files": {
            "vectors": {"name": faiss_name, **file_record(index_dir / faiss_name)},
            "ids": {"name": ids_name, **file_record(index_dir / ids_name)},
        },
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **info,
    }
    if before_switch:
        before_switch(generation)
    _write_json_atomic(index_dir / INDEX_JSON, meta)
    # Keep the generation just replaced (a reader may be opening it); remove older ones.
    keep = {faiss_name, ids_name}
    if previous:
        keep |= {f["name"] for f in previous.get("files", {}).values()}
    for path in index_dir.glob("*.*.faiss"):
        if path.name not in keep:
            path.unlink(missing_ok=True)
    for path in index_dir.glob("ids.*.npy"):
        if path.name not in keep:
            path.unlink(missing_ok=True)
    return meta


def _no_list_prefetch(index: Any) -> None:
    """Memory-mapped inverted lists come as OnDiskInvertedLists, which start 32 threads per
    search to touch the probed lists' pages ahead of the scan. On pages already in the page cache
    that only competes with the scan: 1M vectors, nprobe 500, one query 12.7 -> 8.4 ms."""
    import faiss

    lists = faiss.extract_index_ivf(index).invlists
    if lists is not None:
        lists = faiss.downcast_InvertedLists(lists)
        if hasattr(lists, "prefetch_nthread"):
            lists.prefetch_nthread = 0


@dataclass
class VectorIndex:
    """An opened generation: FAISS index (memory-mapped) plus the catalog id of each vector."""

    meta: dict[str, Any]
    faiss_index: Any
    ids: np.ndarray

    @classmethod
    def open(cls, index_dir: Path, *, verify_full: bool = False) -> VectorIndex:
        import faiss

        index_dir = Path(index_dir)
        for _attempt in range(5):
            meta = read_meta(index_dir)
            try:
                files = meta["files"]
                vec_path = index_dir / files["vectors"]["name"]
                ids_path = index_dir / files["ids"]["name"]
                check_file(vec_path, files["vectors"], full=verify_full)
                check_file(ids_path, files["ids"], full=verify_full)
                flag = faiss.IO_FLAG_MMAP_IFC if meta["type"] == "flat" else faiss.IO_FLAG_MMAP
                flag |= faiss.IO_FLAG_READ_ONLY
                index = faiss.read_index(str(vec_path), flag)
                ids = np.load(ids_path, mmap_mode="r", allow_pickle=False)
            except FileNotFoundError:
                time.sleep(0.05)  # a writer replaced this generation meanwhile: read again
                continue
            except (KeyError, TypeError) as exc:
                raise IndexCorrupt(f"{index_dir / INDEX_JSON} is malformed ({exc!r})") from exc
            except (RuntimeError, ValueError, OSError) as exc:
                raise IndexCorrupt(f"cannot open the index in {index_dir}: {exc}") from exc
            if index.ntotal != len(ids) or index.ntotal != meta["count"]:
                raise IndexCorrupt(f"the index in {index_dir} is inconsistent (vector count)")
            if meta.get("nprobe") and hasattr(index, "nprobe"):
                index.nprobe = int(meta["nprobe"])
            if meta["type"] != "flat":
                _no_list_prefetch(index)
            return cls(meta, index, ids)
        raise IndexCorrupt(f"the index in {index_dir} keeps changing under us; try again")

    @property
    def count(self) -> int:
        return int(self.faiss_index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, catalog ids) per query row; ids are -1 where fewer than k exist."""
        import faiss

        k = max(1, min(k, self.count))
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if len(queries) >= SERIAL_BELOW:
            scores, pos = self.faiss_index.search(queries, k)
        else:
            # A few queries gain nothing from OpenMP's threads and can lose a lot waiting for them
            # on a busy machine. The setting is per calling thread, restored after.
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                scores, pos = self.faiss_index.search(queries, k)
            finally:
                faiss.omp_set_num_threads(threads)
        ids = np.where(pos >= 0, self.ids[np.clip(pos, 0, None)], -1)
        return scores, ids
