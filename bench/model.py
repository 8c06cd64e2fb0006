"""A full-size CLIP ViT-B/32 with random weights, saved like a hub download and exported once.

The shapes are those of `openai/clip-vit-base-patch32` (transformers' `CLIPConfig()` defaults:
vision 12 x 768 on 32 px patches of 224 px images, text 12 x 512, 77 positions, 512-d embeddings,
49408 token embeddings). The tokenizer's vocabulary is learned from a small corpus; the ids
beyond it are simply never produced, which leaves the text tower's cost unchanged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.run import say

CLIP_VOCAB_SIZE = 49408
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def build_checkpoint(out_dir: Path, seed: int = 0) -> Path:
    """Writes the random ViT-B/32 checkpoint (weights, tokenizer, preprocessor config)."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPTokenizer,
        CLIPTokenizerFast,
    )

    from demo.vocab import BOS, EOS, build_clip_vocab
    from tests.factories import default_corpus

    if (out_dir / "config.json").exists() and (out_dir / "model.safetensors").exists():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    build_clip_vocab(default_corpus(), out_dir, num_merges=400)
    vocab = json.loads((out_dir / "vocab.json").read_text(encoding="utf-8"))
    ids = {"bos_token_id": vocab[BOS], "eos_token_id": vocab[EOS], "pad_token_id": vocab[EOS]}
    config = CLIPConfig(text_config=dict(vocab_size=CLIP_VOCAB_SIZE, **ids))
    vision = config.vision_config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.patch_size) == (768, 12, 32)
    assert (config.text_config.hidden_size, config.projection_dim) == (512, 512)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    CLIPTokenizer(str(out_dir / "vocab.json"), str(out_dir / "merges.txt")).save_pretrained(out_dir)
    CLIPTokenizerFast.from_pretrained(out_dir).save_pretrained(out_dir)
    CLIPImageProcessor(
        size={"shortest_edge": 224},
        crop_size={"height": 224, "width": 224},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    ).save_pretrained(out_dir)
    return out_dir


def ensure_model(cache: Path) -> tuple[Path, Path]:
    """(checkpoint folder, exported model folder), built on the first run and reused after."""
    ckpt = cache / "checkpoint"
    exported = cache / "model"
    if not (ckpt / "model.safetensors").exists():
        say("building a random full-size CLIP ViT-B/32 checkpoint")
        build_checkpoint(ckpt)
    if not _current(exported):
        say("exporting it with `python -m export` (a few minutes, once per export settings)")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "export",
                "--model",
                str(ckpt),
                "--out",
                str(exported),
                "--overwrite",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return ckpt, exported


def _current(exported: Path) -> bool:
    """Whether `exported` was made with this export's int8 settings (else it is made again)."""
    from export import quantize

    try:
        made = json.loads((exported / "manifest.json").read_text())["quantization"]
    except (OSError, ValueError, KeyError):
        return False
    label = "; ".join(f"{t}: {s.label()}" for t, s in quantize.DEFAULTS.items())
    return made.get("label") == label and "backends" in made
