"""Inference backends: what runs an exported tower graph on this CPU.

A backend loads one tower file and runs it: `load(name, path, threads=..., spinning=...)` returns
a `Tower`, whose `run(feeds)` takes the graph's named inputs and returns its one output. Each
backend lives in a module of its own and imports its runtime only when a tower is loaded, so the
core never pays for a runtime it does not use:

- `onnxruntime` (`backends/ort.py`): the core dependency; runs the `.onnx` graphs.
- `openvino` (`backends/ov.py`): optional (`pip install 'clipsearch-onnx[openvino]'`); runs the
  `.onnx` graphs (the int8 image tower from a file of its own, quantised the way it runs
  fastest: the manifest's "backends") and OpenVINO IR (`.xml` + `.bin`).

Which file a tower at a precision is, is the manifest's business; which backend runs it when
none is asked for is decided in `choose`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from clipsearch_onnx import cpu
from clipsearch_onnx.errors import ModelError

if TYPE_CHECKING:  # the names below are read by settings on the one-shot path: no numpy here
    import numpy as np

ONNXRUNTIME = "onnxruntime"
OPENVINO = "openvino"
BACKENDS = (ONNXRUNTIME, OPENVINO)
AUTO = "auto"
CHOICES = (AUTO, *BACKENDS)


class Tower(Protocol):
    """One loaded tower graph."""

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The graph's output for `feeds` (its inputs by name)."""
        ...


def installed(backend: str) -> bool:
    """Whether `backend`'s runtime can be imported here (without importing it)."""
    return importlib.util.find_spec(backend) is not None


def check_name(backend: str) -> str:
    if backend not in CHOICES:
        raise ModelError(f"backend must be one of {', '.join(CHOICES)}, not {backend!r}")
    return backend


def choose(requested: str, tower: str, path: Path, gated: Collection[str] = (ONNXRUNTIME,)) -> str:
    """The backend to run the tower graph at `path` with; `gated`: the backends the export
    checked the model's files on (auto picks no other).

    OpenVINO IR (`.xml`) runs on OpenVINO only. An ONNX graph runs on the backend asked for.
    "auto" picks OpenVINO for the image tower where it is installed and the CPU has int8
    dot-product instructions (VNNI or AMX), ONNX Runtime otherwise. Measured (`make bench`,
    "Speed"; 2 threads, batch 32, full-size ViT-B/32, CPU ms per image):

    - Intel Xeon with AVX-512 VNNI and AMX: OpenVINO runs its int8 image tower (s8 symmetric
      activations) in 8.4 ms, an NNCF int8 model in 9.1, ONNX Runtime the int8 tower in 17-20.
    - AMD Zen 3 (AVX2, no VNNI; previous session): ONNX Runtime ran the int8 image tower
      1.6-2x faster than OpenVINO ran the same graph or an NNCF int8 model.

    The text tower stays on ONNX Runtime everywhere: a one-shot query is mostly loading it,
    which ONNX Runtime does fastest from the export's pre-optimised graph (`quick_start`), and
    a query is one short sequence, where int8 kernels matter little.
    """
    check_name(requested)
    if path.suffix == ".xml":
        if requested == ONNXRUNTIME:
            raise ModelError(f"{path.name} is OpenVINO IR: use --backend openvino (or auto)")
        return OPENVINO
    if requested != AUTO:
        return requested
    if tower == "vision" and OPENVINO in gated and cpu.has_int8_dot() and installed(OPENVINO):
        return OPENVINO
    return ONNXRUNTIME


def load(
    backend: str, path: Path, *, threads: int, spinning: bool = False, quick_start: bool = False
) -> Tower:
    """Load the tower graph at `path` with `backend` ('onnxruntime' or 'openvino').

    `quick_start`: the tower will run a few small inputs (a one-shot text query), so loading it
    fast matters more than running it fast (ONNX Runtime skips load-time graph optimisation and
    weight pre-packing; the export pre-optimised the graphs where that is safe)."""
    if backend == ONNXRUNTIME:
        from clipsearch_onnx.backends.ort import OrtTower

        return OrtTower(path, threads=threads, spinning=spinning, quick_start=quick_start)
    if backend == OPENVINO:
        if not installed(OPENVINO):
            raise ModelError(
                "the openvino backend needs OpenVINO: pip install 'clipsearch-onnx[openvino]'"
            )
        from clipsearch_onnx.backends.ov import OpenVinoTower

        return OpenVinoTower(path, threads=threads, spinning=spinning)
    raise ModelError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
