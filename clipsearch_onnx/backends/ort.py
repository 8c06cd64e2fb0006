"""The ONNX Runtime backend: the core dependency, runs the `.onnx` tower graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clipsearch_onnx.errors import ModelError


class OrtTower:
    def __init__(
        self, path: Path, *, threads: int, spinning: bool = False, quick_start: bool = False
    ) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        if quick_start:
            # Full-size int8 text tower: 450-500 ms of CPU to create the session with both, 50-85
            # without (with the export's pre-optimised, memory-mapped graph), for 5-10 ms more per
            # query (export/layout.py).
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            opts.add_session_config_entry("session.disable_prepacking", "1")
        else:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ONNX Runtime's threads busy-wait between operators by default; that steals the cores
        # decode workers and other processes need (measured in BENCHMARKS.md, "levers").
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"cannot load {path}: {exc}") from exc

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        (out,) = self.session.run(None, feeds)
        return out
