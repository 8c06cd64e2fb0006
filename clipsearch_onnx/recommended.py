"""Checkpoints worth exporting, with their published quality and size.

Quality figures are quoted from their sources, not measured here (no internet for the weights):
- "c3600": Immich's Crossmodal-3600 table (average recall, many languages).
- "flickr8k_t2i_r5": CLIP_benchmark, Flickr8k 1k test split, text-to-image R@5.
Parameter counts are those of the architecture (transformers' configs with the hub checkpoints'
shapes, bench/architectures.py: the image tower, and the rest of the model as the text tower).
Speed is not listed: it depends on the CPU, and `python -m bench --only models` measures each
architecture's image tower on this one (see `SPEED`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT = "openai/clip-vit-base-patch32"
SPEED = "image speed on this CPU: `python -m bench --only models` measures each image tower"


@dataclass(frozen=True)
class Recommendation:
    hub_id: str
    family: str  # "clip" | "siglip"
    architecture: str  # as bench/architectures.py names it
    out: str  # suggested model folder for `make export`
    why: str
    quality: dict[str, float] = field(default_factory=dict)
    params_m: tuple[float, float] = (0.0, 0.0)  # image tower, text tower (millions)

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
        params_m=(92.9, 282.3),
    ),
    Recommendation(
        "openai/clip-vit-base-patch16",
        "clip",
        "CLIP ViT-B/16 224",
        "models/clip-vit-b16",
        "OpenAI's patch-16 model: about 4x the image cost of ViT-B/32",
        params_m=(85.8, 63.8),
    ),
    Recommendation(
        "laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K",
        "clip",
        "CLIP ViT-L/14 224",
        "models/datacomp-vit-l14",
        "large (DataComp-1B): for collections indexed once where quality matters more than time",
        params_m=(303.2, 124.4),
    ),
    Recommendation(
        "openai/clip-vit-large-patch14-336",
        "clip",
        "CLIP ViT-L/14 336",
        "models/clip-vit-l14-336",
        "the largest here: 336 px input, the slowest by far",
        params_m=(303.5, 124.4),
    ),
)
