"""Checkpoints worth exporting, with their published quality, size and speed on this CPU.

Quality figures are quoted from their sources, not measured here (no internet for the weights):
- "c3600": Immich's Crossmodal-3600 table (average recall, many languages).
- "flickr8k_t2i_r5": CLIP_benchmark, Flickr8k 1k test split, text-to-image R@5.
Parameter counts are those of the architecture (transformers' configs, counted by
`python -m bench --only models`), and so is `img_s`: int8 image tower, ONNX Runtime, 2 threads,
batch 32, random weights of the same shapes, measured on this machine (see `MEASURED`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT = "openai/clip-vit-base-patch32"
MEASURED = "not yet measured on this machine: run `python -m bench --only models`"


@dataclass(frozen=True)
class Recommendation:
    hub_id: str
    family: str  # "clip" | "siglip"
    architecture: str  # as bench/architectures.py names it
    out: str  # suggested model folder for `make export`
    why: str
    quality: dict[str, float] = field(default_factory=dict)
    params_m: tuple[float, float] = (0.0, 0.0)  # image tower, text tower (millions)
    img_s: float | None = None  # int8 image tower on this CPU (None: not measured)

    @property
    def export_command(self) -> str:
        return f"make export MODEL={self.hub_id} OUT={self.out}"


RECOMMENDED = (
    Recommendation(
        DEFAULT,
        "clip",
        "CLIP ViT-B/32 224",
        "models/clip-vit-b32",
        "the default: what this project was asked for; fastest, weakest; English only",
        {"c3600": 59.4, "flickr8k_t2i_r5": 80.5},
        (87.5, 63.8),
    ),
    Recommendation(
        "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        "clip",
        "CLIP ViT-B/32 224",
        "models/laion-vit-b32",
        "the same architecture and cost as the default, clearly better (LAION-2B); English",
        {"c3600": 68.8, "flickr8k_t2i_r5": 86.3},
        (87.5, 63.8),
    ),
    Recommendation(
        "google/siglip2-base-patch32-256",
        "siglip",
        "SigLIP 2 B/32 256",
        "models/siglip2-b32-256",
        "the best of this size: multilingual, scores are match probabilities (--min-prob); "
        "its text tower is large (Gemma vocabulary), image cost close to ViT-B/32",
        {"c3600": 73.2},
        (94.6, 282.3),
    ),
    Recommendation(
        "google/siglip2-base-patch16-224",
        "siglip",
        "SigLIP 2 B/16 224",
        "models/siglip2-b16-224",
        "finer detail than B/32 at about 4x the image cost; multilingual",
    ),
    Recommendation(
        "openai/clip-vit-base-patch16",
        "clip",
        "CLIP ViT-B/16 224",
        "models/clip-vit-b16",
        "OpenAI's patch-16 model: about 4x the image cost of ViT-B/32",
    ),
    Recommendation(
        "laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K",
        "clip",
        "CLIP ViT-L/14 224",
        "models/datacomp-vit-l14",
        "large (DataComp-1B): for collections indexed once where quality matters more than time",
    ),
    Recommendation(
        "openai/clip-vit-large-patch14-336",
        "clip",
        "CLIP ViT-L/14 336",
        "models/clip-vit-l14-336",
        "the largest here: 336 px input, the slowest by far",
    ),
)
