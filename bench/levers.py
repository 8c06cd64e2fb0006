"""Levers measured live, in this process: JPEG draft decoding (speed and fidelity), ONNX Runtime
session options for indexing and for text queries, and where a cold query's time goes."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from bench.run import run, say


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def decode(model: Path, photos: list[Path]) -> dict:
    """Exact vs draft decoding: time per image on one thread, pixel and embedding differences."""
    from clipsearch_onnx.decode import decode as decode_file
    from clipsearch_onnx.encoder import Encoder
    from clipsearch_onnx.manifest import Manifest
    from clipsearch_onnx.pipeline import FAST, REFERENCE, read_bytes, reduce_to

    encoder = Encoder(Manifest.load(model), "fp32")
    pre = encoder.preprocess
    data = [p.read_bytes() for p in photos]
    result: dict = {"images": len(photos)}
    pixels = {}
    for name, decoding in (("exact", REFERENCE), ("draft", FAST)):
        t0 = time.perf_counter()
        decode_s = 0.0
        out = []
        for path, raw in zip(photos, data, strict=True):
            out.append(read_bytes(raw, path, pre, decoding).pixels)
        total = time.perf_counter() - t0
        least = reduce_to(pre) if decoding == FAST else None
        for path, raw in zip(photos, data, strict=True):  # the decoding part alone
            a = time.perf_counter()
            decode_file(path, data=raw, reduce_to=least)
            decode_s += time.perf_counter() - a
        pixels[name] = np.stack(out)
        result[name] = {
            "ms_per_img": 1000 * total / len(photos),
            "decode_ms_per_img": 1000 * decode_s / len(photos),
        }
    diff = np.abs(pixels["exact"] - pixels["draft"])
    exact, draft = (
        np.concatenate([encoder.embed_pixels(p[i : i + 16]) for i in range(0, len(p), 16)])
        for p in (pixels["exact"], pixels["draft"])
    )
    cos = (exact * draft).sum(axis=1)
    others = exact @ exact.T
    result["pixel_diff"] = {"mean": float(diff.mean()), "max": float(diff.max())}
    result["cosine"] = {"mean": float(cos.mean()), "min": float(cos.min())}
    result["cosine_between_images"] = float(others[~np.eye(len(others), dtype=bool)].mean())
    return result


INDEX_VARIANTS = [
    ("default settings", {}),
    ("spinning on", {"spinning": True}),
    ("1 inference thread", {"threads": 1}),
    ("batch 16", {"batch": 16}),
    ("batch 64", {"batch": 64}),
    ("1 decode worker", {"workers": 1}),
    ("3 decode workers", {"workers": 3}),
    ("exact decoding (no draft)", {"decoding": "reference"}),
]


def index_sessions(model: Path, photos: list[Path], variants=INDEX_VARIANTS) -> list[dict]:
    """Decode-ahead pipeline + int8 vision tower in this process, per variant: img/s, CPU."""
    from clipsearch_onnx.encoder import Encoder
    from clipsearch_onnx.manifest import Manifest
    from clipsearch_onnx.pipeline import decoded_batches

    manifest = Manifest.load(model)
    paths = [str(p) for p in photos]
    rows = []
    for name, v in variants:
        encoder = Encoder(manifest, "int8", v.get("threads"), spinning=v.get("spinning", False))
        encoder.session("vision")
        t0, c0 = time.perf_counter(), _cpu()
        for batch in decoded_batches(
            paths,
            str,
            encoder.preprocess,
            v.get("batch", 32),
            v.get("workers", 2),
            decoding=v.get("decoding", "fast"),
        ):
            encoder.embed_pixels(np.stack([out.pixels for _, out in batch]))
        seconds, cpu = time.perf_counter() - t0, _cpu() - c0
        rows.append(
            {
                "variant": name,
                "img_per_s": len(paths) / seconds,
                "cpu_ms_per_img": 1000 * cpu / len(paths),
            }
        )
        say(f"lever {name}: {rows[-1]['img_per_s']:.1f} img/s")
    return rows


def text_sessions(model: Path, texts: list[str]) -> list[dict]:
    """Text tower at int8: session creation and one-caption latency per variant."""
    from clipsearch_onnx.encoder import Encoder
    from clipsearch_onnx.manifest import Manifest

    manifest = Manifest.load(model)
    rows = []
    for name, threads, spinning in (
        ("1 thread (the searcher's default)", 1, False),
        ("2 threads, no spinning (batches: eval)", 2, False),
        ("2 threads, spinning (ONNX Runtime's default)", 2, True),
    ):
        encoder = Encoder(manifest, "int8", threads, text_threads=threads, spinning=spinning)
        t0 = time.perf_counter()
        encoder.session("text")
        created = time.perf_counter() - t0
        encoder.embed_texts(texts[:3])
        ms = []
        for text in texts:
            a = time.perf_counter()
            encoder.embed_texts([text])
            ms.append(1000 * (time.perf_counter() - a))
        rows.append(
            {
                "variant": name,
                "create_ms": 1000 * created,
                "p50_ms": float(np.percentile(ms, 50)),
                "p99_ms": float(np.percentile(ms, 99)),
            }
        )
    return rows


def cold_breakdown(index_dir: Path, repeats: int) -> dict:
    """Where a cold one-shot query's time goes, median over fresh processes."""
    runs = []
    for _ in range(repeats):
        r = run([sys.executable, "-m", "bench.probe", "cold", "--index", str(index_dir)])
        stages = json.loads(r.stdout)
        stages["process_s"] = r.seconds
        runs.append(stages)
    return {k: float(np.median([x[k] for x in runs])) for k in runs[0]}
