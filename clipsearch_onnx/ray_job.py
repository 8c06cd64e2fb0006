"""The Ray Data driver of `clipsearch embed-shards --ray`: the only module that imports Ray.

The job's partitions (`jobs.start_job`) become a dataset of partition numbers; an actor
pool maps them through `PartitionEmbedder`, a callable class holding one encoder (one ONNX
session whose intra-op threads are the actor's CPUs). Each call embeds one whole partition with
`distributed.embed_partition`, which writes its shard under the partition's name on the shared
job folder, and returns only a summary (rows, broken files) to the driver. A crashed actor is
restarted and its partition retried up to `RETRIES` times (Ray's max_restarts and
max_task_retries; Ray Data's default is forever, which would hang on a file that kills every
attempt); a partition finished by an earlier attempt or run is not embedded again.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch_onnx import distributed, jobs
from clipsearch_onnx.distributed import PartitionResult
from clipsearch_onnx.errors import ClipSearchError, JobError
from clipsearch_onnx.jobs import Job

LOCAL = "local"
RETRIES = 3
LOCAL_OBJECT_STORE = 256 * 2**20  # rows carry partition numbers and summaries only


class PartitionEmbedder:
    """One per actor: the job's model loaded once, partitions embedded one call at a time."""

    def __init__(
        self,
        out: str,
        threads: int,
        batch_size: int,
        workers: int,
        root: str | None,
        backend: str | None,
        decoding: str | None = None,
    ):
        from clipsearch_onnx.quiet import quiet_libraries

        self.out, self.threads, self.backend = Path(out), threads, backend
        self.batch_size, self.workers, self.root = batch_size, workers, root
        self.decoding = decoding
        self.job: Job | None = None
        self.encoder: Any = None
        self.quiet = quiet_libraries()
        self.quiet.__enter__()  # an actor's stderr is a log file: keep it for Ray's own lines

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows: dict[str, list[Any]] = {k: [] for k in ("rows", "already", "failures", "error")}
        for index in batch["index"]:
            try:
                result = self._embed(int(index))
            except ClipSearchError as exc:
                # The job's own errors (a plan or model a worker cannot read) are not transient:
                # they go back to the driver as data, not into Ray's retries.
                result, error = None, json.dumps([type(exc).__name__, str(exc)])
            else:
                error = ""
            rows["rows"].append(result.rows if result else 0)
            rows["already"].append(bool(result and result.already))
            rows["failures"].append(json.dumps(result.failures if result else []))
            rows["error"].append(error)
        return {
            "index": np.asarray(batch["index"]),
            "rows": np.array(rows["rows"]),
            "already": np.array(rows["already"]),
            "failures": np.array(rows["failures"], dtype=object),
            "error": np.array(rows["error"], dtype=object),
        }

    def _embed(self, index: int) -> PartitionResult:
        if self.job is None:
            self.job = jobs.read_job(self.out)
            self.encoder = distributed.encoder_for(self.job, self.threads, self.backend)
        part = jobs.load_partition(self.job, index)
        return distributed.embed_partition(
            self.job,
            part,
            self.encoder,
            root=self.root,
            batch_size=self.batch_size,
            workers=self.workers,
            decoding=self.decoding,
        )


def connect(address: str) -> None:
    """Starts a local Ray instance (`local`: this machine's CPUs) or joins a cluster (`auto`,
    an address)."""
    import ray

    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
    }
    if address == LOCAL:  # a new instance, even where another one runs on this machine
        options["address"] = "local"
        options["num_cpus"] = len(os.sched_getaffinity(0))
        options["object_store_memory"] = LOCAL_OBJECT_STORE
    else:
        options["address"] = address
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "start a local Ray instance" if address == LOCAL else f"reach Ray at {address}"
        hint = ""
        if address not in (LOCAL, "auto") and "RAY_AUTH_MODE" not in os.environ:
            # Ray sends its token only to a cluster it finds itself (`auto`), never to an address
            hint = (
                "; a cluster with token authentication also needs RAY_AUTH_MODE=token and its "
                "token here (~/.ray/auth_token or RAY_AUTH_TOKEN)"
            )
        raise JobError(f"could not {where}: {exc}{hint}") from None
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run(
    job: Job,
    address: str,
    *,
    worker_cpus: int = 1,
    batch_size: int = 32,
    workers: int = 2,
    root: str | None = None,
    backend: str | None = None,
    decoding: str | None = None,
) -> Iterator[PartitionResult]:
    """Embeds the job's unfinished partitions on Ray, yielding each result as it arrives
    (finished ones first, marked `already`)."""
    try:
        import ray
    except ImportError:
        raise JobError(
            "--ray needs Ray: install the dist extra (pip install 'clipsearch-onnx[dist]')"
        ) from None
    todo = []
    for index, name in enumerate(job.names):
        if jobs.is_done(job, name):
            yield PartitionResult(name, job.counts[index], already=True)
        else:
            todo.append(index)
    if not todo:
        return
    # Ray's driver prints what its workers report (a worker that died, a retry) to stdout,
    # which is data: those lines go to stderr while Ray is up.
    stdout, sys.stdout = sys.stdout, sys.stderr
    try:
        connect(address)
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        context.actor_task_retry_on_errors = True  # bounded by max_task_retries below
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        cpus = ray.cluster_resources().get("CPU", 1)
        embedder = {
            "out": str(job.out.absolute()),
            "threads": worker_cpus,
            "batch_size": batch_size,
            "workers": workers,
            "root": root,
            "backend": backend,
            "decoding": decoding,
        }
        items = ray.data.from_items([{"index": i} for i in todo], override_num_blocks=len(todo))
        with warnings.catch_warnings():
            # Ray 2.60 deprecates max_restarts/max_task_retries as keyword arguments without
            # naming a replacement (pyproject keeps ray below 2.64, which removes them).
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = items.map_batches(
                PartitionEmbedder,
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(
                    min_size=1, max_size=max(1, min(len(todo), int(cpus // worker_cpus)))
                ),
                num_cpus=worker_cpus,
                fn_constructor_kwargs=embedder,
                max_restarts=RETRIES,
                max_task_retries=RETRIES,
            )
        try:
            for row in dataset.iter_rows():
                index = int(row["index"])
                if row["error"]:
                    raise _rebuilt(job.names[index], *json.loads(row["error"]))
                yield PartitionResult(
                    job.names[index],
                    job.counts[index],
                    rows=int(row["rows"]),
                    failures=[(p, r) for p, r in json.loads(row["failures"])],
                    already=bool(row["already"]),
                )
        except Exception as exc:  # noqa: BLE001 - Ray wraps what failed in its own errors
            raise _unwrap(exc) from None
    finally:
        ray.shutdown()
        sys.stdout = stdout


def _rebuilt(name: str, kind: str, message: str) -> ClipSearchError:
    """A worker's ClipSearchError, as its class where that takes just a message."""
    from clipsearch_onnx import errors

    found = getattr(errors, kind, None)
    cls = found if isinstance(found, type) and issubclass(found, ClipSearchError) else JobError
    if cls is errors.ImageError:
        cls = JobError
    return cls(message if name in message else f"partition {name}: {message}")


def _unwrap(exc: BaseException) -> ClipSearchError:
    """The core's own error inside Ray's wrappers, else a JobError naming the first cause."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ClipSearchError):
            return seen
        cause = getattr(seen, "cause", None)
        seen = cause if isinstance(cause, BaseException) else seen.__cause__
    return JobError(
        f"a partition failed after {RETRIES} retries on Ray: {type(exc).__name__}: "
        f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else ''} (Ray's worker logs "
        "say more); finished partitions are kept: run the same command to resume"
    )
