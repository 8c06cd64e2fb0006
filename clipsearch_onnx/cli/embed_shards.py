"""`clipsearch embed-shards PHOTOS --out JOB`: embed a folder as a job of import shards, in this
process or on a Ray cluster (`--ray`); `clipsearch import JOB` merges them into an index."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from clipsearch_onnx.cli import interrupts
from clipsearch_onnx.cli.options import add_common, add_decoding, settings_from
from clipsearch_onnx.cli.usage import add_command
from clipsearch_onnx.errors import ExitCode, UsageError


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = add_command(
        subparsers,
        "embed-shards",
        help="embed a folder as a job of shards, here or on a Ray cluster (then `import` it)",
        description="Split the images below PHOTOS into partitions of the sorted file list "
        "and write each as an import shard in JOB (named by its files, so a rerun skips "
        "finished partitions). With --ray the partitions run on a Ray cluster (actor pools, "
        "one model session per actor; needs the dist extra); without it, in this process, "
        "all of them or one (--partition I, for Slurm or Dask). Then: clipsearch import JOB.",
    )
    p.add_argument("path", metavar="PHOTOS", help="folder of images (searched recursively)")
    p.add_argument("--out", required=True, metavar="JOB", help="job folder (shared storage)")
    p.add_argument(
        "--ray",
        metavar="WHERE",
        help="local (start Ray on this machine), auto (the cluster this machine belongs to) "
        "or a cluster's ADDRESS; without it, partitions run in this process",
    )
    p.add_argument(
        "--partition-size",
        type=int,
        metavar="N",
        help="files per partition (1000; a job keeps the size it was planned with)",
    )
    p.add_argument(
        "--partition",
        type=int,
        metavar="I",
        help="embed only partition I (0-based) in this process, using the job's recorded plan",
    )
    p.add_argument(
        "--plan", action="store_true", help="only plan the job: write JOB/job.json, print a summary"
    )
    p.add_argument(
        "--worker-cpus",
        type=int,
        default=2,
        metavar="N",
        help="CPUs (and inference threads) per Ray actor (2)",
    )
    p.add_argument(
        "--worker-root",
        metavar="DIR",
        help="where the workers see PHOTOS, if they mount it elsewhere",
    )
    p.add_argument("--captions", metavar="FILE", help="captions in Flickr8k format, by name")
    add_common(p, index=False)
    add_decoding(p)
    p.add_argument("--batch-size", type=int, metavar="N", help="images per inference batch (32)")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="decoding threads (2)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.add_argument("--verbose", action="store_true", help="let decoding libraries warn")
    return p


def run(args: argparse.Namespace) -> int:
    from clipsearch_onnx.quiet import quiet_libraries

    with quiet_libraries(enabled=not args.verbose):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from clipsearch_onnx import jobs, models
    from clipsearch_onnx.captions import read_captions
    from clipsearch_onnx.progressbar import Bar

    if args.ray is not None and args.partition is not None:
        raise UsageError("--partition runs one partition in this process: drop --ray")
    settings = settings_from(args)
    out = Path(args.out)
    model = models.resolve(settings.model_dir, settings.precision, jobs.recorded_model(out))
    captions = read_captions(Path(args.captions))[0] if args.captions else None
    job = jobs.start_job(
        out, Path(args.path), model, args.partition_size, captions,
        replan=args.partition is None,
    )  # fmt: skip
    bar = Bar(enabled=not args.quiet)
    for path, reason in job.skipped:
        bar.message(f"skipped {path}: {reason}")
    if args.plan:
        print(json.dumps({"job": str(out), "partitions": len(job.names), "images": job.images}))
        return ExitCode.OK
    stale = jobs.stale_shards(job)
    if stale:
        bar.message(
            f"{len(stale)} shards in {out} are from an earlier plan (the folder changed); "
            "`clipsearch import` takes them too: remove them first if their files are gone"
        )
    if args.partition is None:
        jobs.clean_leftovers(job)
    which = None if args.partition is None else [args.partition]
    if args.partition is not None:
        jobs.load_partition(job, args.partition)  # an out-of-range I fails here
    results = _results(args, settings, job, which)
    base = args.worker_root or job.root
    embedded = before = failed = 0
    total = job.images if which is None else job.counts[args.partition]
    bar.start("embedding", total)
    try:
        for result in results:
            for rel, reason in result.failures:
                bar.message(f"skipped {os.path.join(base, rel)}: {reason}")
            before += result.already
            embedded += result.rows
            failed += len(result.failures)
            bar.advance(result.files)
    except KeyboardInterrupt:
        bar.finish()
        interrupts.report(
            f"{interrupts.LINE}: finished partitions are kept; run the same command to resume"
        )
        return ExitCode.INTERRUPTED
    bar.finish()
    if not args.quiet:
        count = len(job.names) if which is None else 1
        print(
            f"{out}: {count} partition{'s' if count != 1 else ''}, {count - before} embedded now "
            f"({embedded} images, "
            f"{failed} skipped), {before} finished before; merge with: "
            f"clipsearch import {out} --index DIR",
            file=sys.stderr,
        )
    return ExitCode.OK


def _results(args: argparse.Namespace, settings: Any, job: Any, which: list[int] | None) -> Any:
    from clipsearch_onnx import distributed
    from clipsearch_onnx.pipeline import decoding_for

    options = {
        "batch_size": settings.batch_size,
        "workers": args.workers,
        "root": args.worker_root,
        "decoding": decoding_for(settings.decoding, bulk=True),
    }
    if args.ray is None:
        encoder = distributed.encoder_for(job, settings.threads, settings.backend)
        return distributed.run_in_process(job, encoder, which, **options)
    from clipsearch_onnx import ray_job

    return ray_job.run(
        job, args.ray, worker_cpus=args.worker_cpus, backend=settings.backend, **options
    )
