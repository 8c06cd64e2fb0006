"""BENCHMARKS.md from the figures of one run."""

from __future__ import annotations

from typing import Any

TARGET_RATIO = 2.0
TARGET_COLD_S = 1.0
TARGET_COLD_1M_S = 1.5
TARGET_RSS_1M_MB = 600
TARGET_RECALL = 0.95
TARGET_WARM_P50_MS = 20


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _ok(met: bool) -> str:
    return "yes" if met else "**no**"


def machine(m: dict, load: tuple[float, float]) -> list[str]:
    out = ["## Machine", ""]
    out += _table(
        ["", ""],
        [
            ["CPU", m["cpu"]],
            ["SIMD", ", ".join(m["isa"])],
            ["cores", f"{m['physical_cores']} physical, {m['logical_cpus']} logical"],
            ["memory", f"{m['memory_gb']} GB"],
            ["OS / Python", f"{m['os']} / {m['python']}"],
            ["load average (1 min) at start / end", f"{load[0]:.2f} / {load[1]:.2f}"],
        ],
    )
    out += _table(["library", "version"], [[k, v] for k, v in m["versions"].items()])
    return out


NAMES = {
    "torch-fp32": "(a) prototype: transformers CLIPProcessor + CLIPModel, PyTorch fp32",
    "onnx-fp32": "(b) `clipsearch index --precision fp32`",
    "onnx-int8": "(c) `clipsearch index --precision int8` (default)",
}


def throughput(sets: list[dict]) -> list[str]:
    out = [
        "## Embedding throughput",
        "",
        "Whole processes on the same JPEGs (JPEG decode, preprocessing, encoding; ours also hashes "
        "each file, writes the catalog and publishes the index), interleaved round by round; "
        "median wall time over the rounds. *whole* = images / process wall time from start to "
        "exit, *steady* = images / time spent embedding (after imports and model load). "
        "Cosine: our embedding of each image against the prototype's.",
        "",
    ]
    for data in sets:
        out += [f"### {data['title']}", ""]
        rows = []
        for name, f in data["pipelines"].items():
            cos = f.get("cosine_to_torch")
            rows.append(
                [
                    NAMES[name],
                    f"{f['img_per_s']:.2f}",
                    f"{f['ratio']:.2f}x",
                    f"{f['steady_img_per_s']:.2f}",
                    f"{f['steady_ratio']:.2f}x",
                    f"{f['cpu_ms_per_img']:.0f}",
                    f"{f['peak_rss_mb']:.0f}",
                    f"{cos['mean']:.6f} / {cos['min']:.6f}" if cos else "reference",
                ]
            )
        out += _table(
            [
                "pipeline",
                "whole img/s",
                "vs (a)",
                "steady img/s",
                "vs (a)",
                "CPU ms/img",
                "peak RSS MB",
                "cosine to (a) mean / min",
            ],
            rows,
        )
        walls = ", ".join(
            f"{name.split('-', 1)[0] if name == 'torch-fp32' else name}: "
            + " / ".join(f"{w:.1f}" for w in f["walls"])
            for name, f in data["pipelines"].items()
        )
        out += [f"{data['images']} images in {data['folder']}; wall seconds per round: {walls}", ""]
    return out


def queries(q: dict) -> list[str]:
    cold, warm = q["cold"], q["warm"]
    out = ["## Text queries (small index)", ""]
    out += _table(
        ["figure", "value"],
        [
            ["index", f"{q['count']} images, {q['type']}, int8 model"],
            [
                f"cold one-shot `clipsearch search TEXT`, median of {cold['repeats']} (min-max)",
                f"{cold['median_s']:.3f} s ({cold['min_s']:.3f}-{cold['max_s']:.3f}), "
                f"CPU {cold['cpu_s']:.2f} s",
            ],
            ["cold one-shot peak RSS", f"{cold['peak_rss_mb']:.0f} MB"],
            [
                f"warm query p50 / p99 ({warm['queries']} captions)",
                f"{warm['query']['p50_ms']:.1f} / {warm['query']['p99_ms']:.1f} ms",
            ],
            [
                "of which text embedding p50 / p99",
                f"{warm['text_embedding']['p50_ms']:.1f} / {warm['text_embedding']['p99_ms']:.1f} ms",
            ],
        ],
    )
    return out


def large(data: dict) -> list[str]:
    out = [
        "## Large collections",
        "",
        "Clustered unit vectors (see `bench/vectors.py`: 200 themes, 2000 clusters of log-normal "
        "sizes) imported with `clipsearch import --precision int8`; `auto` picks `flat` below "
        "200k vectors and `ivf-sq8` above. Cold search: `clipsearch search TEXT` as a fresh "
        "process (text tower load, index open, query). Warm: one process, text queries.",
        "",
    ]
    rows = []
    for n, f in sorted(data["sizes"].items(), key=lambda kv: int(kv[0])):
        cold, warm = f["cold_search"], f["warm"]
        rows.append(
            [
                f"{int(n):,}",
                f"{f['type']}" + (f" (nprobe {f['nprobe']})" if f.get("nprobe") else ""),
                f"{f['bytes'] / 1e6:.0f}",
                f"{f['import_s']:.0f}",
                f"{f['open']['open_ms']:.0f}",
                f"{f['open']['rss_added_mb']:.0f} / {f['open']['rss_mb']:.0f}",
                f"{cold['median_s']:.2f} ({cold['min_s']:.2f}-{cold['max_s']:.2f})",
                f"{cold['peak_rss_mb']:.0f}",
                f"{warm['query']['p50_ms']:.1f} / {warm['query']['p99_ms']:.1f}",
                f"{warm['index_search']['p50_ms']:.2f}",
            ]
        )
    out += _table(
        [
            "vectors",
            "index",
            "file MB",
            "import s",
            "open ms",
            "RSS after open MB (added / process)",
            "cold search s, median (min-max)",
            "cold peak RSS MB",
            "warm query p50 / p99 ms",
            "index search p50 ms",
        ],
        rows,
    )
    if "recall" in data:
        r = data["recall"]
        out += [
            f"### recall@10 at {r['count']:,} vectors against exact search",
            "",
            f"Exact = faiss IndexFlatIP over the same float32 vectors; nlist {r['nlist']}. "
            f"*members*: {r['queries']['members']} held-out vectors drawn like the data (fresh "
            "members of the same clusters, never indexed). *text*: "
            f"{r['queries']['text']} captions embedded by the random model's text tower: far "
            "from every cluster, as a text query is among image embeddings, and the harder case "
            "for an IVF index. *index*: the IVF's own top 10 (8-bit codes); *clipsearch*: what "
            "`clipsearch search` returns (candidates re-scored with their exact embeddings). "
            "Latency: text queries one at a time through the searcher (index, catalog, "
            "re-scoring; no text tower).",
            "",
        ]
        rows = []
        for s in r["sweep"]:
            m, t = s["members"], s["text"]
            rows.append(
                [
                    f"{s['nprobe']}" + (" (default)" if s["default"] else ""),
                    f"{m['index_recall_at_10']:.4f}",
                    f"{m['recall_at_10']:.4f}",
                    f"{t['index_recall_at_10']:.4f}",
                    f"{t['recall_at_10']:.4f}",
                    f"{t['p50_ms']:.2f} / {t['p99_ms']:.2f}",
                ]
            )
        out += _table(
            [
                "nprobe",
                "members: index",
                "members: clipsearch",
                "text: index",
                "text: clipsearch",
                "latency p50 / p99 ms",
            ],
            rows,
        )
    return out


def targets(results: dict) -> list[str]:
    rows = []
    for data in results.get("throughput", []):
        f = data["pipelines"]["onnx-int8"]
        rows.append(
            [
                f"`clipsearch index` vs prototype, {data['title']}",
                f">= {TARGET_RATIO:.1f}x",
                f"{f['ratio']:.2f}x",
                _ok(f["ratio"] >= TARGET_RATIO),
            ]
        )
    if "queries" in results:
        cold = results["queries"]["cold"]["median_s"]
        rows.append(
            [
                f"cold `clipsearch search`, {results['queries']['count']} images",
                f"<= {TARGET_COLD_S} s",
                f"{cold:.2f} s",
                _ok(cold <= TARGET_COLD_S),
            ]
        )
    sizes = results.get("large", {}).get("sizes", {})
    million = sizes.get(1_000_000) or sizes.get("1000000")
    if million:
        cold, rss = million["cold_search"]["median_s"], million["cold_search"]["peak_rss_mb"]
        warm = million["warm"]["query"]["p50_ms"]
        rows += [
            [
                "cold `clipsearch search`, 1M",
                f"<= {TARGET_COLD_1M_S} s",
                f"{cold:.2f} s",
                _ok(cold <= TARGET_COLD_1M_S),
            ],
            [
                "peak RSS of that search, 1M",
                f"<= {TARGET_RSS_1M_MB} MB",
                f"{rss:.0f} MB",
                _ok(rss <= TARGET_RSS_1M_MB),
            ],
            [
                "warm query p50, 1M",
                f"< {TARGET_WARM_P50_MS} ms",
                f"{warm:.1f} ms",
                _ok(warm < TARGET_WARM_P50_MS),
            ],
        ]
        default = next(s for s in results["large"]["recall"]["sweep"] if s["default"])
        for name in ("members", "text"):
            got = default[name]["recall_at_10"]
            rows.append(
                [
                    f"recall@10 vs exact, 1M, {name} queries",
                    f">= {TARGET_RECALL}",
                    f"{got:.4f}",
                    _ok(got >= TARGET_RECALL),
                ]
            )
    if "web" in results:
        from bench.web import target_rows

        rows += target_rows(results["web"])
    return ["## Targets", ""] + _table(["target", "goal", "measured", "met"], rows)


def render(results: dict, levers_text: list[str]) -> str:
    out = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`{' '.join(['python -m bench', results['args']]).strip()}`) "
        f"on {results['date']}, in {results['minutes']:.0f} minutes. Every figure below comes "
        "from this one run, apart from the levers marked as measured once.",
        "",
        results.get("conditions") or "",
        "",
        "Model: a full-size CLIP ViT-B/32 (the architecture of `openai/clip-vit-base-patch32`) "
        "with random weights, built locally and exported with `python -m export` "
        f"(int8: {results['model']['quantization']}). Speed does not depend on the weights' "
        "values; fidelity figures on random weights are indicative only.",
        "",
    ]
    out += targets(results)
    out += machine(results["machine"], results["load"])
    if results.get("throughput"):
        out += throughput(results["throughput"])
    if "queries" in results:
        out += queries(results["queries"])
    if "web" in results:
        from bench.web import render as web

        out += web(results["web"], results["queries"]["count"])
    if "speed" in results:
        from bench.speed import render as speed

        out += speed(results["speed"])
    if "large" in results:
        out += large(results["large"])
    out += levers_text
    return "\n".join(out).rstrip() + "\n"
