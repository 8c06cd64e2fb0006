"""Measurements that must run in a fresh process of their own; each prints one JSON line.

python -m bench.probe open --index DIR         time and memory to open an index
python -m bench.probe warm --index DIR [--n N] warm text-query latency, p50 and p99
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def probe_open(index_dir: Path) -> dict:
    import numpy  # noqa: F401 - imported before the clock starts, like any caller would

    from clipsearch_onnx.catalog import Catalog
    from clipsearch_onnx.index import VectorIndex
    from clipsearch_onnx.layout import hold_current

    before = rss_mb()
    t0 = time.perf_counter()
    build = hold_current(index_dir)
    vectors = VectorIndex.open(build.path)
    catalog = Catalog.open(build.path, readonly=True)
    seconds = time.perf_counter() - t0
    result = {
        "count": vectors.count,
        "type": vectors.meta.get("type"),
        "open_s": seconds,
        "rss_mb": rss_mb(),
        "rss_added_mb": rss_mb() - before,
    }
    catalog.close()
    build.release()
    return result


def queries(n: int) -> list[str]:
    from tests.factories import default_corpus

    corpus = [line for line in default_corpus() if line.strip()]
    return [corpus[i % len(corpus)] for i in range(n)]


def percentiles(ms: list[float]) -> dict:
    import numpy as np

    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def probe_warm(index_dir: Path, n: int) -> dict:
    import numpy as np

    from clipsearch_onnx.search import open_searcher
    from clipsearch_onnx.settings import load_settings

    searcher = open_searcher(load_settings({"index_dir": index_dir}))
    texts = queries(n)
    for text in texts[:5]:
        searcher.search(text)  # warm up: sessions, caches, page cache
    total, embed, search = [], [], []
    for text in texts:
        t0 = time.perf_counter()
        vector = searcher.embed_query(text)
        t1 = time.perf_counter()
        searcher.search_vector(vector[0], 10)
        t2 = time.perf_counter()
        embed.append((t1 - t0) * 1000)
        search.append((t2 - t1) * 1000)
        total.append((t2 - t0) * 1000)
    vectors = np.random.default_rng(0).standard_normal((n, searcher.encoder.dim), np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return {
        "count": searcher.count,
        "queries": n,
        "query": percentiles(total),
        "text_embedding": percentiles(embed),
        "index_search": percentiles(search),
        "rss_mb": rss_mb(),
    }


def probe_cold(index_dir: Path) -> dict:
    t0 = time.perf_counter()
    from clipsearch_onnx.search import open_searcher
    from clipsearch_onnx.settings import load_settings

    t1 = time.perf_counter()
    searcher = open_searcher(load_settings({"index_dir": index_dir}))
    t2 = time.perf_counter()
    searcher.search("a dog running on the beach")
    t3 = time.perf_counter()
    return {"imports_s": t1 - t0, "open_s": t2 - t1, "first_query_s": t3 - t2, "total_s": t3 - t0}


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.probe")
    p.add_argument("what", choices=("open", "warm", "cold"))
    p.add_argument("--index", required=True, type=Path)
    p.add_argument("--n", type=int, default=200)
    args = p.parse_args()
    if args.what == "open":
        result = probe_open(args.index)
    elif args.what == "cold":
        result = probe_cold(args.index)
    else:
        result = probe_warm(args.index, args.n)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
