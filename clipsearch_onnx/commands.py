"""The `clipsearch` subcommands: each a few lines over one call of the core.

stdout carries results (a table, --json or --jsonl); stderr carries progress, warnings and errors.
Imports of anything heavy are deferred into the command that needs it, so start-up stays quick.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from clipsearch_onnx.errors import ClipSearchError, ExitCode, InputError


def _settings(args: argparse.Namespace):
    from clipsearch_onnx.settings import load_settings

    return load_settings(
        {
            "model_dir": getattr(args, "model", None),
            "index_dir": getattr(args, "index", None),
            "precision": getattr(args, "precision", None),
            "threads": getattr(args, "threads", None),
            "batch_size": getattr(args, "batch_size", None),
        }
    )


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")


# -- embed --------------------------------------------------------------------------------------
def cmd_embed(args: argparse.Namespace) -> int:
    from clipsearch_onnx.encoder import Encoder
    from clipsearch_onnx.manifest import Manifest
    from clipsearch_onnx.paths import default_model_dir
    from clipsearch_onnx.preprocess import load_image

    settings = _settings(args)
    if not args.text and not args.image:
        raise InputError("nothing to embed: give --text and/or --image")
    images = [load_image(Path(p).expanduser()) for p in args.image]  # fail before any output
    encoder = Encoder(
        Manifest.load(settings.model_dir or default_model_dir()),
        settings.precision,
        settings.threads,
    )
    if args.text:
        for text, emb in zip(args.text, encoder.embed_texts(args.text), strict=True):
            _print_json({"kind": "text", "input": text, "embedding": emb.tolist()})
    if images:
        for path, emb in zip(args.image, encoder.embed_images(images), strict=True):
            _print_json({"kind": "image", "input": path, "embedding": emb.tolist()})
    return ExitCode.OK


# -- index --------------------------------------------------------------------------------------
def cmd_index(args: argparse.Namespace) -> int:
    from clipsearch_onnx.collection import recorded_encoder
    from clipsearch_onnx.indexer import Indexer, Progress
    from clipsearch_onnx.progressbar import Bar

    settings = _settings(args)
    bar = Bar(enabled=not args.quiet)
    indexer = Indexer(
        settings.resolved_index_dir(),
        recorded_encoder(settings),
        batch_size=settings.batch_size,
        checkpoint=args.checkpoint,
        index_type=args.index_type,
        ivf_threshold=args.ivf_threshold,
        workers=args.workers,
        progress=Progress(
            start=bar.start,
            advance=bar.advance,
            skip=lambda path, reason: bar.message(f"skipped {path}: {reason}"),
        ),
    )
    try:
        report = indexer.run(Path(args.path), args.captions, rebuild=args.rebuild)
    except KeyboardInterrupt:
        bar.finish()
        print(
            "interrupted: finished batches are kept; run the same command to resume",
            file=sys.stderr,
        )
        return ExitCode.INTERRUPTED
    bar.finish()
    for warning in report.caption_warnings[:20]:
        print(f"captions: {warning}", file=sys.stderr)
    if len(report.caption_warnings) > 20:
        print(f"captions: ... and {len(report.caption_warnings) - 20} more", file=sys.stderr)
    if not args.quiet:
        print(
            f"indexed {report.count} images in {settings.resolved_index_dir()}: "
            f"{report.added} added, {report.changed} changed, {report.moved} moved, "
            f"{report.removed} removed, {report.unchanged} unchanged, "
            f"{len(report.skipped)} skipped; {report.embedded} embedded in {report.seconds:.1f} s "
            f"({report.images_per_second:.1f} img/s)",
            file=sys.stderr,
        )
    return ExitCode.OK


# -- search -------------------------------------------------------------------------------------
def _format_table(response) -> str:
    if not response.results:
        return "no results (the index is empty)\n"
    lines = []
    for r in response.results:
        caption = r.captions[0] if r.captions else ""
        if len(caption) > 60:
            caption = caption[:59] + "…"
        lines.append(f"{r.rank:>3}  {r.score:6.3f}  {caption:<60}  {r.path}")
    return "\n".join(lines) + "\n"


def _read_queries(source: str) -> list[dict[str, Any]]:
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            text = Path(source).expanduser().read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"query file {source} does not exist") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"query file {source} is not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise InputError(f"cannot read query file {source}: {exc.strerror}") from exc
    queries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                query = json.loads(line)
            except ValueError as exc:
                raise InputError(f"query file {source}, line {number}: bad JSON ({exc})") from exc
            if not isinstance(query, dict) or not ({"text", "image"} & query.keys()):
                raise InputError(
                    f'query file {source}, line {number}: expected {{"text": ...}} and/or '
                    '{"image": ...}'
                )
            queries.append(query)
        else:
            queries.append({"text": line})
    return queries


def cmd_search(args: argparse.Namespace) -> int:
    from clipsearch_onnx.search import open_searcher

    if args.k < 1:
        raise InputError("-k must be at least 1")
    if args.queries is None and args.text is None and args.image is None:
        raise InputError("give a TEXT, --image PATH, or --queries FILE")
    queries = _read_queries(args.queries) if args.queries is not None else None
    searcher = open_searcher(_settings(args))
    try:
        if queries is not None:
            for q in queries:
                k = int(q.get("k", args.k))
                _print_json(searcher.search(q.get("text"), q.get("image"), k).to_json())
                sys.stdout.flush()
            return ExitCode.OK
        response = searcher.search(args.text, args.image, args.k)
    finally:
        searcher.close()
    if args.json:
        _print_json(response.to_json())
    elif args.jsonl:
        for result in response.results:
            _print_json(result.to_json())
    else:
        sys.stdout.write(_format_table(response))
    return ExitCode.OK


# -- info ---------------------------------------------------------------------------------------
def cmd_info(args: argparse.Namespace) -> int:
    from clipsearch_onnx.search import read_info

    info = read_info(_settings(args).resolved_index_dir(), verify_full=args.verify)
    if args.json:
        _print_json(info.to_json())
        return ExitCode.OK
    print(f"index:      {info.index_dir}")
    print(f"images:     {info.count}")
    print(f"model:      {info.model_source or '?'} ({info.model_dir})")
    print(f"precision:  {info.precision}")
    print(f"type:       {info.index_type}")
    print(f"on disk:    {info.bytes_on_disk / 1e6:.1f} MB")
    print(f"updated:    {info.updated}")
    print(f"skipped:    {len(info.skipped)} files")
    for path, reason in info.skipped[:20]:
        print(f"  {path}: {reason}")
    return ExitCode.OK


# -- import -------------------------------------------------------------------------------------
def cmd_import(args: argparse.Namespace) -> int:
    from clipsearch_onnx.importer import import_shards
    from clipsearch_onnx.manifest import Manifest
    from clipsearch_onnx.progressbar import Bar

    settings = _settings(args)
    bar = Bar(enabled=not args.quiet, unit="items")
    manifest = Manifest.load(settings.model_dir) if settings.model_dir else None
    report = import_shards(
        settings.resolved_index_dir(),
        [Path(s) for s in args.shards],
        manifest,
        precision=settings.precision,
        index_type=args.index_type,
        ivf_threshold=args.ivf_threshold,
        progress=bar.start,
        advance=bar.advance,
    )
    bar.finish()
    if not args.quiet:
        print(
            f"imported {report.items} items from {report.shards} shards; "
            f"the index holds {report.count}",
            file=sys.stderr,
        )
    return ExitCode.OK


# -- eval ---------------------------------------------------------------------------------------
def _eval_inputs(args: argparse.Namespace) -> tuple[Path, Path, Path | None]:
    if args.dataset:
        root = Path(args.dataset).expanduser()
        images = root / "Images"
        captions = next(
            (p for p in (root / "captions.txt", root / "Flickr8k.token.txt") if p.exists()),
            root / "captions.txt",
        )
        test_split = root / "Flickr_8k.testImages.txt"
        return images, captions, (None if args.whole or not test_split.exists() else test_split)
    if not (args.images and args.captions):
        raise InputError("give --dataset DIR, or --images DIR with --captions FILE")
    split = Path(args.split).expanduser() if args.split and not args.whole else None
    return Path(args.images).expanduser(), Path(args.captions).expanduser(), split


def cmd_eval(args: argparse.Namespace) -> int:
    from clipsearch_onnx.encoder import Encoder
    from clipsearch_onnx.evaluate import EvalSet, evaluate
    from clipsearch_onnx.manifest import Manifest
    from clipsearch_onnx.paths import default_model_dir
    from clipsearch_onnx.progressbar import Bar

    settings = _settings(args)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if not precisions or any(p not in ("fp32", "int8") for p in precisions):
        raise InputError(
            f"--precision takes fp32, int8 or both (fp32,int8), not {args.precisions!r}"
        )
    images, captions, split = _eval_inputs(args)
    if not images.is_dir():
        raise InputError(f"image folder {images} does not exist")
    data, warnings = EvalSet.load(images, captions, split)
    manifest = Manifest.load(settings.model_dir or default_model_dir())
    bar = Bar(enabled=not args.quiet)
    report: dict[str, Any] = {
        "model": manifest.source.get("model"),
        "split": str(split) if split else "all",
    }
    for precision in precisions:
        encoder = Encoder(manifest, precision, settings.threads)
        report[precision] = evaluate(
            data, encoder, batch_size=settings.batch_size, start=bar.start, advance=bar.advance
        )
    bar.finish()
    for line in [*warnings[:5], *(s for p in precisions for s in report[p]["skipped"][:5])]:
        print(f"warning: {line}", file=sys.stderr)
    if args.json:
        _print_json(report)
        return ExitCode.OK
    print(f"{len(data.paths)} images, {len(data.captions)} captions ({report['split']})")
    print(
        f"{'':6} {'t2i R@1':>8} {'R@5':>6} {'R@10':>6}  {'i2t R@1':>8} {'R@5':>6} {'R@10':>6}"
        f"  {'img/s':>7} {'query/s':>8}"
    )
    for precision in precisions:
        r = report[precision]
        t, i = r["t2i"], r["i2t"]
        print(
            f"{precision:6} {t['R@1']:8.1f} {t['R@5']:6.1f} {t['R@10']:6.1f}  "
            f"{i['R@1']:8.1f} {i['R@5']:6.1f} {i['R@10']:6.1f}  "
            f"{r['images_per_s']:7.1f} {r['queries_per_s']:8.1f}"
        )
    return ExitCode.OK


# -- dataset ------------------------------------------------------------------------------------
def cmd_dataset(args: argparse.Namespace) -> int:
    from clipsearch_onnx.dataset import fetch_flickr8k
    from clipsearch_onnx.progressbar import Bar

    bar = Bar(unit="B")
    dest = fetch_flickr8k(Path(args.dest).expanduser(), start=bar.start, advance=bar.advance)
    bar.finish()
    print(f"Flickr8k is ready in {dest} (Images/, captions.txt, split files)", file=sys.stderr)
    return ExitCode.OK


# -- tui ----------------------------------------------------------------------------------------
def cmd_tui(args: argparse.Namespace) -> int:
    try:
        from clipsearch_tui.app import run
    except ImportError as exc:
        raise ClipSearchError(
            f"the terminal UI needs the `tui` extra ({exc.name} is missing): "
            "pip install 'clipsearch-onnx[tui]'"
        ) from None
    return run(_settings(args))
