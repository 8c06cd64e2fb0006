"""Writing `manifest.json`, the contract `clipsearch_onnx.manifest.Manifest` reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from clipsearch_onnx.manifest import MANIFEST, sha256_file
from export import families

FORMAT = 2  # 2: family, preprocess, text_inputs, scores, tokenizer kind (1 = CLIP only)
PRECISIONS = {
    "fp32": {"vision": "vision.onnx", "text": "text.onnx"},
    "int8": {"vision": "vision.int8.onnx", "text": "text.int8.onnx"},
}
# Files one backend runs instead of the precision's usual one: {backend: {precision: {tower:
# name}}} (the manifest's "backends"; older runtimes ignore it and run `PRECISIONS`' files).
BACKEND_FILES = {"openvino": {"int8": {"vision": "vision.int8.openvino.onnx"}}}
TOOLS = {
    "torch": "torch",
    "transformers": "transformers",
    "optimum": "optimum",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
}


def tool_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for key, dist in TOOLS.items():
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[key] = None
    return versions


def file_entries(model_dir: Path) -> dict[str, dict[str, object]]:
    """sha256 and size of every regular file in `model_dir` except the manifest itself."""
    return {
        p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(model_dir.iterdir())
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
    }


def build(
    ckpt,
    model_dir: Path,
    *,
    opset: int,
    tokenizer_entry: dict,
    quantization: dict,
    fidelity: dict,
    default_precision: str = "int8",
    backends: dict | None = None,
) -> dict:
    pre = ckpt.preprocess
    return {
        "format": FORMAT,
        "family": ckpt.family,
        "source": {"model": ckpt.source, "revision": ckpt.revision},
        "embedding_dim": ckpt.embedding_dim,
        "image_size": ckpt.image_size,
        "resize_shortest_edge": pre["resize_shortest_edge"],
        "image_mean": pre["image_mean"],
        "image_std": pre["image_std"],
        "preprocess": {k: pre[k] for k in ("resize", "resample", "center_crop")},
        "context_length": ckpt.context_length,
        "tokenizer": tokenizer_entry,
        "text_inputs": ckpt.text_inputs,
        "scores": families.scores_entry(ckpt.family, ckpt.model),
        "opset": opset,
        "files": file_entries(model_dir),
        "precisions": PRECISIONS,
        "backends": BACKEND_FILES if backends is None else backends,
        "default_precision": default_precision,
        "quantization": quantization,
        "fidelity": fidelity,
        "tools": tool_versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write(model_dir: Path, manifest: dict) -> Path:
    path = model_dir / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path
