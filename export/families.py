"""What differs between the model families the export takes, detected from config.json.

- "clip": transformers `CLIPModel` (OpenAI, LAION, DataComp... any size). Text: byte-level BPE,
  [bos] tokens [eos], padded to the longest text of a batch, pooled at eos. Images: bicubic
  resize of the shortest edge, centre crop. Scores: cosine (softmax over a batch in training,
  so a score is only comparable with other scores of the same query).
- "siglip": transformers `SiglipModel`, which fixed-resolution SigLIP 2 checkpoints are too (with
  a Gemma tokenizer). Text: SentencePiece, no bos, eos appended, padded to a fixed length (64)
  and pooled at the last position, so the padding is part of the model's input. Images: resized
  to a square without a crop, bilinear, mean/std 0.5. Scores: sigmoid(scale * cos + bias) is
  the probability that an image matches a text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from export.errors import SourceError

FAMILIES = ("clip", "siglip")
RESAMPLE = {2: "bilinear", 3: "bicubic"}  # PIL's numbers, as preprocessor_config.json has them


def family_of(directory: Path) -> str:
    """The family of the checkpoint in `directory`, from its config.json's model_type."""
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read {directory / 'config.json'}: {exc}") from None
    kind = config.get("model_type")
    if kind in FAMILIES:
        return str(kind)
    if kind == "siglip2":
        raise SourceError(
            f"{directory} is a SigLIP 2 NaFlex checkpoint (variable resolution, model_type "
            "siglip2), which the runtime does not implement; use a fixed-resolution SigLIP 2 "
            "checkpoint (e.g. google/siglip2-base-patch16-224), which loads as SiglipModel"
        )
    raise SourceError(
        f"{directory} holds a {kind!r} model; the export takes CLIPModel (model_type clip) and "
        "SiglipModel (model_type siglip, including fixed-resolution SigLIP 2) checkpoints"
    )


def load(family: str, directory: Path) -> tuple[Any, Any, Any]:
    """(model in eval mode fp32 with eager attention, tokenizer, image processor)."""
    import transformers as tf

    if family == "clip":
        model_class, processor_class = tf.CLIPModel, tf.CLIPImageProcessor
        tokenizer = tf.CLIPTokenizerFast.from_pretrained(directory)
    else:
        model_class, processor_class = tf.SiglipModel, tf.SiglipImageProcessor
        tokenizer = _fast_tokenizer(directory)
    model = model_class.from_pretrained(directory, attn_implementation="eager", dtype="float32")
    return model.eval(), tokenizer, processor_class.from_pretrained(directory)


def _fast_tokenizer(directory: Path) -> Any:
    """The checkpoint's own tokenizer: a fast one (tokenizer.json, e.g. SigLIP 2's Gemma), or
    SigLIP v1's slow SentencePiece one, which the export converts (export/siglip_spm.py)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
    except ImportError as exc:
        raise SourceError(
            f"the tokenizer of {directory} needs a library that is missing ({_first(exc)}); "
            "SigLIP v1 tokenizers need `pip install sentencepiece` (in the export extra)"
        ) from None
    if not getattr(tokenizer, "is_fast", False) and type(tokenizer).__name__ != "SiglipTokenizer":
        raise SourceError(
            f"the tokenizer of {directory} ({type(tokenizer).__name__}) has no fast "
            "(tokenizer.json) form, which the runtime needs"
        )
    return tokenizer


def _first(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def embedding_dim(family: str, model: Any) -> int:
    config = model.config
    if family == "clip":
        return int(config.projection_dim)
    text_dim = int(config.text_config.projection_size)
    vision_dim = int(config.vision_config.hidden_size)
    if text_dim != vision_dim:
        raise SourceError(f"text embeddings have {text_dim} dimensions, image ones {vision_dim}")
    return vision_dim


def text_length(family: str, model: Any, tokenizer: Any) -> int:
    """CLIP: the most tokens a text keeps; SigLIP: the fixed length every text is padded to."""
    positions = int(model.config.text_config.max_position_embeddings)
    limit = getattr(tokenizer, "model_max_length", None)
    if family == "siglip" and isinstance(limit, int) and 0 < limit < positions:
        return limit
    return positions


def tokenizer_call(family: str, length: int) -> dict[str, Any]:
    """How transformers' tokenizer is called for this family (what the runtime reproduces)."""
    padding = "longest" if family == "clip" else "max_length"
    return {"padding": padding, "truncation": True, "max_length": length}


def text_inputs(tokenizer: Any, call: dict[str, Any]) -> list[str]:
    """The inputs the text tower takes: exactly what the checkpoint's tokenizer returns (SigLIP
    v1 tokenizers return input_ids only, and the model expects no mask)."""
    returned = list(tokenizer(["a"], **call).keys())
    inputs = [name for name in ("input_ids", "attention_mask") if name in returned]
    if "input_ids" not in inputs:
        raise SourceError(f"the tokenizer returns {returned}, without input_ids")
    return inputs


def preprocess_entry(family: str, processor: Any, image_size: int) -> dict[str, Any]:
    """The image preprocessing the runtime must reproduce, or SourceError if it cannot."""
    problems = []
    size = dict(processor.size or {})
    resample = RESAMPLE.get(int(processor.resample))
    if resample is None:
        problems.append(f"resampling filter {processor.resample} (bilinear or bicubic only)")
    if not processor.do_resize:
        problems.append("no resize")
    crop = getattr(processor, "do_center_crop", False)
    if "shortest_edge" in size:
        resize, edge = "shortest_edge", int(size["shortest_edge"])
        crop_size = processor.crop_size or {}
        if not crop or crop_size.get("height") != crop_size.get("width"):
            problems.append(f"crop {crop_size} is not a square centre crop")
        elif crop_size.get("height") != image_size:
            problems.append(f"crop {crop_size['height']} != vision image_size {image_size}")
    elif size.get("height") == size.get("width") == image_size and not crop:
        resize, edge = "square", image_size
    else:
        resize, edge = "?", 0
        problems.append(f"resize {size} is neither a shortest-edge resize nor {image_size} square")
    if not processor.do_rescale or not math.isclose(processor.rescale_factor, 1 / 255):
        problems.append("pixels are not rescaled by 1/255")
    if not processor.do_normalize:
        problems.append("pixels are not normalised")
    if problems:
        raise SourceError(
            f"preprocessor_config.json describes preprocessing the runtime does not implement "
            f"({family}): " + "; ".join(problems)
        )
    return {
        "resize": resize,
        "resize_shortest_edge": edge,
        "resample": resample,
        "center_crop": resize == "shortest_edge",
        "image_mean": [float(v) for v in processor.image_mean],
        "image_std": [float(v) for v in processor.image_std],
    }


def scores_entry(family: str, model: Any) -> dict[str, Any]:
    """How a cosine becomes the model's logit: scale * cos (+ bias)."""
    scale = float(model.logit_scale.detach().exp())
    if family == "clip":
        return {
            "kind": "softmax",
            "logit_scale": scale,
            "meaning": "cosine similarity; comparable only between results of the same query",
        }
    return {
        "kind": "sigmoid",
        "logit_scale": scale,
        "logit_bias": float(model.logit_bias.detach().reshape(-1)[0]),
        "meaning": "sigmoid(logit_scale * cosine + logit_bias): the probability that the image "
        "matches the text",
    }
