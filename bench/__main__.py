"""`python -m bench [--quick] [--skip-1m] [--only web|models|scale|imaging|speed|store]`: measure, print,
and write BENCHMARKS.md (`--only PART` measures and prints that part alone, leaving BENCHMARKS.md
alone)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    images,
    imaging,
    large,
    levers,
    machine,
    report,
    scale,
    speed,
    store,
    throughput,
    web,
)
from bench.model import ensure_model
from bench.run import run, say


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer images and rounds, no 1M (~5 min)")
    p.add_argument("--skip-1m", action="store_true", help="stop at 100k vectors")
    p.add_argument("--rounds", type=int, help="throughput rounds (default 2, quick 1)")
    p.add_argument("--cache", type=Path, default=Path("build/bench"), help="(build/bench)")
    p.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"), help="(BENCHMARKS.md)")
    p.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite --out from the last run's figures (CACHE/results.json), measuring nothing",
    )
    p.add_argument(
        "--only",
        choices=("web", "models", "scale", "imaging", "speed", "store", "filters", "dups"),
        help="measure only that part (web: `clipsearch serve` and one-shot search through it; "
        "models: image throughput of each recommended model architecture; scale: 1M-10M vector "
        "collections, hours; imaging: decoding fidelity, int8 batch dependence and decode cost, "
        "bench/imaging.py; speed: GEMM limit, the model alone, end to end against OpenVINO and "
        "PyTorch, one-shot queries, bench/speed.py; store: index runs over 100k and 200k "
        "catalogued files, bench/store.py; filters: search with filters and `clipsearch dups` on "
        "200k synthetic vectors, bench/filters.py; dups: near-duplicate scores behind dups' "
        "threshold, bench/duplicates.py); print it and keep its figures in "
        "CACHE/ONLY.json, leaving --out alone",
    )
    p.add_argument(
        "--conditions", default="", metavar="TEXT", help="a note on how the machine was shared"
    )
    p.add_argument(
        "--scale-sizes",
        default=",".join(map(str, scale.SIZES)),
        metavar="N,N,...",
        help="collection sizes of the scale part (default %(default)s; --quick: 100000,200000)",
    )
    p.add_argument(
        "--scale-json",
        type=Path,
        action="append",
        metavar="PATH",
        help="take the scale part's figures from PATH (the CACHE/scale.json of a `--only scale` "
        "run, hours at 10M) instead of measuring them; with --render-only too; repeated, the "
        "sizes of each file are merged (a later file's size replaces an earlier one's)",
    )
    return p.parse_args(argv)


def only_store(args: argparse.Namespace) -> int:
    """Index runs over a large catalog (bench/store.py); the writer's interrupt loop is
    `python -m bench.interrupts`."""
    cache = args.cache.absolute()
    _, model = ensure_model(cache)
    sizes = [10_000, 20_000] if args.quick else list(store.SIZES)
    figures = store.measure(cache, model, sizes)
    figures["conditions"] = args.conditions
    (cache / "store.json").write_text(json.dumps(figures, indent=1, default=str))
    sys.stdout.write("\n".join(store.render(figures)) + "\n")
    return 0


def only_narrowing(args: argparse.Namespace) -> int:
    """Filters (bench/filters.py) or the duplicates' threshold (bench/duplicates.py)."""
    from bench import duplicates, filters

    cache = args.cache.absolute()
    if args.only == "filters":
        figures = filters.measure(cache, ensure_model(cache)[1])
        lines = filters.render(figures)
    else:
        figures = duplicates.measure(cache)
        lines = duplicates.render(figures)
    figures["conditions"] = args.conditions
    (cache / f"{args.only}.json").write_text(json.dumps(figures, indent=1, default=str))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def scale_sizes(args: argparse.Namespace) -> list[int]:
    if args.quick:
        return [100_000, 200_000]
    return [int(n) for n in args.scale_sizes.split(",")]


def query_index(cache: Path, model: Path, web: list[Path]) -> Path:
    """A 128-image int8 index of web-sized pictures, rebuilt every run."""
    folder = images.linked(web[:128], cache / "index128-images")
    index_dir = cache / "index128"
    cmd = [*throughput.CLIPSEARCH, "index", str(folder), "--model", str(model)]
    run([*cmd, "--index", str(index_dir), "--precision", "int8", "--rebuild", "-q"])
    return index_dir


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.render_only:
        results = json.loads((args.cache / "results.json").read_text())
        results["large"]["sizes"] = {int(n): f for n, f in results["large"]["sizes"].items()}
        text = report.render(results, levers_section(results["levers"]))
        if args.scale_json:
            results["scale"] = scale.merge(args.scale_json)
        if "scale" in results:
            text += "\n" + "\n".join(scale.render(results["scale"])) + "\n"
        args.out.write_text(text)
        return 0
    if args.only == "web":
        return only_web(args)
    if args.only == "models":
        return only_models(args)
    if args.only == "imaging":
        cache = args.cache.absolute()
        return imaging.main(cache, args.quick, ensure_model(cache)[1])
    if args.only == "speed":
        return only_speed(args)
    if args.only == "store":
        return only_store(args)
    if args.only in ("filters", "dups"):
        return only_narrowing(args)
    started = time.perf_counter()
    load_start = machine.load_average()
    if args.only == "scale":
        cache = args.cache.absolute()
        _, model = ensure_model(cache)
        figures = scale.measure(cache, model, scale_sizes(args), args.quick)
        figures["conditions"] = args.conditions
        (cache / "scale.json").write_text(json.dumps(figures, indent=1, default=str))
        sys.stdout.write("\n".join(scale.render(figures)) + "\n")
        return 0
    quick = args.quick
    rounds = args.rounds or (1 if quick else 2)
    n_images = 64 if quick else 192
    cache = args.cache.absolute()
    checkpoint, model = ensure_model(cache)
    say(f"generating {n_images} photo-sized and {n_images} web-sized JPEGs (cached)")
    photos = images.make_photos(cache / "photos", n_images)
    # not `web`: that is the module measuring `clipsearch serve`
    web_pictures = images.make_photos(cache / "web", max(n_images, 128), images.WEB_SIZES, seed=1)
    manifest = json.loads((model / "manifest.json").read_text())
    results: dict = {
        "args": " ".join(
            flag
            for flag, on in (("--quick", quick), ("--skip-1m", args.skip_1m))
            + ((f"--rounds {args.rounds}", bool(args.rounds)),)
            if on
        ),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine.describe(),
        "model": {"quantization": manifest.get("quantization", {}).get("label", "?")},
        "throughput": [],
        "conditions": args.conditions,
    }
    for title, folder in (
        ("photo-sized JPEGs (1-12 MP)", images.linked(photos, cache / f"photos-{n_images}")),
        (
            "web-sized JPEGs (0.2-0.5 MP)",
            images.linked(web_pictures[:n_images], cache / f"web-{n_images}"),
        ),
    ):
        figures = throughput.measure(checkpoint, model, folder, rounds)
        figures["title"] = title
        results["throughput"].append(figures)

    say("text queries on a 128-image index")
    index128 = query_index(cache, model, web_pictures)
    opened = json.loads(
        run([sys.executable, "-m", "bench.probe", "open", "--index", str(index128)]).stdout
    )
    results["queries"] = {
        "count": opened["count"],
        "type": opened["type"],
        "cold": large.cold_search(index128, 5 if quick else 9),
        "warm": large.warm(index128, 100 if quick else 300),
    }

    results["web"] = web.measure(index128, large_queries(), quick)
    results["speed"] = speed.measure(
        cache,
        checkpoint,
        model,
        index128,
        quick=quick,
        rounds=rounds,
        served=results["web"]["one_shot"],
    )

    sizes = [10_000, 100_000] if quick or args.skip_1m else [10_000, 100_000, 1_000_000]
    results["large"] = large.measure(
        cache / "large", model, sizes, 3 if quick else 5, 200 if quick else 1000
    )

    if args.scale_json:
        say(f"scale: the figures of {', '.join(map(str, args.scale_json))}")
        results["scale"] = scale.merge(args.scale_json)
    else:
        results["scale"] = scale.measure(cache, model, scale_sizes(args), quick)

    say("levers")
    corpus = [q for q in large_queries()]
    results["levers"] = {
        "decode": levers.decode(model, photos[: 24 if quick else 48]),
        "index": levers.index_sessions(
            model, photos[: 32 if quick else 96], levers.INDEX_VARIANTS[: 3 if quick else None]
        ),
        "text": levers.text_sessions(model, corpus),
        "cold": levers.cold_breakdown(index128, 3 if quick else 7),
    }
    results["load"] = (load_start, machine.load_average())
    results["minutes"] = (time.perf_counter() - started) / 60
    (cache / "results.json").write_text(json.dumps(results, indent=1, default=str))
    text = report.render(results, levers_section(results["levers"]))
    text += "\n" + "\n".join(scale.render(results["scale"])) + "\n"
    args.out.write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    say(f"wrote {args.out} ({results['minutes']:.1f} min)")
    return 0


def only_web(args: argparse.Namespace) -> int:
    cache = args.cache.absolute()
    _, model = ensure_model(cache)
    web_images = images.make_photos(cache / "web", 128, images.WEB_SIZES, seed=1)
    index128 = query_index(cache, model, web_images)
    figures = web.measure(index128, large_queries(), args.quick)
    figures["machine"] = {"load": machine.load_average(), "conditions": args.conditions}
    (cache / "web.json").write_text(json.dumps(figures, indent=1))
    count = json.loads((index128 / "index.json").read_text())["count"]
    text = web.render(figures, count) + report._table(
        ["target", "goal", "measured", "met"], web.target_rows(figures)
    )
    sys.stdout.write("\n".join(text) + "\n")
    return 0


def only_speed(args: argparse.Namespace) -> int:
    cache = args.cache.absolute()
    checkpoint, model = ensure_model(cache)
    web_images = images.make_photos(cache / "web", 128, images.WEB_SIZES, seed=1)
    index128 = query_index(cache, model, web_images)
    rounds = args.rounds or (1 if args.quick else 3)
    figures = speed.measure(cache, checkpoint, model, index128, quick=args.quick, rounds=rounds)
    (cache / "speed.json").write_text(json.dumps(figures, indent=1))
    sys.stdout.write("\n".join(speed.render(figures, args.conditions)) + "\n")
    return 0


def only_models(args: argparse.Namespace) -> int:
    from bench import architectures

    load_start = machine.load_average()
    rows = architectures.measure(args.cache.absolute() / "architectures", args.rounds or 3)
    conditions = f"Load average {load_start} -> {machine.load_average()}. {args.conditions}"
    args.cache.mkdir(parents=True, exist_ok=True)
    (args.cache / "models.json").write_text(json.dumps(rows, indent=1))
    sys.stdout.write(architectures.render(rows, conditions))
    return 0


def large_queries() -> list[str]:
    from bench.probe import queries

    return queries(120)


def levers_section(lev: dict) -> list[str]:
    from bench.levers_text import render

    return render(lev)


if __name__ == "__main__":
    sys.exit(main())
