"""`clipsearch import`: merging embedding shards computed elsewhere into an index."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from clipsearch_onnx import collection, models, shards
from clipsearch_onnx.catalog import Catalog, NewItem
from clipsearch_onnx.index import DEFAULT_IVF_THRESHOLD
from clipsearch_onnx.lock import WriteLock
from clipsearch_onnx.manifest import Manifest


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
    """Copies each shard into the index, registers its items (a path already present is
    replaced), and publishes. Every shard is validated before anything is written. `manifest`:
    the model (or its folder) the shards came from (None: the index's own, see `models.resolve`)."""
    index_dir = Path(index_dir)
    report = ImportReport()
    with WriteLock(index_dir):
        catalog = Catalog.open(index_dir, create=True)
        try:
            recorded = models.record_from_meta(catalog.meta())
            model = models.resolve(manifest, precision, recorded, default=False)
            models.bind(catalog, model)
            collection.clean_leftovers(index_dir, catalog)
            collection.mark_unpublished(catalog)
            validated = [
                (d, shards.read_shard(d, model.manifest.embedding_dim)) for d in shard_dirs
            ]
            progress("importing", sum(len(items) for _, (_, items) in validated))
            for source, (_emb, items) in validated:
                name = collection.new_shard_name()
                dest = index_dir / collection.SHARDS / name
                tmp = dest.with_name(f".tmp-{name}")
                shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(".*"))
                tmp.rename(dest)
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
                catalog.commit_shard(name, rows, replaced=[r.path for r in rows])
                report.shards += 1
                report.items += len(rows)
                advance(len(rows))
            progress("publishing", catalog.count())
            collection.publish_catalog(
                index_dir,
                catalog,
                index_type=index_type,
                ivf_threshold=ivf_threshold,
                progress=advance,
            )
            report.count = catalog.count()
        except (OSError, sqlite3.OperationalError) as exc:
            raise collection.write_failed(index_dir, exc) from exc
        finally:
            catalog.close()
    return report
