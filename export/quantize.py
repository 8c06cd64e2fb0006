"""fp32 ONNX -> int8 ONNX with onnxruntime.quantization, in the variants `quant_study` compares.

Each tower has its default (`DEFAULTS`): the image tower static (activation scales calibrated at
export, export/calibration.py), the text tower dynamic; both with 7-bit per-channel weights so
that the same file is faithful on every x86 CPU. `WHY_DEFAULT` says why; the manifest records it.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

PREPROCESS = ("none", "pre_process", "ort_fusion")


@dataclass(frozen=True)
class QuantSettings:
    mode: str = "dynamic"  # "dynamic" (activations scaled per batch at run time) | "static"
    per_channel: bool = True  # one weight scale per output channel instead of per tensor
    weight_type: str = "QInt8"  # QInt8 | QUInt8
    activation_type: str = "QUInt8"  # static only (dynamic is always uint8)
    # 7-bit weights: on AVX2 CPUs without VNNI, ONNX Runtime multiplies u8 activations by s8
    # weights with vpmaddubsw, whose int16 pair sums saturate with full-range weights. An export
    # runs wherever its users are, so the default must not depend on the exporting CPU.
    reduce_range: bool = True
    op_types: tuple[str, ...] = ("MatMul", "Gemm", "Gather")
    # none: the exported graph (onnxruntime still optimises the quantised graph when loading it);
    # pre_process: onnxruntime's quant_pre_process (symbolic shape inference + basic graph
    # optimisation) first; ort_fusion: onnxruntime.transformers' CLIP fusions (Attention,
    # SkipLayerNorm, QuickGelu) first, so that with "Attention" in op_types attention becomes
    # one QAttention op.
    preprocess: str = "none"
    calibration: str = "MinMax"  # static only: MinMax | Entropy | Percentile
    # static only: whether the quantised ops' outputs are quantised too (a QuantizeLinear after
    # each MatMul, so ONNX Runtime runs QLinearMatMul and requantises). Off: they stay float
    # (ONNX Runtime fuses DequantizeLinear + MatMul into MatMulIntegerToFloat, OpenVINO into an
    # int8 FullyConnected with float output, as NNCF places its FakeQuantize), which is faster
    # on both and closer to fp32 (measured on an Intel Xeon with AMX, in WHY_VISION).
    quantize_outputs: bool = True
    # static only: activation scales symmetric around zero (zero point 0). With QInt8
    # activations OpenVINO runs s8 x s8 GEMMs without zero-point compensation; ONNX Runtime
    # runs s8 activations far slower than u8 (3x on that Xeon), so only OpenVINO's file has it.
    activation_symmetric: bool = False

    def label(self) -> str:
        parts = [self.mode, "per-channel" if self.per_channel else "per-tensor", self.weight_type]
        if self.mode == "static":
            parts += [f"act={self.activation_type}", self.calibration]
            if self.activation_symmetric:
                parts.append("symmetric-act")
            if not self.quantize_outputs:
                parts.append("float-outputs")
        if self.reduce_range:
            parts.append("reduce-range")
        parts.append("+".join(self.op_types))
        if self.preprocess != "none":
            parts.append(f"after {self.preprocess}")
        return " ".join(parts)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["op_types"] = list(self.op_types)
        return d

    def but(self, **changes) -> QuantSettings:
        return replace(self, **changes)


DEFAULT = QuantSettings()  # the text tower's, and the base of quant_study's variants
# Static QDQ for images: Conv (the patch embedding) stays fp32, as in DEFAULT.
VISION_DEFAULT = DEFAULT.but(mode="static", op_types=("MatMul", "Gemm"), quantize_outputs=False)
DEFAULTS = {"vision": VISION_DEFAULT, "text": DEFAULT}
# OpenVINO's own image tower: the same calibration, symmetric s8 activations and the patch
# embedding (Conv) quantised too, which OpenVINO's CPU plugin runs as s8 x s8 AMX/VNNI kernels.
VISION_OPENVINO = VISION_DEFAULT.but(
    op_types=("MatMul", "Gemm", "Conv"), activation_type="QInt8", activation_symmetric=True
)
# Files written for one backend only: {backend: {tower: settings}} (the manifest's "backends").
BACKEND_DEFAULTS = {"openvino": {"vision": VISION_OPENVINO}}
WHY_VISION = (
    "Static activation scales for the image tower (measured on an AMD Zen 3, AVX2 without VNNI, "
    "2 threads; `make bench`): an image's vector no longer depends on its batch neighbours "
    "(cosine alone vs in a batch of 4: 0.9984 dynamic on a sensitive tiny CLIP, 1.000000 "
    "static), fidelity to PyTorch on photo-like images is the same as dynamic (min cosine "
    "0.994-0.996 on that checkpoint), and it runs at 0.85-1.0x the dynamic graph's speed on "
    "ONNX Runtime, 1.6x OpenVINO running an NNCF int8 model of the same tower. The text tower "
    "stays dynamic: static scales lost fidelity there (min 0.988-0.994 vs 0.995), and queries "
    "are embedded one at a time, where dynamic scales have no batch to depend on. "
    "On an Intel Xeon with AVX-512 VNNI and AMX (2 threads, full-size ViT-B/32, CPU ms per "
    "image, interleaved on a loaded machine): leaving the MatMul outputs in float instead of "
    "requantising them took ONNX Runtime from 23.0 to 19.0 ms and OpenVINO from 16.5 to 12.5, "
    "and raised the min cosine to fp32 from 0.99956 to 0.99966. OpenVINO gets a file of its "
    "own (VISION_OPENVINO: symmetric s8 activations, Conv quantised too): 8.4-9.2 ms, against "
    "9.1-9.3 for an NNCF int8 model of the same tower; ONNX Runtime runs s8 activations 3x "
    "slower, hence two files."
)
WHY_DEFAULT = (
    "Measured by `python -m export.quant_study` on a random-weight ViT-B/32 (table in 'study'; "
    "2 threads on a shared machine: differences under ~10% are noise). Dynamic int8 is 2.2-2.6x "
    "ONNX fp32 (which is 1.7x PyTorch on images). Per-channel weights are as fast as per-tensor "
    "with higher fidelity. reduce_range (7-bit weights) is on: on an AVX2 CPU without VNNI "
    "(AMD Zen 3) full-range weights saturate ONNX Runtime's u8*s8 kernel, and a tiny CLIP's "
    "text tower fell to cosine 0.81 against PyTorch (0.997 with reduce_range); on VNNI CPUs it "
    "costs a little fidelity and no speed. Quantising Gather (the token embedding table) is what "
    "brings text.int8 under half of fp32 (64 vs 140 of 254 MB) at no measurable fidelity cost. "
    "QUInt8 weights and static QInt8 activations are clearly slower on this CPU; static QDQ "
    "with QUInt8 activations is no faster than dynamic, less faithful, and would need calibration "
    "data representative of real photos, which the export does not have; dynamic quantisation "
    "takes activation ranges from each batch. Quantising after quant_pre_process or after "
    "onnxruntime's CLIP fusions gave no gain beyond noise (onnxruntime optimises the graph when "
    "it loads it anyway) and needs symbolic shape inference, so the exported graph is quantised "
    "as is. Conv (the patch embedding) stays fp32: ConvInteger is slower and saves only 7 MB."
)


def quantize(
    src: Path,
    dst: Path,
    settings: QuantSettings = DEFAULT,
    *,
    num_heads: int = 0,
    hidden_size: int = 0,
    calibration: list[dict[str, np.ndarray]] | None = None,
) -> None:
    """Write the int8 version of `src` to `dst`.

    `num_heads`/`hidden_size` (of the tower) are needed by the ort_fusion preprocess; `calibration`
    (a list of feeds) by static quantisation.
    """
    if settings.preprocess not in PREPROCESS:
        raise ValueError(f"preprocess must be one of {PREPROCESS}, not {settings.preprocess!r}")
    hint = _DropHint("pre-processing")  # measured: see quant_study
    logging.getLogger().addFilter(hint)
    try:
        _quantize(src, dst, settings, num_heads, hidden_size, calibration)
    finally:
        logging.getLogger().removeFilter(hint)


def _quantize(src, dst, settings, num_heads, hidden_size, calibration) -> None:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    with tempfile.TemporaryDirectory(prefix="clipsearch-quant-", dir=dst.parent) as tmp:
        model = _preprocess(src, Path(tmp), settings.preprocess, num_heads, hidden_size)
        common = dict(
            op_types_to_quantize=list(settings.op_types),
            per_channel=settings.per_channel,
            reduce_range=settings.reduce_range,
            weight_type=QuantType[settings.weight_type],
        )
        if settings.mode == "dynamic":
            quantize_dynamic(model, dst, **common)
        elif settings.mode == "static":
            if not calibration:
                raise ValueError("static quantisation needs calibration feeds")
            extra: dict = {
                "CalibTensorRangeSymmetric": False,
                "ActivationSymmetric": settings.activation_symmetric,
            }
            if not settings.quantize_outputs:
                extra["OpTypesToExcludeOutputQuantization"] = list(settings.op_types)
            quantize_static(
                model,
                dst,
                _Reader(calibration),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType[settings.activation_type],
                calibrate_method=CalibrationMethod[settings.calibration],
                extra_options=extra,
                **common,
            )
        else:
            raise ValueError(f"mode must be 'dynamic' or 'static', not {settings.mode!r}")


def _preprocess(src: Path, tmp: Path, how: str, num_heads: int, hidden_size: int) -> Path:
    if how == "none":
        return src
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = tmp / "preprocessed.onnx"
    if how == "pre_process":
        # auto_merge: the text tower's mask arithmetic leaves symbolic dims the inference must
        # unify (without it: "Incomplete symbolic shape inference")
        quant_pre_process(str(src), str(out), auto_merge=True)
        return out
    from onnxruntime.transformers.optimizer import optimize_model

    fused = tmp / "fused.onnx"
    optimized = optimize_model(
        str(src), model_type="clip", num_heads=num_heads, hidden_size=hidden_size, opt_level=1
    )
    optimized.save_model_to_file(str(fused))
    # the fused graph has no value_info for its new tensors; the quantiser needs their types
    quant_pre_process(str(fused), str(out), skip_optimization=True, auto_merge=True)
    return out


class _DropHint(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = feeds
        self._it: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._feeds)
