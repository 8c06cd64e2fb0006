"""Embedding a folder as a job of partitions, each written as an import shard: the plain functions
any engine drives (`clipsearch embed-shards` runs them in-process or on Ray, see `ray_job.py`;
Slurm or Dask can call `embed-shards --partition I` once per partition).

A job folder holds:
    job.json                 the embedded root, the model's identity (models.ModelRecord), the
                             partition size and the plan: each partition's name and file count
    plan/NAME.json           one partition's files (relative to the root, '/'-separated) and
                             their captions, read by whichever worker embeds it
    NAME/                    a finished partition: an import shard (embeddings.npy, items.jsonl)
                             and its shard.json (rows, files that could not be embedded), all
                             renamed into place at once

Partitions are consecutive runs of the sorted relative paths; a partition's name is its ordinal
and a hash of its paths, so the same files give the same names and a rerun skips every partition
whose folder exists. Item paths are relative to the root (`clipsearch import` resolves them
against the root job.json records, or --root), so workers may mount the photos elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clipsearch_onnx import shards
from clipsearch_onnx.errors import ImageError, InputError, ModelError

if TYPE_CHECKING:
    from clipsearch_onnx.encoder import Encoder
    from clipsearch_onnx.models import Model, ModelRecord

JOB = "job.json"
PLAN = "plan"
DEFAULT_PARTITION_SIZE = 1000
FORMAT = 1
# Test hook (tests/test_dist.py): "NAME:MARKER" makes the first attempt at partition NAME end
# its process (as a crashed worker does) after creating the file MARKER; later attempts, which
# find MARKER, run normally.
CRASH_ONCE = "CLIPSEARCH_TEST_CRASH_ONCE"


@dataclass(frozen=True)
class Partition:
    index: int
    name: str
    paths: list[str]  # relative to the job's root
    captions: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    out: Path
    root: str  # absolute, where the driver saw the photos
    model: dict[str, Any]  # models.ModelRecord.to_json()
    partition_size: int
    names: list[str]  # partition names in order
    counts: list[int]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # found while scanning

    @property
    def images(self) -> int:
        return sum(self.counts)

    def record(self) -> ModelRecord:
        from clipsearch_onnx.models import ModelRecord

        return ModelRecord.from_json(self.model)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "root": self.root,
            "model": self.model,
            "partition_size": self.partition_size,
            "partitions": [
                {"name": n, "files": c} for n, c in zip(self.names, self.counts, strict=True)
            ],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }


@dataclass
class PartitionResult:
    name: str
    files: int
    rows: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    already: bool = False  # finished before: nothing was embedded


def partition_name(index: int, paths: Sequence[str]) -> str:
    digest = hashlib.sha256("\n".join(paths).encode("utf-8", "surrogateescape")).hexdigest()
    return f"part-{index:05d}-{digest[:16]}"


def plan(
    root: Path, partition_size: int, captions: dict[str, list[str]] | None = None
) -> tuple[list[Partition], list[tuple[str, str]]]:
    """The partitions of every image below `root`, and the entries that are not readable
    image files (path, reason)."""
    from clipsearch_onnx.captions import captions_for
    from clipsearch_onnx.scan import Found, scan

    if partition_size < 1:
        raise InputError("--partition-size must be at least 1")
    found: list[str] = []
    skipped: list[tuple[str, str]] = []
    for entry in scan(root):
        if isinstance(entry, Found):
            found.append(entry.relpath)
        else:
            skipped.append(entry)
    found.sort()
    partitions = []
    for index, start in enumerate(range(0, len(found), partition_size)):
        paths = found[start : start + partition_size]
        caps = {p: c for p in paths if (c := captions_for(p, captions or {}))}
        partitions.append(Partition(index, partition_name(index, paths), paths, caps))
    return partitions, skipped


def _write_json(path: Path, data: Any) -> None:
    """Writes JSON so that readers see the old file or the new one, never part of one."""
    tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)  # ASCII: a skipped name may not be valid UTF-8
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def start_job(
    out: Path,
    root: Path,
    model: Model,
    partition_size: int | None = None,
    captions: dict[str, list[str]] | None = None,
    *,
    replan: bool = True,
) -> Job:
    """Plans the job and writes its plan (job.json last). A job folder started with another
    model or root is refused; one over the same files keeps its partition names. Without
    `replan`, a job folder planned before with the same partition size is taken as it is (no
    scan: what each of many `--partition I` runs wants). `partition_size`: None for the job's
    own, else DEFAULT_PARTITION_SIZE."""
    root = Path(os.path.abspath(Path(root).expanduser()))
    if not root.is_dir():
        raise InputError(f"{root} is not a folder")
    out = Path(out)
    previous = read_job(out) if (out / JOB).exists() else None
    record = model.record
    if previous is not None:
        if previous.root != str(root):
            raise InputError(
                f"{out} is a job over {previous.root}, not {root}: use another --out folder"
            )
        recorded = previous.record()
        if (recorded.fingerprint, recorded.precision) != (record.fingerprint, record.precision):
            raise ModelError(
                f"{out} holds embeddings of {recorded.describe()}; use that model and precision, "
                "or another --out folder"
            )
        if partition_size not in (None, previous.partition_size):
            raise InputError(
                f"{out} was planned with --partition-size {previous.partition_size}: use that "
                "(or leave it out), or another --out folder"
            )
        if not replan:
            return previous
    size = partition_size or (previous.partition_size if previous else DEFAULT_PARTITION_SIZE)
    partitions, skipped = plan(root, size, captions)
    (out / PLAN).mkdir(parents=True, exist_ok=True)
    for part in partitions:
        target = out / PLAN / f"{part.name}.json"
        if not target.exists():
            _write_json(target, {"paths": part.paths, "captions": part.captions})
    job = Job(
        out,
        str(root),
        record.to_json(),
        size,
        [p.name for p in partitions],
        [len(p.paths) for p in partitions],
        skipped,
    )
    _write_json(out / JOB, job.to_json())
    return job


def recorded_model(out: Path) -> ModelRecord | None:
    """The model a job folder was planned with, if it was."""
    return read_job(out).record() if (Path(out) / JOB).exists() else None


def read_job(out: Path) -> Job:
    try:
        data = json.loads((Path(out) / JOB).read_text(encoding="utf-8"))
        return Job(
            Path(out),
            str(data["root"]),
            dict(data["model"]),
            int(data["partition_size"]),
            [str(p["name"]) for p in data["partitions"]],
            [int(p["files"]) for p in data["partitions"]],
            [(str(s["path"]), str(s["reason"])) for s in data.get("skipped", [])],
        )
    except FileNotFoundError:
        raise InputError(f"{out} is not a job folder (no {JOB}); plan it first") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{Path(out) / JOB} cannot be read: {exc!r}") from exc


def load_partition(job: Job, index: int) -> Partition:
    if not 0 <= index < len(job.names):
        raise InputError(f"partition {index} does not exist: the job has {len(job.names)}")
    name = job.names[index]
    try:
        data = json.loads((job.out / PLAN / f"{name}.json").read_text(encoding="utf-8"))
        return Partition(index, name, list(data["paths"]), dict(data.get("captions", {})))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"the plan of partition {name} cannot be read: {exc!r}") from exc


def is_done(job: Job, name: str) -> bool:
    return (job.out / name / shards.DONE).exists()


def stale_shards(job: Job) -> list[Path]:
    """Finished shards in the job folder that the current plan does not name (the folder's
    files changed since they were embedded): `clipsearch import JOB` would take them too."""
    names = set(job.names)
    return sorted(
        p
        for p in job.out.iterdir()
        if p.name.startswith("part-") and p.name not in names and (p / shards.DONE).exists()
    )


def clean_leftovers(job: Job) -> None:
    """Removes the temporary folders of attempts that died mid-write (one driver per job)."""
    for path in job.out.glob(".tmp-*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


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
) -> PartitionResult:
    """Embeds one partition and writes it as a shard under its name, unless it is finished
    already. `root`: where this worker sees the job's root (default: where the driver did).
    Files that cannot be embedded are listed in the result and in shard.json."""
    from clipsearch_onnx.catalog import NewItem
    from clipsearch_onnx.indexer import shard_line
    from clipsearch_onnx.pipeline import decoded_batches

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
) -> Iterator[PartitionResult]:
    """Embeds the partitions `which` (default: all) one after another in this process."""
    for index in range(len(job.names)) if which is None else which:
        if is_done(job, job.names[index]):
            yield PartitionResult(job.names[index], job.counts[index], already=True)
            continue
        part = load_partition(job, index)
        yield embed_partition(job, part, encoder, root=root, batch_size=batch_size, workers=workers)
