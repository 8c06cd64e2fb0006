"""An index folder as a whole: its catalog, its shards and its published vectors.

Layout of an index folder:
    catalog.sqlite   every image: path, size, mtime, sha256, captions, (shard, row); the model
                     record (meta "model", see `models`)
    shards/NAME/     committed embedding batches (see `shards`)
    index.json       the current generation: FAISS file, ids file, checksums
    vectors.G.faiss, ids.G.npy
    write.lock       held by the one writer
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch_onnx import index as vector_index
from clipsearch_onnx import models, shards
from clipsearch_onnx.catalog import Catalog
from clipsearch_onnx.encoder import Encoder
from clipsearch_onnx.errors import IndexCorrupt, IndexError_
from clipsearch_onnx.manifest import Manifest
from clipsearch_onnx.settings import Settings

SHARDS = "shards"


def new_shard_name() -> str:
    return f"{time.time_ns():x}-{uuid.uuid4().hex[:6]}"


def clean_leftovers(index_dir: Path, catalog: Catalog) -> int:
    """Removes what a killed run left behind: shard folders never committed, temporary files.
    Returns how many shard folders were removed."""
    shard_dir = index_dir / SHARDS
    known = set(catalog.shard_names().values())
    removed = 0
    if shard_dir.is_dir():
        for path in shard_dir.iterdir():
            if path.name not in known:
                shutil.rmtree(path, ignore_errors=True)
                removed += not path.name.startswith(".tmp-")
    for path in index_dir.glob(".*.tmp*"):
        path.unlink(missing_ok=True)
    return removed


def check_model(catalog: Catalog, manifest: Manifest, precision: str) -> None:
    """Refuses to mix embeddings of different models or precisions in one index."""
    models.bind(catalog, models.Model(manifest, precision))


def recorded_encoder(settings: Settings) -> Encoder:
    """The encoder to add to an index with (see `models.for_writing`)."""
    return models.for_writing(settings, settings.resolved_index_dir()).encoder(settings.threads)


def mark_unpublished(catalog: Catalog) -> None:
    """Records that the catalog is about to change ahead of the published vectors, so a searcher
    knows that vectors without a catalog row are files an unfinished run replaced or removed
    (not damage) until `publish_catalog` runs."""
    catalog.set_meta(unpublished="1")


def rows_may_be_missing(catalog: Catalog, generation: int) -> bool:
    """True when vectors of `generation` may legitimately lack catalog rows: a run changed the
    catalog after publishing it (and may have been killed), or a newer generation exists. A
    catalog older than the generation (it lost commits) is damaged."""
    meta = catalog.meta()
    published = int(meta.get("generation") or 0)
    return published > generation or (published == generation and meta.get("unpublished") == "1")


def publish_catalog(
    index_dir: Path,
    catalog: Catalog,
    *,
    index_type: str = "auto",
    ivf_threshold: int = vector_index.DEFAULT_IVF_THRESHOLD,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Builds the FAISS index from every catalogued embedding and makes it current."""
    record = models.record_from_meta(catalog.meta())
    dim = record.dim if record is not None else 0
    placements = catalog.placements()
    names = catalog.shard_names()
    ids = np.fromiter((p[0] for p in placements), dtype=np.int64, count=len(placements))
    vectors = np.empty((len(placements), dim), dtype=np.float32)
    by_shard: dict[int, list[tuple[int, int]]] = {}
    for pos, (_, shard, row) in enumerate(placements):
        by_shard.setdefault(shard, []).append((pos, row))
    for shard_id, pairs in by_shard.items():
        path = index_dir / SHARDS / names[shard_id]
        try:
            emb = shards.load_embeddings(path)
            pos, rows = np.array(pairs).T
            vectors[pos] = emb[rows]
        except (OSError, ValueError, IndexError) as exc:
            raise IndexCorrupt(
                f"embedding shard {path} is damaged ({exc}); rebuild with --rebuild"
            ) from exc
    kind = vector_index.choose_type(index_type, len(placements), ivf_threshold)
    published = vector_index.publish(
        index_dir,
        vectors,
        ids,
        kind=kind,
        info={},  # the model is recorded once, in the catalog (models.bind)
        progress=progress,
        before_switch=lambda generation: catalog.set_meta(generation=str(generation)),
    )
    catalog.set_meta(unpublished="0")
    for name in catalog.drop_unused_shards():
        shutil.rmtree(index_dir / SHARDS / name, ignore_errors=True)
    return published


def write_failed(index_dir: Path, exc: Exception) -> IndexError_:
    """The error for a write that failed (disk full, read-only folder, ...) part-way through a
    run: it says what still stands, since every step before publishing leaves that intact."""
    try:
        state = (
            f"searches still use the last complete index "
            f"({vector_index.read_meta(index_dir).get('count')} images)"
        )
    except IndexError_:
        state = "no index has been published there yet"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return IndexError_(
        f"could not write to the index in {index_dir}: {reason}; {state}, and finished batches "
        "are kept: fix the cause and run the same command again"
    )


def wipe(index_dir: Path) -> None:
    """Removes an index folder's contents (for --rebuild); refuses folders that are not indexes."""
    if not index_dir.exists():
        return
    ours = {
        "catalog.sqlite",
        "catalog.sqlite-wal",
        "catalog.sqlite-shm",
        "index.json",
        SHARDS,
        "write.lock",
    }
    for path in index_dir.iterdir():
        if path.name in ours or path.name.startswith(("vectors.", "ids.", ".")):
            if path.is_dir():
                shutil.rmtree(path)
            elif path.name != "write.lock":
                path.unlink()
