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

- **int8 quantisation variant** (static vs dynamic, per-channel vs per-tensor, fused attention
  before quantising, reduce-range, u8 weights): studied by `python -m export.quant_study`, which
  writes `export/quant_study.json`; every export records that table in its manifest. The shipped
  default is dynamic per-channel int8 on MatMul, Gemm and Gather (`export/quantize.py`).
- **Text-tower session creation** (int8, ~64 MB): `ORT_ENABLE_ALL` vs `DISABLE_ALL` vs a
  pre-optimised graph saved with `optimized_model_filepath` vs the ORT flatbuffer format (with and
  without `use_ort_model_bytes_directly`), min of 4 loads each: 0.37-0.46 s for all of them, within
  the noise of one another. Loading is dominated by reading and unpacking the initialisers, not by
  graph optimisation. Rejected; kept `ORT_ENABLE_ALL`. `session.disable_prepacking` loads no
  faster and doubles the latency of a query (17 -> 40 ms). Rejected.
- **Overlapping start-up**: ONNX Runtime releases the GIL while it creates a session (a Python
  loop in another thread ran at full speed meanwhile). `open_searcher` now starts loading the
  text tower in a thread before FAISS is imported and the index opened. Kept.
- **FAISS threads for one query**: OpenMP's fork/join for a single query on a busy 2-core machine
  (load ~9): flat 10k p50 64 ms with 2 threads, 0.56 ms with 1. `VectorIndex.search` runs fewer
  than 16 queries on one thread. Kept.
- **Arena** (`enable_cpu_mem_arena` off) for indexing: no difference beyond noise (56.1 vs
  56.3 CPU ms/img). Left on.
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
                ["open_searcher (index, catalog; text tower starts loading)", f"{c['open_s']:.3f}"],
                [
                    "first query (waits for the text tower, tokenizer, search)",
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
