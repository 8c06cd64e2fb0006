"""`clipsearch import`: merging embedding shards computed elsewhere into an index.

Shards are taken one at a time and never read whole: validation reads items.jsonl line by line
and the embeddings in chunks, the files are hard-linked into the index (copied only across file
systems), and the catalog rows are streamed from the placed copy. A job folder (shards written by
`embed-shards` or any other driver) is taken shard by shard; a shard without its `shard.json`
is still being written and is left for a later import.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipsearch_onnx import models, shards
from clipsearch_onnx.catalog import NewItem
from clipsearch_onnx.errors import ModelError
from clipsearch_onnx.index import DEFAULT_IVF_THRESHOLD, Progress
from clipsearch_onnx.manifest import Manifest
from clipsearch_onnx.writer import Writer


@dataclass
class ImportReport:
    shards: int = 0
    items: int = 0
    count: int = 0
    already: int = 0  # shards of a job imported before (same shard.json), left alone
    unfinished: list[Path] = field(default_factory=list)  # job shards without shard.json


def find_shards(sources: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """(shards, unfinished) named by `sources`: each is a shard folder, or a job folder whose
    subfolders are shards; a job's shard without its `shard.json` is unfinished."""
    found: list[Path] = []
    unfinished: list[Path] = []
    for source in map(Path, sources):
        if (source / shards.EMBEDDINGS).exists() or not source.is_dir():
            found.append(source)  # a shard, or something check_shard will name
            continue
        members = sorted(
            p
            for p in source.iterdir()
            if not p.name.startswith(".")
            and ((p / shards.EMBEDDINGS).exists() or (p / shards.DONE).exists())
        )
        if not members:
            found.append(source)  # neither a shard nor a job: check_shard says so
        for member in members:
            (found if (member / shards.DONE).exists() else unfinished).append(member)
    return found, unfinished


def shard_root(shard: Path, root: Path | None) -> str | None:
    """The folder a shard's relative paths are relative to: `root` (--root), else the "root" a
    job's shard.json or job.json records (where the driver saw the photos)."""
    if root is not None:
        return str(Path(root).expanduser().absolute())
    for record in (shard / shards.DONE, shard.parent / "job.json"):
        try:
            found = json.loads(record.read_text(encoding="utf-8")).get("root")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(found, str) and os.path.isabs(found):
            return found
    return None


def job_model(found: Sequence[Path]) -> models.ModelRecord | None:
    """The model the first job among `found` records in its job.json (`embed-shards`)."""
    for shard in found:
        try:
            data = json.loads((shard.parent / "job.json").read_text(encoding="utf-8"))
            return models.ModelRecord.from_json(data["model"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def check_model(shard: Path, model: models.Model) -> None:
    """Refuses a job shard whose shard.json records another model or precision."""
    try:
        done = json.loads((shard / shards.DONE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(done, dict) or "model" not in done:
        return
    if (done["model"], done.get("precision")) != (model.manifest.fingerprint, model.precision):
        raise ModelError(
            f"{shard} was embedded with another model or precision ({done.get('precision')}, "
            f"model {str(done['model'])[:12]}) than {model.manifest.model_dir} "
            f"({model.precision}, model {model.manifest.fingerprint[:12]}): its vectors would "
            "not be comparable; import it with its own model, into another index"
        )


def origin(shard: Path) -> str | None:
    """A job shard's identity: the digest of its shard.json (None for a bare shard)."""
    try:
        return hashlib.sha256((shard / shards.DONE).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def import_shards(
    index_dir: Path,
    sources: Sequence[Path],
    manifest: Manifest | Path | None,
    *,
    precision: str | None = None,
    index_type: str = "auto",
    ivf_threshold: int = DEFAULT_IVF_THRESHOLD,
    progress: Callable[[str, int], None] = lambda stage, total: None,
    advance: Callable[[int], None] = lambda n: None,
    memory: int | None = None,
    root: Path | None = None,
) -> ImportReport:
    """Places each shard in the index, registers its items (a path already present is replaced),
    and publishes. Every shard is validated before anything is written. `sources`: shard or job
    folders. `manifest`: the model (or its folder) the shards came from (None: the index's own,
    else the one a job records, see `job_model`); a job shard that records another model is
    refused. `memory`: bytes publishing may hold in flight (see `Writer.publish`).
    Relative item paths are taken relative to `root` (see `shard_root`)."""
    report = ImportReport()
    found, report.unfinished = find_shards(sources)
    with Writer(Path(index_dir)) as writer:
        recorded = models.record_from_meta(writer.catalog.meta())
        if manifest is None and recorded is None:
            recorded = job_model(found)  # a new index takes the model the job was embedded with
        model = models.resolve(manifest, precision, recorded, default=False)
        writer.bind(model)
        dim = model.manifest.embedding_dim
        checked = []
        for shard in found:
            made = origin(shard)
            if made is not None and writer.catalog.has_origin(made):
                report.already += 1
                continue
            check_model(shard, model)
            base = shard_root(shard, root)
            checked.append(
                (shard, made, shards.check_shard(shard, dim, relative_ok=bool(base)), base)
            )
        writer.mark_unpublished()
        progress("importing", sum(rows for _, _, rows, _ in checked))
        for source, made, rows, base in checked:
            name = writer.adopt_shard(source)
            items = _new_items(shards.iter_items(writer.shard_path(name)), base)
            writer.catalog.commit_shard(name, items, replace_all=True, origin=made, expect=rows)
            report.shards += 1
            report.items += rows
            advance(rows)
        published = writer.publish(
            index_type=index_type,
            ivf_threshold=ivf_threshold,
            progress=Progress(start=progress, advance=advance),  # sampling, encoding, merging
            memory=memory,
        )
        report.count = int(published["count"])  # (the catalog's rows: counting them is O(N))
    return report


def _new_items(lines: Iterator[dict[str, Any]], base: str | None) -> Iterator[NewItem]:
    for row, item in enumerate(lines):
        path = str(item["path"])
        yield NewItem(
            os.path.normpath(os.path.join(base, path)) if base else path,
            item.get("size"),
            item.get("mtime_ns"),
            item.get("sha256"),
            item.get("captions", []),
            row,
            item.get("width"),
            item.get("height"),
            item.get("taken"),
            item.get("fingerprint"),
        )
