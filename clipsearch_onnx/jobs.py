"""A job folder: a folder of photos planned as partitions, each to be embedded into an import
shard by `distributed.embed_partition` (whatever engine drives it: `clipsearch embed-shards` in
this process or on Ray, Slurm or Dask one `--partition I` at a time).

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipsearch_onnx import shards
from clipsearch_onnx.errors import InputError, ModelError

if TYPE_CHECKING:
    from clipsearch_onnx.models import Model, ModelRecord

JOB = "job.json"
PLAN = "plan"
DEFAULT_PARTITION_SIZE = 1000
FORMAT = 1


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
