"""The demo's small CLIP, laid out like a hub checkpoint.

A transformers `CLIPModel` with small towers, a CLIP BPE tokenizer learned from the training
captions (slow and fast files, as on the hub) and a `CLIPImageProcessor` config, so that
`python -m export --model DIR` treats the folder exactly like `openai/clip-vit-base-patch32`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from demo.vocab import build_clip_vocab

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
CONTEXT_LENGTH = 77


def build_processor(image_size: int):
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )


def build_tokenizer(corpus: list[str], out_dir: Path, num_merges: int):
    """Learn the vocabulary, save CLIPTokenizer + CLIPTokenizerFast files; return the fast one."""
    from transformers import CLIPTokenizer, CLIPTokenizerFast

    build_clip_vocab(corpus, out_dir, num_merges)
    vocab, merges = out_dir / "vocab.json", out_dir / "merges.txt"
    slow = CLIPTokenizer(str(vocab), str(merges), model_max_length=CONTEXT_LENGTH)
    fast = CLIPTokenizerFast(
        vocab_file=str(vocab), merges_file=str(merges), model_max_length=CONTEXT_LENGTH
    )
    slow.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return fast


def build_model(
    tokenizer,
    *,
    image_size: int,
    patch_size: int,
    hidden: int,
    heads: int,
    vision_layers: int,
    text_layers: int,
    projection_dim: int,
):
    from transformers import CLIPConfig, CLIPModel

    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    # With eos_token_id == 2 transformers pools the text at argmax(input_ids) (legacy CLIP);
    # the vocabulary's real ids select the first-eos pooling that the export reproduces.
    if ids["eos_token_id"] == 2:
        raise ValueError(f"eos token id 2 would select legacy pooling: {ids}")
    tower = {
        "hidden_size": hidden,
        "intermediate_size": hidden * 4,
        "num_attention_heads": heads,
    }
    config = CLIPConfig(
        text_config={
            **tower,
            **ids,
            "vocab_size": len(tokenizer),
            "num_hidden_layers": text_layers,
            "max_position_embeddings": CONTEXT_LENGTH,
        },
        vision_config={
            **tower,
            "num_hidden_layers": vision_layers,
            "image_size": image_size,
            "patch_size": patch_size,
        },
        projection_dim=projection_dim,
    )
    return CLIPModel(config)


def pixels(processor, paths: list[Path], batch: int = 256) -> torch.Tensor:
    """Images through the checkpoint's own preprocessing: float32 [N, 3, S, S]."""
    out = []
    for i in range(0, len(paths), batch):
        images = []
        for path in paths[i : i + batch]:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        out.append(processor(images=images, return_tensors="pt")["pixel_values"])
    return torch.cat(out)


def tokens(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(
        texts, padding=True, truncation=True, max_length=CONTEXT_LENGTH, return_tensors="pt"
    )
    return enc["input_ids"], enc["attention_mask"]


@torch.no_grad()
def embed(model, pixel_values, input_ids, attention_mask, batch: int = 512):
    """(image features, text features) as numpy, not normalised: what the export produces."""
    model.eval()
    images = [
        model.get_image_features(pixel_values=pixel_values[i : i + batch])
        for i in range(0, len(pixel_values), batch)
    ]
    texts = [
        model.get_text_features(
            input_ids=input_ids[i : i + batch], attention_mask=attention_mask[i : i + batch]
        )
        for i in range(0, len(input_ids), batch)
    ]
    return torch.cat(images).numpy(), torch.cat(texts).numpy()
