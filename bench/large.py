"""Large collections: clustered vectors imported with `clipsearch import` at 10k, 100k and 1M;
index open time and memory, cold one-shot searches, warm latency, and recall@10 of the
large-collection index against exact search."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench import vectors
from bench.run import run, say
from clipsearch_onnx.layout import current_dir

CLIPSEARCH = [sys.executable, "-m", "clipsearch_onnx"]
QUERY = "a dog running on the beach"


def ensure_index(cache: Path, model: Path, n: int, cluster_model: vectors.ClusterModel) -> dict:
    """The index of `n` clustered vectors (imported once, cached), with how its import went."""
    index_dir = cache / f"index-{n}"
    stamp = cache / f"index-{n}.json"
    if stamp.exists() and (index_dir / "current").exists():
        return json.loads(stamp.read_text())
    say(f"{n:,} vectors: generating shards")
    # 10k and 100k are the first rows of the 1M stream's first shard: same distribution.
    shards = vectors.write_shards(cache / "shards", max(n, vectors.SHARD_ROWS), cluster_model, 1)
    if n < vectors.SHARD_ROWS:
        shards = [_head_shard(shards[0], cache / f"shards-{n}", n)]
    else:
        shards = shards[: n // vectors.SHARD_ROWS]
    say(f"{n:,} vectors: clipsearch import (IVF training takes minutes at 1M)")
    cmd = [*CLIPSEARCH, "import", *map(str, shards), "--model", str(model)]
    r = run([*cmd, "--index", str(index_dir), "--precision", "int8", "-q"])
    build = current_dir(index_dir)
    assert build is not None, f"no index in {index_dir}"
    meta = json.loads((build / "index.json").read_text())
    info = {
        "count": meta["count"],
        "type": meta["type"],
        "nprobe": meta.get("nprobe"),
        "import_s": r.seconds,
        "import_peak_rss_mb": r.peak_rss_mb,
        "bytes": sum(p.stat().st_size for p in build.glob("vectors/seg-*/lists.ivfdata")),
    }
    stamp.write_text(json.dumps(info))
    return info


def _head_shard(src: Path, dest: Path, n: int) -> Path:
    if not (dest / "items.jsonl").exists():
        dest.mkdir(parents=True, exist_ok=True)
        np.save(dest / "embeddings.npy", np.load(src / "embeddings.npy", mmap_mode="r")[:n])
        lines = (src / "items.jsonl").read_text().splitlines(keepends=True)[:n]
        (dest / "items.jsonl").write_text("".join(lines))
    return dest


def open_figures(index_dir: Path, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        r = run([sys.executable, "-m", "bench.probe", "open", "--index", str(index_dir)])
        runs.append(json.loads(r.stdout))
    return {
        "open_ms": 1000 * statistics.median(x["open_s"] for x in runs),
        "rss_mb": statistics.median(x["rss_mb"] for x in runs),
        "rss_added_mb": statistics.median(x["rss_added_mb"] for x in runs),
    }


def cold_search(index_dir: Path, repeats: int, text: str = QUERY) -> dict:
    """`clipsearch search TEXT` as a fresh process, `repeats` times: median wall, peak RSS."""
    runs = [run([*CLIPSEARCH, "search", text, "--index", str(index_dir)]) for _ in range(repeats)]
    walls = sorted(r.seconds for r in runs)
    return {
        "median_s": statistics.median(walls),
        "min_s": walls[0],
        "max_s": walls[-1],
        "cpu_s": statistics.median(r.cpu_seconds for r in runs),
        "peak_rss_mb": max(r.peak_rss_mb for r in runs),
        "repeats": repeats,
    }


def warm(index_dir: Path, n: int = 200) -> dict:
    r = run([sys.executable, "-m", "bench.probe", "warm", "--index", str(index_dir), "--n", str(n)])
    return json.loads(r.stdout)


def recall(index_dir: Path, cache: Path, cluster_model, nprobes: list[int], queries: int) -> dict:
    """recall@10 against exact inner-product search over the same vectors, at each nprobe, for
    two query sets: held-out vectors drawn like the data ("members"), and text embeddings of the
    random model ("text": far from every cluster, as text queries are among image embeddings).
    Of the index alone, and of what `clipsearch search` returns (the searcher re-scores an
    approximate index's candidates exactly). Latency: text queries one at a time through the
    searcher (index search, catalog, re-scoring; the text tower excluded)."""
    import faiss

    from bench.probe import queries as captions
    from clipsearch_onnx.search import open_searcher
    from clipsearch_onnx.settings import load_settings

    searcher = open_searcher(load_settings({"index_dir": index_dir}))
    index = searcher.vectors
    shards = sorted((cache / "shards").glob("shard-*"))
    data = vectors.read_all(shards[: -(-index.count // vectors.SHARD_ROWS)])[: index.count]
    sets = {
        "members": cluster_model.sample(queries, np.random.default_rng(12345)),
        "text": searcher.encoder.embed_texts(captions(max(60, queries // 5))),
    }
    say(f"exact search of {sum(map(len, sets.values()))} queries over {len(data):,} vectors")
    exact = faiss.IndexFlatIP(data.shape[1])
    exact.add(data)
    truth = {name: exact.search(q, 10)[1] for name, q in sets.items()}
    del exact, data
    id_to_row = {item.id: vectors.row_of(item.path) for item in searcher.catalog.items()}
    default = index.nprobe
    table = []
    for nprobe in sorted(set(nprobes) | {default}):
        index.meta["nprobe"] = nprobe  # the lists the searcher's index searches read
        row: dict = {"nprobe": nprobe, "default": nprobe == default}
        for name, q in sets.items():
            _, ids = index.search(q, 10)
            raw = [
                len({id_to_row[i] for i in found if i >= 0} & set(t))
                for found, t in zip(ids, truth[name], strict=True)
            ]
            hits, latencies = [], []
            for vector, t in zip(q, truth[name], strict=True):
                t0 = time.perf_counter()
                results = searcher.search_vector(vector, 10)
                latencies.append((time.perf_counter() - t0) * 1000)
                hits.append(len({id_to_row[r.id] for r in results} & set(t)))
            row[name] = {
                "index_recall_at_10": float(np.mean(raw) / 10),
                "recall_at_10": float(np.mean(hits) / 10),
                "p50_ms": float(np.percentile(latencies, 50)),
                "p99_ms": float(np.percentile(latencies, 99)),
            }
        table.append(row)
        say(
            f"nprobe {nprobe}: recall@10 members {row['members']['recall_at_10']:.4f}, "
            f"text {row['text']['recall_at_10']:.4f}"
        )
    searcher.close()
    counts = {name: len(q) for name, q in sets.items()}
    return {"queries": counts, "nlist": index.nlist, "sweep": table}


def measure(cache: Path, model: Path, sizes: list[int], repeats: int, queries: int) -> dict:
    cluster_model = vectors.ClusterModel()
    result: dict = {"sizes": {}}
    for n in sizes:
        info = ensure_index(cache, model, n, cluster_model)
        index_dir = cache / f"index-{n}"
        say(f"{n:,} vectors: open, cold search, warm queries")
        result["sizes"][n] = {
            **info,
            "open": open_figures(index_dir, repeats),
            "cold_search": cold_search(index_dir, repeats),
            "warm": warm(index_dir),
        }
    big = max(sizes)
    if result["sizes"][big]["type"] != "flat":
        nprobes = [32, 64, 125, 250, 1000]
        result["recall"] = recall(cache / f"index-{big}", cache, cluster_model, nprobes, queries)
        result["recall"]["count"] = big
    return result
