"""`clipsearch import`: merging embedding shards computed elsewhere into an index."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from clipsearch_onnx import models, shards
from clipsearch_onnx.catalog import NewItem
from clipsearch_onnx.index import DEFAULT_IVF_THRESHOLD
from clipsearch_onnx.manifest import Manifest
from clipsearch_onnx.writer import Writer


@dataclass
class ImportReport:
    shards: int = 0
    items: int = 0
    count: int = 0


def import_shards(
    index_dir: Path,
    shard_dirs: Sequence[Path],
    manifest: Manifest | Path | None,
    *,
    precision: str | None = None,
    index_type: str = "auto",
    ivf_threshold: int = DEFAULT_IVF_THRESHOLD,
    progress: Callable[[str, int], None] = lambda stage, total: None,
    advance: Callable[[int], None] = lambda n: None,
) -> ImportReport:
    """Places each shard in the index (hard links where possible), registers its items (a path
    already present is replaced), and publishes. Every shard is validated before anything is
    written. `manifest`: the model (or its folder) the shards came from (None: the index's own,
    see `models.resolve`)."""
    report = ImportReport()
    with Writer(Path(index_dir)) as writer:
        recorded = models.record_from_meta(writer.catalog.meta())
        model = models.resolve(manifest, precision, recorded, default=False)
        writer.bind(model)
        validated = [(d, shards.read_shard(d, model.manifest.embedding_dim)) for d in shard_dirs]
        writer.mark_unpublished()
        progress("importing", sum(len(items) for _, (_, items) in validated))
        for source, (_emb, items) in validated:
            name = writer.adopt_shard(source)
            rows = [
                NewItem(
                    str(item["path"]),
                    item.get("size"),
                    item.get("mtime_ns"),
                    item.get("sha256"),
                    item.get("captions", []),
                    row,
                )
                for row, item in enumerate(items)
            ]
            writer.catalog.commit_shard(name, rows, replaced=[r.path for r in rows])
            report.shards += 1
            report.items += len(rows)
            advance(len(rows))
        progress("publishing", writer.catalog.count())
        writer.publish(index_type=index_type, ivf_threshold=ivf_threshold, progress=advance)
        report.count = writer.catalog.count()
    return report
