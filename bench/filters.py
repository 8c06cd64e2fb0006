"""`python -m bench --only filters`: search time with filters of several selectivities, and
`clipsearch dups`' time, on synthetic catalogued collections (imported shards: 512-d clustered
vectors, paths in 100 folders plus one of 12 images, mtimes, sizes), IVF with 8-bit codes.
Queries are interleaved over the filters, so load on the machine hits them alike."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.run import say
from bench.vectors import ClusterModel

SIZES = (200_000,)
QUERIES = 20
K = 20
SHARD = 50_000


def _collection(root: Path, model: Path, n: int) -> Path:
    from clipsearch_onnx.importer import import_shards
    from clipsearch_onnx.shards import write_shard

    index = root / f"filters-{n}"
    if (index / "current").exists():
        return index
    rng = np.random.default_rng(0)
    clusters = ClusterModel()
    shards = []
    for start in range(0, n, SHARD):
        rows = range(start, min(n, start + SHARD))
        items = [
            {
                "path": f"{'/p/trip' if i % (n // 12) == 5 else f'/p/f{i % 100:02d}'}/{i:07d}."
                + ("png" if i % 2 else "jpg"),
                "mtime_ns": (1_500_000_000 + 1000 * i) * 10**9,
                "width": 640 + i % 1000,
                "height": 480,
            }
            for i in rows
        ]
        shard = root / f"filters-{n}-shards" / f"{start:08d}"
        if not shard.exists():
            write_shard(shard, clusters.sample(len(rows), rng), items)
        shards.append(shard)
    say(f"filters: importing {n} vectors")
    import_shards(index, shards, model, index_type="ivf-sq8")
    return index


def measure(cache: Path, model: Path, sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    from clipsearch_onnx import dups
    from clipsearch_onnx.filters import Filter, select
    from clipsearch_onnx.search import open_searcher
    from clipsearch_onnx.settings import Settings

    figures: dict[str, Any] = {"sizes": {}}
    for n in sizes:
        index = _collection(cache, model, n)
        searcher = open_searcher(Settings(index_dir=index))
        middle = dt.datetime.fromtimestamp(1_500_000_000 + 1000 * n // 2).strftime("%Y-%m-%d")
        cases = {
            "none": None,
            "--under a folder of 12": Filter.parse(under="/p/trip"),
            "--under 1%": Filter.parse(under="/p/f07"),
            "--glob 10% (10 folders)": Filter.parse(glob="/p/f0*/*"),
            "--min-size 10%": Filter.parse(min_size="1540x480"),
            "--glob '*.png' 50%": Filter.parse(glob="*.png"),
            "--after, 50%": Filter.parse(after=middle),
        }
        rng = np.random.default_rng(1)
        queries = ClusterModel().sample(QUERIES, rng)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for q in queries:
            for name, where in cases.items():
                started = time.perf_counter()
                searcher.search_vector(q, K, where=where)
                times[name].append(time.perf_counter() - started)
        rows = []
        for name, where in cases.items():
            allowed = n if where is None else len(select(searcher.catalog, where))
            ms = 1000 * np.array(times[name])
            rows.append((name, allowed, float(np.median(ms)), float(np.percentile(ms, 90))))
        searcher.close()
        started = time.perf_counter()
        groups = dups.find_groups(index)
        figures["sizes"][n] = {
            "type": "ivf-sq8",
            "rows": rows,
            "dups_s": time.perf_counter() - started,
            "dups_groups": len(groups),
        }
    return figures


def render(figures: dict[str, Any]) -> list[str]:
    lines = ["## Filters and duplicates (bench/filters.py)", ""]
    for n, f in figures["sizes"].items():
        lines += [
            f"{int(n):,} synthetic 512-d vectors, {f['type']}, k={K}, median of {QUERIES} "
            "interleaved queries:",
            "",
            "| filter | images allowed | median | p90 |",
            "|---|---:|---:|---:|",
        ]
        lines += [f"| {name} | {a:,} | {m:.1f} ms | {p:.1f} ms |" for name, a, m, p in f["rows"]]
        rate = int(n) / f["dups_s"]
        lines += ["", f"`clipsearch dups`: {f['dups_s']:.1f} s ({rate:,.0f} images/s), "
                  f"{f['dups_groups']} groups.", ""]  # fmt: skip
    return lines
