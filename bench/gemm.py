"""The limit: this CPU's GEMM throughput with the kernels the runtimes use, int8 and fp32.

    python -m bench.gemm [--threads 2] [--reps 15]   # one JSON line

ViT-B/32 is ~4.4 GMAC per image, nearly all of it in four GEMMs per layer over the batch's tokens
(32 images x 50 tokens = 1600 rows): QKV and output projections (768 -> 2304, 768 -> 768) and
the MLP (768 -> 3072 -> 768). Each kernel multiplies those four shapes; its throughput is MACs
over the best of `reps` timed rounds (the best, because this measures what the CPU can do, not
what a shared machine let it do; the kernels take turns within each round). Kernels:

- fp32: ONNX Runtime MatMul (MLAS) and OpenVINO MatMul (oneDNN), both in fp32.
- int8: ONNX Runtime MatMulInteger u8 x s8 (what its int8 graphs run) and OpenVINO's int8
  FullyConnected (u8 activations x i8 weights, from FakeQuantize, as NNCF's models run).
- bf16: OpenVINO with a bf16 inference precision, only where the CPU has AVX512_BF16 or AMX.

The limit of a precision is its fastest kernel; `img_per_s` is what that implies for the model,
`cpu_ms_per_img` the CPU time (all threads) it implies per image: on a shared machine CPU time
is the steadier of the two.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROWS = 1600
SHAPES = ((768, 2304), (768, 768), (768, 3072), (3072, 768))  # (K, N) per layer
GMAC_PER_IMAGE = 4.4
GMACS = ROWS * sum(k * n for k, n in SHAPES) / 1e9


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def best_seconds(runs: list[Callable[[], object]], reps: int) -> list[tuple[float, float]]:
    """Each run's best wall time and best CPU time (all threads) over `reps` rounds, the runs
    taken in turn within each round."""
    for run in runs:
        run()
    best = [(float("inf"), float("inf"))] * len(runs)
    for _ in range(reps):
        for i, run in enumerate(runs):
            t0, c0 = time.perf_counter(), time.process_time()
            run()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            best[i] = (min(best[i][0], wall), min(best[i][1], cpu))
    return best


def _ort_graph(op: str, x_type: int, w: np.ndarray, out_type: int, k: int, n: int):
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node(op, ["x", "w"], ["y"])],
        "gemm",
        [helper.make_tensor_value_info("x", x_type, [ROWS, k])],
        [helper.make_tensor_value_info("y", out_type, [ROWS, n])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def ort_kernel(precision: str, threads: int) -> Callable[[], None]:
    import onnxruntime as ort
    from onnx import TensorProto

    rng = np.random.default_rng(0)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # CPU time is work
    runs = []
    for k, n in SHAPES:
        if precision == "fp32":
            w = rng.standard_normal((k, n), dtype=np.float32)
            blob = _ort_graph("MatMul", TensorProto.FLOAT, w, TensorProto.FLOAT, k, n)
            x: np.ndarray = rng.standard_normal((ROWS, k), dtype=np.float32)
        else:  # 7-bit weights, as the export writes them
            w = rng.integers(-64, 64, (k, n), dtype=np.int8)
            blob = _ort_graph("MatMulInteger", TensorProto.UINT8, w, TensorProto.INT32, k, n)
            x = rng.integers(0, 256, (ROWS, k), dtype=np.uint8)
        sess = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
        runs.append((sess, x))
    return lambda: [s.run(None, {"x": x}) for s, x in runs] and None


def ov_kernel(precision: str, threads: int) -> Callable[[], None]:
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    core = ov.Core()
    config = {
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
    }
    runs = []
    for k, n in SHAPES:
        p = ops.parameter([ROWS, k], ov.Type.f32)
        w = rng.standard_normal((k, n), dtype=np.float32) * 0.05
        if precision == "int8":
            lo, hi = ops.constant(np.float32(-4)), ops.constant(np.float32(4))
            x_in = ops.fake_quantize(p, lo, hi, lo, hi, 256)
            scale = np.abs(w).max(axis=0, keepdims=True) / 127
            q = np.round(w / scale).astype(np.int8)
            w_in = ops.multiply(ops.convert(ops.constant(q), ov.Type.f32), ops.constant(scale))
        else:
            x_in, w_in = p, ops.constant(w)
        model = ov.Model([ops.matmul(x_in, w_in, False, False)], [p])
        request = core.compile_model(model, "CPU", config).create_infer_request()
        runs.append((request, rng.standard_normal((ROWS, k), dtype=np.float32)))
    return lambda: [r.infer({0: x}) for r, x in runs] and None


def measure(threads: int, reps: int) -> dict:
    flags = cpu_flags()
    kernels: list[tuple[str, str, Callable[[str, int], Callable[[], None]]]] = [
        ("fp32", "onnxruntime MatMul (MLAS)", ort_kernel),
        ("int8", "onnxruntime MatMulInteger u8 x s8 (MLAS)", ort_kernel),
    ]
    try:
        import openvino  # noqa: F401

        kernels += [
            ("fp32", "openvino MatMul (oneDNN)", ov_kernel),
            ("int8", "openvino FullyConnected u8 x i8 (oneDNN)", ov_kernel),
        ]
        if flags & {"avx512_bf16", "amx_bf16"}:
            kernels.append(("bf16", "openvino MatMul bf16 (oneDNN)", ov_kernel))
    except ImportError:
        pass
    seconds = best_seconds([make(precision, threads) for precision, _, make in kernels], reps)
    rows = [
        {
            "precision": precision,
            "kernel": name,
            "gmac_per_s": GMACS / wall,
            "gmac_per_cpu_s": GMACS / cpu,
        }
        for (precision, name, _), (wall, cpu) in zip(kernels, seconds, strict=True)
    ]
    limits = {}
    for row in rows:
        best = limits.get(row["precision"])
        if best is None or row["gmac_per_s"] > best["gmac_per_s"]:
            limits[row["precision"]] = row
    return {
        "threads": threads,
        "rows_per_gemm": ROWS,
        "shapes": [list(s) for s in SHAPES],
        "kernels": rows,
        "limits": {
            p: {
                "kernel": r["kernel"],
                "gmac_per_s": r["gmac_per_s"],
                "img_per_s": r["gmac_per_s"] / GMAC_PER_IMAGE,
                "cpu_ms_per_img": 1000 * GMAC_PER_IMAGE / r["gmac_per_cpu_s"],
            }
            for p, r in limits.items()
        },
        "bf16": "measured" if "bf16" in limits else "not on this CPU (no AVX512_BF16 / AMX)",
        "isa": sorted(flags & {"avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"}),
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.gemm", description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=15)
    args = p.parse_args()
    print(json.dumps(measure(args.threads, args.reps)))


if __name__ == "__main__":
    main()
