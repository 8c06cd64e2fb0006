"""How the tower graphs are laid out on disk, so that a runtime can start quickly.

A one-shot `clipsearch search` spends most of its time loading the text tower, and most of that
copying weights: out of the page cache into a buffer, from the buffer into tensors (ONNX Runtime
reads a whole .onnx file and unpacks it). So each graph keeps its weights in an external data file
beside it (`NAME.onnx.data`) with every tensor at a page-aligned offset, which ONNX Runtime and
OpenVINO map into memory instead of copying. The text graphs are also saved after ONNX Runtime's
basic graph optimisations (constant folding and redundant-node removal; the result uses standard
ONNX operators only, so every backend runs it), so that a quick-start session (see
`clipsearch_onnx.backends.ort`) can skip optimising the graph at load time. Measured on the
full-size text tower (int8, 64 MB), CPU time to create the session: 450-500 ms before, 50-85 ms
after (no load-time optimisation, no weight pre-packing).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ALIGN = 4096  # the page size: ONNX Runtime maps tensors at page-aligned offsets, copies others
MIN_BYTES = 1024  # smaller tensors stay inside the graph
MAP_BYTES = 64 * 1024  # smaller ones are read, not mapped: not worth a page of padding each


def externalise(path: Path) -> Path | None:
    """Moves the weights of the graph at `path` into `path.data`, page-aligned; returns that
    file (None when the graph has no tensor big enough to move)."""
    import onnx
    from onnx.external_data_helper import set_external_data

    model = onnx.load(str(path))
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)
    offset = 0
    for tensor in model.graph.initializer:
        size = len(tensor.raw_data)
        if size < MIN_BYTES:
            continue
        if size >= MAP_BYTES:
            offset = -(-offset // ALIGN) * ALIGN
        set_external_data(tensor, data.name, offset, size)
        tensor.data_location = onnx.TensorProto.EXTERNAL
        offset += size
    if offset == 0:
        return None
    tmp = path.with_name(f".{path.name}.tmp")
    onnx.save_model(model, str(tmp))  # writes the flagged tensors into `data`
    os.replace(tmp, path)
    data.chmod(path.stat().st_mode & 0o777)  # onnx creates it private; it is a model file
    return data


def pre_optimise(path: Path) -> None:
    """Replaces the graph at `path` by ONNX Runtime's basic-level optimisation of it."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="clipsearch-layout-", dir=path.parent) as tmp:
        out = Path(tmp) / path.name
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(out)
        opts.log_severity_level = 3
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        os.replace(out, path)


def lay_out(path: Path, *, optimise: bool) -> list[Path]:
    """The files the graph at `path` consists of afterwards (itself, then its weights)."""
    if optimise:
        pre_optimise(path)
    data = externalise(path)
    return [path] if data is None else [path, data]
