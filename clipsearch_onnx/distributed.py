"""Embedding one partition of a job (`jobs.py`) into its import shard: the plain function every
engine drives (`clipsearch embed-shards` in this process, `ray_job.py` on Ray actors, Slurm or
Dask through `embed-shards --partition I`), over the one way from file to vector
(`pipeline.decoded_batches`) and the one shard writer (`shards.write_shard`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clipsearch_onnx import shards
from clipsearch_onnx.errors import ImageError
from clipsearch_onnx.jobs import FORMAT, Job, Partition, is_done, load_partition

if TYPE_CHECKING:
    from clipsearch_onnx.encoder import Encoder

# Test hook (tests/test_dist.py): "NAME:MARKER" makes the first attempt at partition NAME end
# its process (as a crashed worker does) after creating the file MARKER; later attempts, which
# find MARKER, run normally.
CRASH_ONCE = "CLIPSEARCH_TEST_CRASH_ONCE"


@dataclass
class PartitionResult:
    name: str
    files: int
    rows: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    already: bool = False  # finished before: nothing was embedded


def encoder_for(job: Job, threads: int | None = None, backend: str | None = None) -> Encoder:
    """The job's model, loaded from the folder job.json records and checked to be the same."""
    from clipsearch_onnx import models

    record = job.record()
    model = models.resolve(Path(record.dir), record.precision, None)
    models.check(record, model, job.out)
    return model.encoder(threads, backend=backend)


def embed_partition(
    job: Job,
    part: Partition,
    encoder: Encoder,
    *,
    root: str | None = None,
    batch_size: int = 32,
    workers: int = 2,
    decoding: str | None = None,
) -> PartitionResult:
    """Embeds one partition and writes it as a shard under its name, unless it is finished
    already. `root`: where this worker sees the job's root (default: where the driver did);
    `decoding`: pipeline.FAST or REFERENCE (default: the bulk commands' own, BULK_DECODING).
    Files that cannot be embedded are listed in the result and in shard.json."""
    from clipsearch_onnx.catalog import NewItem
    from clipsearch_onnx.indexer import shard_line
    from clipsearch_onnx.pipeline import BULK_DECODING, decoded_batches

    result = PartitionResult(part.name, len(part.paths))
    dest = job.out / part.name
    if is_done(job, part.name):
        result.already = True
        return result
    _crash_once(part.name)
    base = root or job.root
    items: list[dict[str, Any]] = []
    vectors: list[np.ndarray] = []
    for batch in decoded_batches(
        part.paths,
        lambda rel: os.path.join(base, rel),
        encoder.preprocess,
        batch_size,
        workers,
        decoding or BULK_DECODING,
    ):
        good = []
        for rel, outcome in batch:
            if isinstance(outcome, ImageError):
                result.failures.append((rel, outcome.reason))
            else:
                good.append((rel, outcome))
        if not good:
            continue
        vectors.append(encoder.embed_pixels(np.stack([o.pixels for _, o in good])))
        for rel, loaded in good:
            st = _stat(os.path.join(base, rel))
            facts = loaded.facts
            item = NewItem(
                rel, st and st.st_size, st and st.st_mtime_ns, loaded.sha256,
                part.captions.get(rel, []), len(items), facts.width, facts.height, facts.taken,
                loaded.fingerprint,
            )  # fmt: skip
            items.append(shard_line(item))
    result.rows = len(items)
    done = {
        "format": FORMAT,
        "partition": part.name,
        "root": job.root,
        "model": job.model["fingerprint"],
        "precision": job.model["precision"],
        "rows": result.rows,
        "failures": [{"path": p, "reason": r} for p, r in result.failures],
    }
    emb = np.concatenate(vectors) if vectors else np.zeros((0, encoder.dim), np.float32)
    try:
        shards.write_shard(dest, emb, items, done=done)
    except OSError:
        if not is_done(job, part.name):
            raise
        result.already = True  # another attempt finished it first: its shard stands
    return result


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _crash_once(name: str) -> None:
    hook = os.environ.get(CRASH_ONCE, "")
    target, _, marker = hook.partition(":")
    if target != name or not marker:
        return
    try:
        with open(marker, "x"):
            pass
    except FileExistsError:
        return
    os._exit(70)


def run_in_process(
    job: Job,
    encoder: Encoder,
    which: Sequence[int] | None = None,
    *,
    batch_size: int = 32,
    workers: int = 2,
    root: str | None = None,
    decoding: str | None = None,
) -> Iterator[PartitionResult]:
    """Embeds the partitions `which` (default: all) one after another in this process."""
    for index in range(len(job.names)) if which is None else which:
        if is_done(job, job.names[index]):
            yield PartitionResult(job.names[index], job.counts[index], already=True)
            continue
        part = load_partition(job, index)
        yield embed_partition(
            job, part, encoder, root=root, batch_size=batch_size, workers=workers,
            decoding=decoding,
        )  # fmt: skip
