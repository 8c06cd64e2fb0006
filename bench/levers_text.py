"""The "levers" section of BENCHMARKS.md: what was tried, what was kept, with numbers.

Levers measured live by this run come from `bench.levers`; levers measured once while choosing
the defaults are described in ONCE with the figures measured then (rerunning them needs code
variants that are not shipped).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.report import _table

QUANT_STUDY = Path(__file__).resolve().parent.parent / "export" / "quant_study.json"

ONCE = """\
### Measured once, while choosing (not re-run by `make bench`)

Other jobs shared this 2-core machine while these were measured. Linux's autogroup scheduling
shares the CPU evenly between sessions, so a 2-thread process got about one core however it was
niced. "Idle machine emulated" means the measurement ran in a session of its own with raised
priority (`setsid`, then `echo -20 > /proc/self/autogroup`), which gives it both cores; "under
load" means it shared them. The comparisons were interleaved.

- **Text-tower session creation** (int8, 64 MB): `ORT_ENABLE_ALL` vs `ORT_DISABLE_ALL` vs a
  graph pre-optimised with `optimized_model_filepath` vs the ORT flatbuffer format (with and
  without `session.use_ort_model_bytes_directly`), min of 4 loads each: 0.37-0.46 s for all, within
  noise of one another: loading is reading and unpacking initialisers, not optimising the graph.
  Rejected, kept `ORT_ENABLE_ALL`. `session.disable_prepacking`: loads no faster, a query takes
  40 instead of 17 ms. Rejected.
- **Loading the text tower in a background thread** while FAISS is imported and the index
  opened: cold query 0.457 s in-process either way, whole process 0.603 vs 0.589 s (12 fresh
  processes each, idle machine emulated); at 1M 0.581 vs 0.546 s. The loads contend rather than
  overlap. Rejected (tried in aa60a47, removed).
- **Lazy imports**: Pillow is imported only for image work (`Encoder.preprocess` is built on
  first use); `import clipsearch_onnx.search` 551 -> 486 ms median under load. Kept, guarded by
  `tests/test_startup_imports.py`. Not ours to change: the editable install's import hook costs
  ~30 ms of every start (`python -c pass` 43 ms, `python -S -c pass` 15 ms).
- **Text tower threads for one caption** (CPU per query / p50; idle machine emulated): 1 thread
  8.5 ms / 7.7 ms, 2 threads without spinning 16.3 / 9.6, 2 threads spinning 16.0 / 7.9; under
  background load 8.8 / 23.9, 9.6 / 15.5 and 16.8 / 36.2. Batches of 256 captions: 1 thread 123,
  2 threads 237 captions/s. Kept: the searcher's text tower runs one thread (unless `--threads`
  is given), batch users (eval) keep all cores; no spinning anywhere.
- **FAISS threads for one query**: 10k flat, p50 64 ms with 2 OpenMP threads, 0.56 ms with 1;
  1M ivf-sq8 nprobe 125, one thread 3.9 ms, two threads splitting the probes
  (`parallel_mode=1`) 36 ms. Fork/join waits for a thread a busy machine does not schedule.
  Kept: fewer than 16 queries run on one thread (`VectorIndex.search`).
- **Exact re-scoring** of an IVF index's candidates with the float32 embeddings its shards keep
  (memory-mapped; only the rows read are paged in): the 8-bit codes move scores by ~1e-3, which
  swaps near-ties at the 10th place. recall@10 at 1M, queries drawn like the data: 0.979 ->
  1.000 (nprobe 32-125); 1000 tight clusters (spread 0.3), queries drawn like the data: 0.953 ->
  1.000. Kept (`Searcher.search_vector`, 4k candidates for k results).
- **nprobe** (1M, 4000 lists, ivf-sq8 + re-scoring; text-embedding queries, which are the
  hard case; nprobe 125 / 256 / 512):
  bench/vectors.py data 0.957 / 0.991 / 0.999; 1000 gaussian clusters spread 1.0: 0.959 /
  0.990 / 1.000; 4000 clusters spread 1.0: 0.885 / 0.936 / 0.973; spread 0.3: 1.000 throughout;
  spread 2.0 (members barely closer to each other than to anything): 0.629 / 0.769 / 0.890 - no
  affordable nprobe helps there. Queries drawn like the data: 1.000 from nprobe 32 in all. Index
  search, one query, under load and before the prefetch fix below: 3.9 / 7.1 / 7.8-16 ms.
  Default changed from nlist/32 to nlist/8 (500 at 1M).
- **List prefetching of memory-mapped IVF lists**: faiss opens them as OnDiskInvertedLists,
  which start 32 threads per search to touch the probed lists' pages (24% of samples under
  `perf`). 1M, nprobe 500, one query: 12.7 -> 8.4 ms p50 without them (in RAM instead of mapped:
  6.5 ms, but 512 MB resident); first query after opening 240-570 -> 15-17 ms. Kept
  (`prefetch_nthread = 0` in `VectorIndex.open`).
- **Cheaper codes to afford more probes** (one thread, nprobe 500): SQ8 with one range for all
  dimensions (`QT_8bit_uniform`) scans 26% faster (5.0 vs 8.4 ms mapped) with the same recall
  after re-scoring on this data, but near-duplicate clusters (members at cosine 0.995 to their
  centre) fall from 0.998 to 0.888 recall@10 after re-scoring 40 candidates. Rejected. SQ4: no
  faster than SQ8 in FAISS (8.9 vs 7.8 ms at nprobe 512); SQ6 slower (9.7 vs 7.3 ms); IVF-PQ
  64x4 fast-scan 1.9 ms but recall 0.09-0.24 on text queries even re-scoring 200 candidates.
  Rejected; kept per-dimension SQ8.
- **CPU memory arena** off, indexing: 56.1 vs 56.3 CPU ms/img. Left on.
"""


def render(lev: dict) -> list[str]:
    out = ["## Levers", ""]
    d = lev.get("decode")
    if d:
        out += [
            f"### JPEG draft decoding ({d['images']} photo-sized JPEGs, one thread) - kept",
            "",
        ]
        out += _table(
            ["decoding", "decode + preprocess ms/img", "of which decode ms/img"],
            [
                [name, f"{d[name]['ms_per_img']:.1f}", f"{d[name]['decode_ms_per_img']:.1f}"]
                for name in ("exact", "draft")
            ],
        )
        out += [
            f"Fidelity of draft decoding: preprocessed pixels differ by {d['pixel_diff']['mean']:.4f}"
            f" mean, {d['pixel_diff']['max']:.3f} max (normalised units; one grey level is ~0.015);"
            f" image embeddings (fp32) have cosine {d['cosine']['mean']:.6f} mean,"
            f" {d['cosine']['min']:.6f} min to the exact decode's. For scale: two different images"
            f" have cosine {d['cosine_between_images']:.3f} on average under this random model.",
            "",
        ]
    rows = lev.get("index")
    if rows:
        out += [
            "### Indexing pipeline settings (decode-ahead + int8 vision tower, in one process)",
            "",
        ]
        out += _table(
            ["variant", "img/s", "CPU ms/img"],
            [[r["variant"], f"{r['img_per_s']:.1f}", f"{r['cpu_ms_per_img']:.0f}"] for r in rows],
        )
    rows = lev.get("text")
    if rows:
        out += ["### Text tower settings (int8, one caption per call)", ""]
        out += _table(
            ["variant", "session creation ms", "p50 ms", "p99 ms"],
            [
                [r["variant"], f"{r['create_ms']:.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}"]
                for r in rows
            ],
        )
    c = lev.get("cold")
    if c:
        out += ["### Where a cold one-shot query's time goes (median of fresh processes)", ""]
        out += _table(
            ["stage", "s"],
            [
                ["interpreter start-up and exit", f"{c['process_s'] - c['total_s']:.3f}"],
                ["imports (clipsearch_onnx.search)", f"{c['imports_s']:.3f}"],
                ["open_searcher (index, catalog, model manifest)", f"{c['open_s']:.3f}"],
                [
                    "first query (text tower load, tokenizer, embedding, search)",
                    f"{c['first_query_s']:.3f}",
                ],
                ["whole process", f"{c['process_s']:.3f}"],
            ],
        )
    return out + quant_study() + [ONCE]


def quant_study() -> list[str]:
    """The table `python -m export.quant_study --save` left in export/quant_study.json."""
    try:
        study = json.loads(QUANT_STUDY.read_text())
    except (OSError, ValueError):
        return []
    out = [
        f"### int8 variants (`python -m export.quant_study`, measured {study.get('measured', '?')})",
        "",
        f"Model alone, batch {study.get('batch')} images / captions of {study.get('text_length')} "
        f"tokens, {study.get('threads')} threads; {study.get('speed', '')}. Copied from "
        "`export/quant_study.json`, not re-measured by this run.",
        "",
    ]
    rows = []
    for r in study.get("rows", []):
        v, t = r["vision"], r["text"]
        rows.append(
            [
                r["variant"],
                v["per_s"],
                t["per_s"],
                v.get("mb") or "",
                f"{v.get('cos_mean', 0):.5f} / {t.get('cos_mean', 0):.5f}",
            ]
        )
    return out + _table(
        ["variant", "vision img/s", "text captions/s", "vision MB", "cosine mean vision / text"],
        rows,
    )
