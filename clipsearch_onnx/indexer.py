"""Indexing a folder of images: scan, embed in batches, commit each batch, publish the index.

A run can be killed at any moment. Each checkpoint (a few hundred images) is written as a shard
and committed to the catalog in one transaction; the next run skips whatever is committed, so
nothing is lost or embedded twice. A second run embeds only new and changed files, re-points
moved ones (same content hash) and drops deleted ones.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipsearch_onnx import models
from clipsearch_onnx.captions import captions_for, read_captions
from clipsearch_onnx.catalog import Item, NewItem
from clipsearch_onnx.encoder import Encoder
from clipsearch_onnx.errors import ImageError, InputError
from clipsearch_onnx.index import DEFAULT_IVF_THRESHOLD
from clipsearch_onnx.pipeline import decoded_batches
from clipsearch_onnx.scan import Found, scan
from clipsearch_onnx.writer import Writer


@dataclass
class IndexReport:
    count: int = 0  # images in the index after the run
    added: int = 0
    changed: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    caption_warnings: list[str] = field(default_factory=list)
    leftovers_cleaned: int = 0
    embedded: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0


@dataclass
class Progress:
    """Callbacks through which a run reports; the CLI draws them on stderr."""

    start: Callable[[str, int], None] = lambda stage, total: None
    advance: Callable[[int], None] = lambda n: None
    skip: Callable[[str, str], None] = lambda path, reason: None


def _sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


class Indexer:
    def __init__(
        self,
        index_dir: Path,
        encoder: Encoder,
        *,
        batch_size: int = 32,
        checkpoint: int = 256,
        index_type: str = "auto",
        ivf_threshold: int = DEFAULT_IVF_THRESHOLD,
        workers: int = 2,
        progress: Progress | None = None,
    ):
        self.index_dir = Path(index_dir)
        self.encoder = encoder
        self.batch_size = max(1, batch_size)
        self.checkpoint = max(self.batch_size, checkpoint)
        self.index_type = index_type
        self.ivf_threshold = ivf_threshold
        self.workers = max(1, workers)
        self.progress = progress or Progress()

    def run(self, root: Path, captions: Path | None = None, rebuild: bool = False) -> IndexReport:
        root = Path(root).expanduser().absolute()
        if not root.is_dir():
            raise InputError(f"{root} is not a folder")
        caption_map, warnings = read_captions(captions) if captions else ({}, [])
        started = time.monotonic()
        report = IndexReport(caption_warnings=warnings)
        with Writer(self.index_dir, rebuild=rebuild, purpose=str(root)) as writer:
            writer.bind(models.Model(self.encoder.manifest, self.encoder.precision))
            report.leftovers_cleaned = writer.leftovers_cleaned
            writer.mark_unpublished()
            self._update(root, writer, caption_map, report)
            self.progress.start("publishing", writer.catalog.count())
            writer.publish(
                index_type=self.index_type,
                ivf_threshold=self.ivf_threshold,
                progress=self.progress.advance,
            )
            report.count = writer.catalog.count()
        report.seconds = time.monotonic() - started
        return report

    def _update(
        self, root: Path, writer: Writer, caption_map: dict[str, list[str]], report: IndexReport
    ) -> None:
        catalog = writer.catalog
        known = catalog.items_under(str(root))
        found: list[Found] = []
        for entry in scan(root):
            if isinstance(entry, Found):
                found.append(entry)
            else:
                report.skipped.append(entry)
                self.progress.skip(*entry)
        catalog.record_skipped(report.skipped)
        seen = {f.path for f in found}
        gone = {p: item for p, item in known.items() if p not in seen}
        todo: list[Found] = []
        caption_changes = []
        for f in found:
            old = known.get(f.path)
            caps = captions_for(f.relpath, caption_map)
            if old is not None and (old.size, old.mtime_ns) == (f.size, f.mtime_ns):
                report.unchanged += 1
                if old.captions != caps:
                    caption_changes.append((f.path, caps))
            else:
                todo.append(f)
        catalog.update_captions(caption_changes)

        # Moves and renames: a new path whose content matches a vanished one keeps its embedding.
        if gone:
            gone_by_sha = {item.sha256: item for item in gone.values() if item.sha256}
            moves: list[tuple[Item, NewItem]] = []
            rest = []
            for f in todo:
                digest = _sha256(f.path) if f.path not in known else None
                old = gone_by_sha.pop(digest, None) if digest else None
                if old is None:
                    rest.append(f)
                    continue
                caps = captions_for(f.relpath, caption_map)
                moves.append((old, NewItem(f.path, f.size, f.mtime_ns, digest, caps, old.row)))
                del gone[old.path]
            catalog.move(moves)
            report.moved = len(moves)
            todo = rest

        self._embed(todo, known, writer, caption_map, report)
        catalog.remove(gone)
        report.removed = len(gone)
        catalog.drop_skipped_under(str(root), keep=[p for p, _ in report.skipped])

    def _embed(
        self,
        todo: list[Found],
        known: dict[str, Item],
        writer: Writer,
        caption_map: dict[str, list[str]],
        report: IndexReport,
    ) -> None:
        self.progress.start("embedding", len(todo))
        pending: list[NewItem] = []
        vectors: list[np.ndarray] = []
        skipped: list[tuple[str, str]] = []
        resolved: list[str] = []

        def commit() -> None:
            if not pending and not skipped:
                return
            emb = (
                np.concatenate(vectors) if vectors else np.zeros((0, self.encoder.dim), np.float32)
            )
            name = writer.add_shard(
                emb,
                [
                    {
                        "path": i.path,
                        "captions": list(i.captions),
                        "size": i.size,
                        "mtime_ns": i.mtime_ns,
                        "sha256": i.sha256,
                    }
                    for i in pending
                ],
            )
            writer.catalog.commit_shard(
                name,
                pending,
                # A changed file that no longer decodes loses its old embedding too.
                replaced=[i.path for i in pending if i.path in known]
                + [p for p, _ in skipped if p in known],
                skipped=skipped,
                resolved=resolved,
            )
            pending.clear()
            vectors.clear()
            skipped.clear()
            resolved.clear()

        try:
            for batch in decoded_batches(
                todo, lambda f: f.path, self.encoder.preprocess, self.batch_size, self.workers
            ):
                good: list[tuple[Found, str, np.ndarray]] = []
                for f, outcome in batch:
                    if isinstance(outcome, ImageError):
                        skipped.append((f.path, outcome.reason))
                        report.skipped.append((f.path, outcome.reason))
                        self.progress.skip(f.path, outcome.reason)
                    else:
                        good.append((f, outcome.sha256, outcome.pixels))
                if good:
                    emb = self.encoder.embed_pixels(np.stack([g[2] for g in good]))
                    for f, digest, _ in good:
                        row = len(pending)
                        caps = captions_for(f.relpath, caption_map)
                        pending.append(NewItem(f.path, f.size, f.mtime_ns, digest, caps, row))
                        resolved.append(f.path)
                        if f.path in known:
                            report.changed += 1
                        else:
                            report.added += 1
                    vectors.append(emb)
                    report.embedded += len(good)
                self.progress.advance(len(batch))
                if len(pending) >= self.checkpoint:
                    commit()
        finally:
            commit()  # keep finished work even when interrupted
