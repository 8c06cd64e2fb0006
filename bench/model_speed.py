"""The model alone: image-tower throughput of each backend and precision, and of the peer.

    python -m bench.model_speed --model DIR --peer VISION.xml [--dynamic VISION.onnx]
        --images DIR [--rounds 3] [--threads 2] [--batch 32]      # one JSON line

One batch of real pictures (preprocessed once), run by every candidate in turn, round after
round, so load from other processes hits all alike; img/s from each candidate's median round.
Candidates: clipsearch's default (int8, backend chosen by `backends.choose`), its fp32, both
graphs on the other backend, the peer (an NNCF int8 model on OpenVINO, bench/peer.py) and, when
given, the previous default (dynamic int8). Cosine: each candidate's vectors against ONNX
Runtime fp32 (the export's own fidelity gate checks every shipped graph against PyTorch).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

Runner = Callable[[np.ndarray], np.ndarray]


def _encoder_runner(model: Path, precision: str, backend: str, threads: int) -> tuple[str, Runner]:
    from clipsearch_onnx.encoder import Encoder
    from clipsearch_onnx.manifest import Manifest

    encoder = Encoder(Manifest.load(model), precision, threads, backend=backend)
    tower = encoder.session("vision")
    return encoder.backend_of("vision"), lambda px: tower.run({"pixel_values": px})


def _file_runner(path: Path, backend: str, threads: int) -> Runner:
    from clipsearch_onnx import backends

    tower = backends.load(backend, path, threads=threads)
    return lambda px: tower.run({"pixel_values": px})


def _bf16_runner(path: Path, threads: int) -> Runner:
    """The fp32 graph run by OpenVINO in bf16 (AMX / AVX512_BF16), which clipsearch never does
    by default (its fp32 means fp32): the precision the issue asked to weigh against int8."""
    import openvino as ov

    config = {
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "bf16",
        "ENABLE_CPU_PINNING": False,
    }
    request = ov.Core().compile_model(str(path), "CPU", config).create_infer_request()
    return lambda px: np.array(request.infer([px])[0], copy=True)


def candidates(args: argparse.Namespace) -> list[tuple[str, str, Runner]]:
    """(name, precision, runner) of every candidate that can run here."""
    from clipsearch_onnx import backends

    chosen, default = _encoder_runner(args.model, "int8", "auto", args.threads)
    out = [(f"clipsearch default: int8 static on {chosen}", "int8", default)]
    other = "openvino" if chosen == "onnxruntime" else "onnxruntime"
    out.append(
        (
            "clipsearch fp32 on onnxruntime",
            "fp32",
            _encoder_runner(args.model, "fp32", "onnxruntime", args.threads)[1],
        )
    )
    if backends.installed("openvino"):
        out.append(
            (
                f"clipsearch int8 static on {other}",
                "int8",
                _encoder_runner(args.model, "int8", other, args.threads)[1],
            )
        )
        out.append(
            (
                "clipsearch fp32 on openvino (f32)",
                "fp32",
                _encoder_runner(args.model, "fp32", "openvino", args.threads)[1],
            )
        )
        from clipsearch_onnx import cpu

        if cpu.flags() & {"avx512_bf16", "amx_bf16"}:
            out.append(
                (
                    "clipsearch fp32 graph on openvino in bf16",
                    "bf16",
                    _bf16_runner(args.model / "vision.onnx", args.threads),
                )
            )
        out.append(
            (
                "peer: NNCF int8 on openvino",
                "int8",
                _file_runner(args.peer, "openvino", args.threads),
            )
        )
    if args.dynamic:
        out.append(
            (
                "previous default: int8 dynamic on onnxruntime",
                "int8",
                _file_runner(args.dynamic, "onnxruntime", args.threads),
            )
        )
    return out


def batch(images: Path, size: int, count: int) -> np.ndarray:
    from bench.peer import pixels

    files = sorted(images.glob("*.jpg"))[:count]
    return np.stack([pixels(p, size) for p in files])


def measure(args: argparse.Namespace) -> dict:
    from clipsearch_onnx.manifest import Manifest

    size = Manifest.load(args.model).image_size
    px = batch(args.images, size, args.batch)
    cands = candidates(args)
    outputs = {name: run(px) for name, _, run in cands}  # warm-up, and the vectors compared
    seconds: dict[str, list[float]] = {name: [] for name, _, _ in cands}
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in cands}
    for _ in range(args.rounds):
        for name, _, run in cands:
            t0, c0 = time.perf_counter(), time.process_time()
            run(px)
            seconds[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    ref = outputs["clipsearch fp32 on onnxruntime"]
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    rows = []
    for name, precision, _ in cands:
        got = outputs[name] / np.linalg.norm(outputs[name], axis=1, keepdims=True)
        cos = (got * ref).sum(axis=1)
        rows.append(
            {
                "name": name,
                "precision": precision,
                "img_per_s": len(px) / statistics.median(seconds[name]),
                "img_per_s_best": len(px) / min(seconds[name]),
                "cpu_ms_per_img": 1000 * statistics.median(cpu[name]) / len(px),
                "cos_min": float(cos.min()),
                "cos_mean": float(cos.mean()),
            }
        )
    return {"batch": len(px), "rounds": args.rounds, "threads": args.threads, "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.model_speed", description=__doc__)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--peer", type=Path, required=True)
    p.add_argument("--dynamic", type=Path)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    print(json.dumps(measure(p.parse_args())))


if __name__ == "__main__":
    main()
