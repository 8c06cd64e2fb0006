"""The OpenVINO backend (optional): runs the exported `.onnx` graphs (and OpenVINO IR, `.xml` +
`.bin`). The static int8 image tower's quantise/dequantise pairs become int8 GEMMs in OpenVINO's
CPU plugin, as in an NNCF model. fp32 graphs run in fp32 (`INFERENCE_PRECISION_HINT`), never
silently in bf16 or fp16, so that an fp32 export means the same everywhere. Compiled graphs are cached in
`paths.cache_dir()/openvino` (OpenVINO's own cache, keyed by the graph and the settings): the
full-size int8 image tower compiles in ~1.6 s of CPU, loads from the cache in ~0.2 s.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from clipsearch_onnx import paths
from clipsearch_onnx.errors import ModelError


class OpenVinoTower:
    def __init__(self, path: Path, *, threads: int, spinning: bool = False) -> None:
        del spinning  # OpenVINO's threads (TBB) have no such switch
        import openvino as ov

        config = {
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",  # one request at a time, all threads on it
            "INFERENCE_PRECISION_HINT": "f32",
            "ENABLE_CPU_PINNING": False,  # the cores are shared with decoders and other programs
        }
        core = ov.Core()
        cache = paths.cache_dir() / "openvino"
        try:
            cache.mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(cache)})
        except (OSError, RuntimeError):
            pass  # no cache: every load compiles the graph again
        try:
            compiled = core.compile_model(str(path), "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError for everything
            raise ModelError(f"cannot load {path} with OpenVINO: {exc}") from exc
        # An infer request serves one call at a time (a second thread's infer() raises "Infer
        # Request is busy", and its output buffer is overwritten by the next call), while the
        # compiled model hands out requests to any thread: one request per calling thread
        # (`clipsearch serve` embeds uploads on several query workers at once).
        self.compiled = compiled
        self._local = threading.local()
        # a port can carry several tensor names (OpenVINO merges an input with what aliases it)
        self.inputs = [port.get_names() for port in compiled.inputs]

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        ordered = []
        for names in self.inputs:
            (name,) = names & feeds.keys()
            ordered.append(feeds[name])
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        result = request.infer(ordered)
        # the output buffer belongs to the request and is overwritten by the next call
        return np.array(result[0], copy=True)
