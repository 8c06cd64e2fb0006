"""The exported model's `manifest.json`: what the runtime needs to know about a model folder.

`python -m export` writes it; the runtime reads it, checks each file against its recorded sha256
before use (once per file version: the result is cached beside the file), and fingerprints the
model so an index can refuse queries made with another one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipsearch_onnx.errors import ModelError

MANIFEST = "manifest.json"
FORMAT = 2  # the newest manifest format this runtime reads (export/manifest.py writes it)
PRECISIONS = ("int8", "fp32")
TOWERS = ("vision", "text")
# What manifests written before the "preprocess" entry mean (CLIP's CLIPImageProcessor).
CLIP_PREPROCESS = {"resize": "shortest_edge", "resample": "bicubic", "center_crop": True}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    model_dir: Path
    fingerprint: str  # sha256 of manifest.json: identifies the model an index was built with
    family: str  # "clip" | "siglip": the tokenizer, preprocessing and score rules to apply
    source: dict[str, Any]
    embedding_dim: int
    image_size: int
    resize_shortest_edge: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    context_length: int
    tokenizer: dict[str, Any]
    text_inputs: tuple[str, ...]  # what the text tower takes, as the checkpoint's tokenizer gives
    preprocess: dict[str, Any]  # resize ("shortest_edge"|"square"), resample, center_crop
    scores: dict[str, Any]  # kind ("softmax"|"sigmoid"), logit_scale, logit_bias
    files: dict[str, dict[str, Any]]
    precisions: dict[str, dict[str, str]]
    default_precision: str
    # {backend: {precision: {tower: name}}}: a file that backend runs instead of the
    # precision's usual one (OpenVINO's int8 image tower, quantised the way it runs fastest)
    backends: dict[str, dict[str, dict[str, str]]]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def load(cls, model_dir: Path | str) -> Manifest:
        model_dir = Path(model_dir).expanduser()
        path = model_dir / MANIFEST
        if not model_dir.is_dir():
            raise ModelError(
                f"model folder {model_dir} does not exist; export one with "
                "`make export` (or `python -m export --model SRC --out DIR`)"
            )
        try:
            blob = path.read_bytes()
            data = json.loads(blob)
        except FileNotFoundError:
            raise ModelError(
                f"{model_dir} has no {MANIFEST}: not an exported clipsearch model "
                "(export one with `python -m export --model SRC --out DIR`)"
            ) from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read {path}: {exc}") from exc
        version = data.get("format", 1) if isinstance(data, dict) else None
        if not isinstance(version, int) or version > FORMAT:
            raise ModelError(
                f"{path} is not a manifest this version reads (format {version!r}, it reads up "
                f"to {FORMAT}): upgrade clipsearch, or export the model again"
            )
        try:
            return cls(
                model_dir=model_dir,
                fingerprint=hashlib.sha256(blob).hexdigest(),
                family=str(data.get("family", "clip")),
                source=data["source"],
                embedding_dim=int(data["embedding_dim"]),
                image_size=int(data["image_size"]),
                resize_shortest_edge=int(data.get("resize_shortest_edge", data["image_size"])),
                image_mean=tuple(float(v) for v in data["image_mean"]),  # type: ignore[arg-type]
                image_std=tuple(float(v) for v in data["image_std"]),  # type: ignore[arg-type]
                context_length=int(data.get("context_length", 77)),
                tokenizer=data["tokenizer"],
                text_inputs=tuple(data.get("text_inputs", ("input_ids", "attention_mask"))),
                preprocess={**CLIP_PREPROCESS, **data.get("preprocess", {})},
                scores=data.get("scores", {"kind": "softmax"}),
                files=data["files"],
                precisions=data["precisions"],
                default_precision=data.get("default_precision", "int8"),
                backends=data.get("backends", {}),
                raw=data,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"{path} is incomplete or malformed ({exc!r}); re-run the export"
            ) from exc

    @property
    def has_probability(self) -> bool:
        """Whether a text-image cosine converts to a match probability (SigLIP's sigmoid)."""
        return self.scores.get("kind") == "sigmoid"

    def probability(self, cosine: float) -> float | None:
        """SigLIP: sigmoid(logit_scale * cosine + logit_bias), the probability that an image
        matches a text (comparable across queries). CLIP (softmax-trained): None, since its
        cosines are only comparable between results of the same query."""
        if not self.has_probability:
            return None
        logit = float(self.scores["logit_scale"]) * cosine + float(self.scores["logit_bias"])
        return 1.0 / (1.0 + math.exp(-logit)) if logit > -700 else 0.0

    @property
    def gated_backends(self) -> tuple[str, ...]:
        """The backends the export checked this model's files on (ONNX Runtime always; others
        have their figures under their name in the manifest's "fidelity")."""
        fidelity = self.raw.get("fidelity") or {}
        return ("onnxruntime", *(b for b in ("openvino",) if b in fidelity))

    def tower_path(self, tower: str, precision: str, backend: str | None = None) -> Path:
        """The verified ONNX file of `tower` ('vision'|'text') at `precision` ('int8'|'fp32'),
        as `backend` runs it (its own file where the export wrote one, else the usual)."""
        return self.verified_with_companions(self.tower_name(tower, precision, backend))

    def tower_name(self, tower: str, precision: str, backend: str | None = None) -> str:
        """The file name `tower_path` verifies and returns (nothing read)."""
        if precision not in self.precisions:
            raise ModelError(
                f"model {self.model_dir} has no {precision} variant "
                f"(it has: {', '.join(sorted(self.precisions))})"
            )
        own = self.backends.get(backend or "", {}).get(precision, {}).get(tower)
        return own or self.precisions[precision][tower]

    def verified_with_companions(self, name: str) -> Path:
        """`verified(name)` after verifying its weights file (NAME.data) too."""
        for companion in self.files:  # its weights (NAME.data), listed under their own name
            if companion.startswith(name + "."):
                self.verified(companion)
        return self.verified(name)

    def verified(self, name: str) -> Path:
        """Path of file `name` after checking it against the manifest's sha256."""
        path = self.model_dir / name
        entry = self.files.get(name)
        if entry is None:
            raise ModelError(
                f"{MANIFEST} in {self.model_dir} does not list {name}; re-run the export"
            )
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ModelError(f"model file {path} is missing; re-run the export") from None
        if "bytes" in entry and st.st_size != int(entry["bytes"]):
            raise ModelError(
                f"model file {path} has {st.st_size} bytes, the manifest says {entry['bytes']}: "
                "the file is damaged or incomplete; re-run the export"
            )
        stamp = path.with_name(f".{name}.verified")
        key = f"{entry['sha256']} {st.st_size} {st.st_mtime_ns} {st.st_ino}"
        try:
            if stamp.read_text() == key:
                return path
        except OSError:
            pass
        actual = sha256_file(path)
        if actual != entry["sha256"]:
            raise ModelError(
                f"model file {path} does not match its sha256 in {MANIFEST} "
                "(damaged or replaced); re-run the export"
            )
        try:
            tmp = stamp.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(key)
            os.replace(tmp, stamp)
        except OSError:
            pass  # a read-only model folder is fine: we simply verify again next time
        return path
