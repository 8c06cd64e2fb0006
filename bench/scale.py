"""Scale: synthetic collections of 1M, 2M and 10M clustered 512-d vectors (bench/vectors.py)
imported with `clipsearch import`, as issue 12 asks (`python -m bench --only scale`).

Per size: import wall time and peak memory (RssAnon sampled every 20 ms, and ru_maxrss, which
also counts the memory-mapped shards' pages), index open time, a one-shot `clipsearch search`
with a warm page cache and after dropping it (`echo 3 > /proc/sys/vm/drop_caches`, root only),
recall@10 against exact search over an nprobe sweep (text-tower queries and held-out members),
and the time and memory to add 1 and 10,000 vectors with `clipsearch import`. Indexes are cached
(CACHE/scale/index-N + .json): delete them to measure again. 10M vectors are 20 GB of shards.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench import vectors
from bench.large import CLIPSEARCH, QUERY, open_figures
from bench.run import run, say

SIZES = (1_000_000, 2_000_000, 10_000_000)
ADDS = (1, 10_000)


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def one_shot(index_dir: Path, cold: bool, repeats: int) -> dict:
    """`clipsearch search QUERY` as a fresh process: median wall time of `repeats` runs, each
    after dropping the page cache when `cold` (else after one run to warm it)."""
    cmd = [*CLIPSEARCH, "search", QUERY, "--index", str(index_dir)]
    if not cold:
        subprocess.run(cmd, check=True, capture_output=True)
    walls, cpus = [], []
    for _ in range(repeats):
        if cold and not drop_caches():
            return {"skipped": "cannot drop the page cache (needs root)"}
        done = run(cmd)
        walls.append(done.seconds)
        cpus.append(done.cpu_seconds)
    return {
        "median_s": statistics.median(walls),
        "min_s": min(walls),
        "max_s": max(walls),
        "cpu_s": statistics.median(cpus),  # user + system: what a busy machine does not inflate
        "load": os.getloadavg()[0],
    }


def import_index(cache: Path, model: Path, n: int, shards: list[Path]) -> dict:
    index_dir = cache / f"index-{n}"
    stamp = cache / f"index-{n}.json"
    if stamp.exists() and index_dir.is_dir():
        return json.loads(stamp.read_text())
    shutil.rmtree(index_dir, ignore_errors=True)
    job = job_folder(cache / f"job-{n}", shards)
    say(f"{n:,} vectors: clipsearch import of a job folder of {len(shards)} shards")
    cmd = [*CLIPSEARCH, "import", str(job), "--model", str(model), "--precision", "int8"]
    done = run([*cmd, "--index", str(index_dir), "-q"], anon=True)
    info = {
        "import_s": done.seconds,
        "import_peak_anon_mb": done.peak_anon_mb,
        "import_maxrss_mb": done.peak_rss_mb,
    }
    stamp.write_text(json.dumps(info))
    return info


def job_folder(job: Path, shards: list[Path]) -> Path:
    """A job folder of `shards` as `embed-shards` writes one (each shard complete with its
    shard.json): the path `clipsearch import JOB` takes. Files are hard links (no copies)."""
    for number, shard in enumerate(shards):
        dest = job / shard.name
        if (dest / "shard.json").exists():
            continue
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("embeddings.npy", "items.jsonl"):
            (dest / name).unlink(missing_ok=True)
            os.link(shard / name, dest / name)
        rows = sum(1 for _ in open(shard / "items.jsonl", "rb"))
        (dest / "shard.json").write_text(json.dumps({"part": number, "rows": rows}))
    return job


def add_vectors(cache: Path, model: Path, index_dir: Path, n: int, seed: int) -> dict:
    """Imports a shard of `n` fresh vectors into the index: time and peak RssAnon."""
    shard = cache / f"add-{n}-{seed}"
    if not (shard / "items.jsonl").exists():
        rng = np.random.default_rng(seed)
        shard.mkdir(parents=True, exist_ok=True)
        np.save(shard / "embeddings.npy", vectors.ClusterModel().sample(n, rng))
        lines = [json.dumps({"path": f"/added/{seed}/{i:07d}.jpg"}) + "\n" for i in range(n)]
        (shard / "items.jsonl").write_text("".join(lines))
    cmd = [*CLIPSEARCH, "import", str(shard), "--index", str(index_dir), "-q"]
    done = run(cmd, anon=True)
    return {
        "seconds": done.seconds,
        "peak_anon_mb": done.peak_anon_mb,
        "maxrss_mb": done.peak_rss_mb,
    }


def exact_top10(shards: list[Path], n: int, queries: np.ndarray) -> np.ndarray:
    """Rows (in the synthetic stream) of each query's exact top 10, shard by shard."""
    import faiss

    best_s = np.full((len(queries), 10), -np.inf, np.float32)
    best_r = np.full((len(queries), 10), -1, np.int64)
    for number, shard in enumerate(shards):
        emb = np.load(shard / "embeddings.npy", mmap_mode="r")[: n - number * vectors.SHARD_ROWS]
        s, r = faiss.knn(queries, np.ascontiguousarray(emb), 10, metric=faiss.METRIC_INNER_PRODUCT)
        s_all = np.concatenate([best_s, s], axis=1)
        r_all = np.concatenate([best_r, r + number * vectors.SHARD_ROWS], axis=1)
        top = np.argsort(-s_all, axis=1)[:, :10]
        best_s = np.take_along_axis(s_all, top, axis=1)
        best_r = np.take_along_axis(r_all, top, axis=1)
    return best_r


def recall_sweep(index_dir: Path, shards: list[Path], n: int, n_text: int, n_members: int) -> dict:
    from bench.probe import queries as captions
    from clipsearch_onnx.search import open_searcher
    from clipsearch_onnx.settings import load_settings

    searcher = open_searcher(load_settings({"index_dir": index_dir}))
    index = searcher.vectors
    sets = {
        "text": searcher.encoder.embed_texts(captions(n_text)),
        "members": vectors.ClusterModel().sample(n_members, np.random.default_rng(12345)),
    }
    say(f"exact search of {sum(map(len, sets.values()))} queries over {n:,} vectors")
    truth = {name: exact_top10(shards, n, q) for name, q in sets.items()}
    default, nlist = index.nprobe, index.nlist
    probes = sorted({max(1, nlist // d) for d in (64, 32, 16, 8, 4)} | {default})
    rows_of: dict[int, int] = {}

    def rows(ids) -> set[int]:
        missing = [int(i) for i in ids if i >= 0 and int(i) not in rows_of]
        for item in searcher.catalog.by_ids(missing).values():
            rows_of[item.id] = vectors.row_of(item.path) if "/synthetic/" in item.path else -1
        return {rows_of.get(int(i), -1) for i in ids if i >= 0}

    table = []
    for nprobe in probes:
        index.meta["nprobe"] = nprobe  # what the searcher asks the index for by default
        row: dict = {"nprobe": nprobe, "default": nprobe == default}
        for name, q in sets.items():
            _, ids = index.search(q, 10)
            raw = [len(rows(f) & set(t)) for f, t in zip(ids, truth[name], strict=True)]
            hits, ms = [], []
            for vector, t in zip(q, truth[name], strict=True):
                t0 = time.perf_counter()
                results = searcher.search_vector(vector, 10)
                ms.append((time.perf_counter() - t0) * 1000)
                hits.append(len(rows([r.id for r in results]) & set(t)))
            row[name] = {
                "index_recall_at_10": float(np.mean(raw) / 10),
                "recall_at_10": float(np.mean(hits) / 10),
                "p50_ms": float(np.percentile(ms, 50)),
                "p99_ms": float(np.percentile(ms, 99)),
            }
        say(
            f"nprobe {nprobe}: recall@10 text {row['text']['recall_at_10']:.4f}, "
            f"members {row['members']['recall_at_10']:.4f}, p50 {row['text']['p50_ms']:.1f} ms"
        )
        table.append(row)
    index.meta["nprobe"] = default
    searcher.close()
    return {"nlist": nlist, "queries": {k: len(v) for k, v in sets.items()}, "sweep": table}


def measure(cache: Path, model: Path, sizes: list[int], quick: bool = False) -> dict:
    cache = cache / "scale"
    cache.mkdir(parents=True, exist_ok=True)
    shard_dir = cache.parent / "large" / "shards"  # the large bench's stream: 1M = its first 10
    say(f"generating {max(sizes):,} clustered vectors as shards in {shard_dir} (cached)")
    shards = vectors.write_shards(shard_dir, max(sizes), vectors.ClusterModel(), 1)
    result: dict = {"load_start": os.getloadavg(), "sizes": {}}
    for n in sizes:
        figures = import_index(cache, model, n, shards[: -(-n // vectors.SHARD_ROWS)])
        index_dir = cache / f"index-{n}"
        say(f"{n:,} vectors: open, one-shot searches warm and cold")
        figures["open"] = open_figures(index_dir, 3)
        figures["one_shot_warm"] = one_shot(index_dir, False, 3)
        figures["one_shot_cold"] = one_shot(index_dir, True, 3)
        meta = json.loads(_index_json(index_dir).read_text())
        figures.update(type=meta["type"], nlist=meta.get("nlist"), nprobe=meta.get("nprobe"))
        if n == max(sizes):
            # (held-out members reach 0.99 early; at 10M each query of the sweep scans up to
            # 2.5M codes, so fewer of them keep the sweep to minutes)
            members = 300 if n < 5_000_000 else 100
            figures["recall"] = recall_sweep(index_dir, shards, n, 60 if quick else 200, members)
        for added in ADDS:
            say(f"{n:,} vectors: adding {added:,}")
            figures[f"add_{added}"] = add_vectors(cache, model, index_dir, added, seed=n + added)
        result["sizes"][n] = figures
        (cache / "results.json").write_text(json.dumps(result, indent=1, default=str))
    result["load_end"] = os.getloadavg()
    (cache / "results.json").write_text(json.dumps(result, indent=1, default=str))
    return result


def _index_json(index_dir: Path) -> Path:
    current = index_dir / "current"
    if current.exists():
        return index_dir / current.read_text().strip() / "index.json"
    return index_dir / "index.json"


def merge(paths: list[Path]) -> dict:
    """The scale figures of several `--only scale` runs (their CACHE/scale.json): every size,
    a later file's replacing an earlier one's, and each run's load and conditions."""
    merged: dict = {"sizes": {}, "runs": []}
    for path in paths:
        result = json.loads(Path(path).read_text())
        merged["sizes"].update(result["sizes"])
        run_ = {k: result.get(k) for k in ("load_start", "load_end", "conditions")}
        merged["runs"].append({**run_, "sizes": list(result["sizes"])})
    return merged


def _wall_cpu(figures: dict) -> str:
    wall = f"{figures.get('median_s', float('nan')):.2f}"
    return f"{wall} ({figures['cpu_s']:.2f})" if "cpu_s" in figures else wall


def render(result: dict) -> list[str]:
    lines = ["## Scale: 1M to 10M vectors (issue 12)", ""]
    for run_ in result.get("runs", [result]):
        sizes = ", ".join(f"{int(n):,}" for n in run_.get("sizes", result["sizes"]))
        load = [[round(x, 1) for x in run_.get(k) or []] for k in ("load_start", "load_end")]
        note = f" ({run_['conditions']})" if run_.get("conditions") else ""
        lines.append(
            f"- {sizes}: load average (1, 5, 15 min) at start {load[0]}, end {load[1]}{note}"
        )
    lines.append("")
    lines += [
        "| vectors | type, nlist, nprobe | import s | import peak RssAnon MB | open ms | "
        "one-shot warm s (CPU s) | one-shot cold s (CPU s) | add 1: s / MB | add 10k: s / MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, f in sorted(result["sizes"].items(), key=lambda kv: int(kv[0])):
        cold = f["one_shot_cold"]
        lines.append(
            f"| {int(n):,} | {f['type']}, {f['nlist']}, {f['nprobe']} | {f['import_s']:.0f} | "
            f"{f['import_peak_anon_mb']:.0f} | {f['open']['open_ms']:.0f} | "
            f"{_wall_cpu(f['one_shot_warm'])} | {_wall_cpu(cold)} | "
            f"{f['add_1']['seconds']:.1f} / {f['add_1']['peak_anon_mb']:.0f} | "
            f"{f['add_10000']['seconds']:.1f} / {f['add_10000']['peak_anon_mb']:.0f} |"
        )
    sizes = {int(n): f for n, f in result["sizes"].items()}
    lines += ["", *targets(sizes)]
    for n, f in result["sizes"].items():
        if "recall" not in f:
            continue
        r = f["recall"]
        lines += [
            "",
            f"### recall@10 at {int(n):,} vectors against exact search (nlist {r['nlist']})",
            "",
            f"{r['queries']['text']} text-tower queries (the bench model's text embeddings of "
            f"captions) and {r['queries']['members']} held-out members. *index*: the IVF's own "
            "top 10; *clipsearch*: after the searcher's exact re-scoring. Latency: the searcher, "
            "one text query at a time, warm.",
            "",
            "| nprobe | text: index | text: clipsearch | members: index | members: clipsearch "
            "| p50 / p99 ms |",
            "|---|---|---|---|---|---|",
        ]
        for row in r["sweep"]:
            t, m = row["text"], row["members"]
            mark = " (default)" if row["default"] else ""
            lines.append(
                f"| {row['nprobe']}{mark} | {t['index_recall_at_10']:.4f} | "
                f"{t['recall_at_10']:.4f} | {m['index_recall_at_10']:.4f} | "
                f"{m['recall_at_10']:.4f} | {t['p50_ms']:.1f} / {t['p99_ms']:.1f} |"
            )
    return lines


BASELINE = (
    "Baseline (issue 12, main before it, 1M vectors, 2 cores and 24 GB, an earlier session's CPU): "
    "import 282 s and 5.7 GB; "
    "adding one vector 83 s and 6.3 GB; one-shot query 0.9-1.0 s warm, 11.7 s cold."
)


def targets(sizes: dict[int, dict]) -> list[str]:
    """Issue 12's targets beside what was measured."""
    out = [BASELINE, "", "Targets (issue 12) and the figures above against them:", ""]
    peak = {n: f["import_peak_anon_mb"] for n, f in sizes.items()}
    if 1_000_000 in peak and 2_000_000 in peak:
        ratio = peak[2_000_000] / peak[1_000_000]
        out.append(
            f"- import peak RssAnon 2M <= 1.25x 1M and <= 1.5 GB: {ratio:.2f}x, "
            f"{peak[2_000_000]:.0f} MB"
        )
    if 10_000_000 in sizes:
        f = sizes[10_000_000]
        out.append(
            f"- 10M import <= 2 GB and <= 30 min: {peak[10_000_000]:.0f} MB, "
            f"{f['import_s'] / 60:.1f} min"
        )
    if 1_000_000 in sizes:
        a = sizes[1_000_000]["add_1"]
        out.append(
            f"- adding one vector to 1M <= 5 s and 500 MB: {a['seconds']:.1f} s, "
            f"{a['peak_anon_mb']:.0f} MB"
        )
    for n, f in sorted(sizes.items()):
        line = (
            f"- {n:,}: one-shot warm <= 1 s: {_wall_cpu(f['one_shot_warm'])} s; "
            f"cold <= 3 s: {_wall_cpu(f['one_shot_cold'])} s (wall, and CPU in brackets)"
        )
        if "load" in f["one_shot_warm"]:
            line += f", at load {f['one_shot_warm']['load']:.1f}"
        default = [r for r in f.get("recall", {}).get("sweep", []) if r["default"]]
        if default:
            line += (
                f"; recall@10 text >= 0.95 at the default: {default[0]['text']['recall_at_10']:.4f}"
            )
        out.append(line)
    return out


if __name__ == "__main__":
    sys.exit("run it as `python -m bench --only scale`")
