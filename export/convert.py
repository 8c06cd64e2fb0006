"""PyTorch -> ONNX: the two CLIP towers as separate fp32 graphs.

optimum's "feature-extraction" export of CLIP is one graph holding both towers whose embeddings
are already L2-normalised, and its per-tower configs either lack the projection
(`clip_vision_model`) or the attention mask (`clip-text-with-projection`). So the towers are
traced here from two small wrappers around `get_image_features` / `get_text_features`, which is
exactly what the runtime contract asks for.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

OPSET = 17


class VisionTower(nn.Module):
    """pixel_values float32 [B,3,S,S] -> image_embeds [B,D] (projected, not normalised)."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.clip.get_image_features(pixel_values=pixel_values)


class TextTower(nn.Module):
    """input_ids, attention_mask int64 [B,L] -> text_embeds [B,D] (projected, not normalised)."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.clip.get_text_features(input_ids=input_ids, attention_mask=attention_mask)


def export_vision(clip: nn.Module, image_size: int, path: Path, opset: int = OPSET) -> None:
    dummy = torch.randn(2, 3, image_size, image_size)
    _export(
        VisionTower(clip),
        (dummy,),
        path,
        ["pixel_values"],
        "image_embeds",
        {"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
        opset,
    )


def export_text(clip: nn.Module, bos_id: int, eos_id: int, path: Path, opset: int = OPSET) -> None:
    # Two rows of different lengths so padding and eos pooling are exercised while tracing; the
    # sequence axis is dynamic, so L here (7) says nothing about the L the graph accepts.
    ids = torch.tensor(
        [[bos_id, 5, 6, 7, 8, 9, eos_id], [bos_id, 5, 6, eos_id, eos_id, eos_id, eos_id]]
    )
    mask = torch.tensor([[1] * 7, [1, 1, 1, 1, 0, 0, 0]])
    _export(
        TextTower(clip),
        (ids, mask),
        path,
        ["input_ids", "attention_mask"],
        "text_embeds",
        {
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "text_embeds": {0: "batch"},
        },
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
