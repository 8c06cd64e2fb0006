"""PyTorch -> ONNX: the two towers (CLIP or SigLIP) as separate fp32 graphs.

optimum's "feature-extraction" export of CLIP is one graph holding both towers whose embeddings
are already L2-normalised, and its per-tower configs either lack the projection
(`clip_vision_model`) or the attention mask (`clip-text-with-projection`). So the towers are
traced here from two small wrappers around `get_image_features` / `get_text_features`, which is
exactly what the runtime contract asks for. The text graph takes the inputs the checkpoint's
tokenizer returns (`text_inputs`): SigLIP v1 models take input_ids only.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

OPSET = 17


class VisionTower(nn.Module):
    """pixel_values float32 [B,3,S,S] -> image_embeds [B,D] (projected, not normalised)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.get_image_features(pixel_values=pixel_values)


class TextTower(nn.Module):
    """`inputs` (input_ids[, attention_mask]) int64 [B,L] -> text_embeds [B,D] (projected, not
    normalised)."""

    def __init__(self, model: nn.Module, inputs: list[str]) -> None:
        super().__init__()
        self.model = model
        self.inputs = list(inputs)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.model.get_text_features(**dict(zip(self.inputs, args, strict=True)))


def export_vision(model: nn.Module, image_size: int, path: Path, opset: int = OPSET) -> None:
    dummy = torch.randn(2, 3, image_size, image_size)
    _export(
        VisionTower(model),
        (dummy,),
        path,
        ["pixel_values"],
        "image_embeds",
        {"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
        opset,
    )


def export_text(
    model: nn.Module, feed: dict[str, np.ndarray], path: Path, opset: int = OPSET
) -> None:
    """`feed`: the tokenizer's output for two texts of different lengths (padding and pooling
    are exercised while tracing; the sequence axis stays dynamic)."""
    names = list(feed)
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    _export(
        TextTower(model, names),
        tuple(torch.from_numpy(np.asarray(feed[n], dtype=np.int64)) for n in names),
        path,
        names,
        "text_embeds",
        {**axes, "text_embeds": {0: "batch"}},
        opset,
    )


def _export(module, args, path, input_names, output_name, dynamic_axes, opset) -> None:
    module.eval()
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about Python-int shape arithmetic in transformers' mask helpers; the
        # verification step (and the dynamic-L test) is what proves the graph right.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # eos pooling indexes rows by argmax positions, which are never negative
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        # dynamo=False is deliberate: the TorchScript exporter handles these towers with dynamic
        # batch and sequence axes in one call; its deprecation notice is not news to the user
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=input_names,
            output_names=[output_name],
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
