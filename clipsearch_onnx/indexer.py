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
from typing import Any

import numpy as np

from clipsearch_onnx import models
from clipsearch_onnx.captions import captions_for, read_captions
from clipsearch_onnx.catalog import NewItem
from clipsearch_onnx.diff import FolderDiff, Todo
from clipsearch_onnx.encoder import Encoder
from clipsearch_onnx.errors import ImageError, InputError
from clipsearch_onnx.index import DEFAULT_IVF_THRESHOLD
from clipsearch_onnx.index import Progress as PublishProgress
from clipsearch_onnx.pipeline import BULK_DECODING, decoded_batches, read_facts
from clipsearch_onnx.scan import scan
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
        decoding: str = BULK_DECODING,
        progress: Progress | None = None,
    ):
        self.index_dir = Path(index_dir)
        self.encoder = encoder
        self.batch_size = max(1, batch_size)
        self.checkpoint = max(self.batch_size, checkpoint)
        self.index_type = index_type
        self.ivf_threshold = ivf_threshold
        self.workers = max(1, workers)
        self.decoding = decoding
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
            published = writer.publish(
                index_type=self.index_type,
                ivf_threshold=self.ivf_threshold,
                progress=PublishProgress(self.progress.start, self.progress.advance),
            )
            report.count = int(published["count"])  # the catalog's live rows
        report.seconds = time.monotonic() - started
        return report

    def _update(
        self, root: Path, writer: Writer, caption_map: dict[str, list[str]], report: IndexReport
    ) -> None:
        writer.catalog.add_root(str(root))
        diff = FolderDiff(writer.catalog, str(root))
        try:
            self.progress.start("scanning", 0)
            for path, reason in diff.load(scan(root)):
                report.skipped.append((path, reason))
                self.progress.skip(path, reason)
            report.unchanged = diff.count_unchanged()
            diff.update_captions(caption_map)
            report.moved = diff.apply_moves(_sha256, caption_map)
            self.progress.start("reading sizes", diff.count_missing_facts())
            diff.backfill_facts(_facts, self.progress.advance)
            self._embed(diff, writer, caption_map, report)
            report.removed = diff.remove_gone()
        finally:
            diff.close()

    def _embed(
        self,
        diff: FolderDiff,
        writer: Writer,
        caption_map: dict[str, list[str]],
        report: IndexReport,
    ) -> None:
        self.progress.start("embedding", diff.count_todo())
        pending: list[NewItem] = []
        vectors: list[np.ndarray] = []
        skipped: list[tuple[str, str]] = []
        lost: list[str] = []  # changed files that no longer decode lose their old embedding

        def commit() -> None:
            if not pending and not skipped:
                return
            emb = (
                np.concatenate(vectors) if vectors else np.zeros((0, self.encoder.dim), np.float32)
            )
            name = writer.add_shard(emb, [shard_line(i) for i in pending])
            writer.catalog.commit_shard(
                name,
                pending,
                replace_all=True,
                replaced=lost,
                skipped=skipped,
                resolved=[i.path for i in pending],
            )
            diff.note_skipped(p for p, _ in skipped)
            for target in (pending, vectors, skipped, lost):
                target.clear()

        try:
            for batch in decoded_batches(
                diff.todo(),
                lambda t: t.path,
                self.encoder.preprocess,
                self.batch_size,
                self.workers,
                self.decoding,
            ):
                good: list[tuple[Todo, Any]] = []
                for todo, outcome in batch:
                    if isinstance(outcome, ImageError):
                        skipped.append((todo.path, outcome.reason))
                        report.skipped.append((todo.path, outcome.reason))
                        self.progress.skip(todo.path, outcome.reason)
                        if todo.known:
                            lost.append(todo.path)
                    else:
                        good.append((todo, outcome))
                if good:
                    emb = self.encoder.embed_pixels(np.stack([o.pixels for _, o in good]))
                    for todo, outcome in good:
                        caps = captions_for(todo.relpath, caption_map)
                        facts = outcome.facts
                        pending.append(
                            NewItem(
                                todo.path, todo.size, todo.mtime_ns, outcome.sha256, caps,
                                len(pending), facts.width, facts.height, facts.taken,
                                outcome.fingerprint,
                            )
                        )  # fmt: skip
                        if todo.known:
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


def shard_line(item: NewItem) -> dict[str, Any]:
    """An item as a line of the shard's items.jsonl (the format `clipsearch import` reads)."""
    line = {
        "path": item.path,
        "captions": list(item.captions),
        "size": item.size,
        "mtime_ns": item.mtime_ns,
        "sha256": item.sha256,
    }
    for key in ("width", "height", "taken", "fingerprint"):
        if getattr(item, key) is not None:
            line[key] = getattr(item, key)
    return line


def _facts(path: str) -> tuple[int, int, str | None] | None:
    """(width, height, taken) from the file's header; None if it cannot be read."""
    try:
        facts = read_facts(path)
    except ImageError:
        return None
    return facts.width, facts.height, facts.taken
