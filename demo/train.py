"""Train the demo's small CLIP on the generated data (`python -m demo.train`).

A transformers `CLIPModel` with small towers, trained contrastively (InfoNCE, learnable logit
scale) on the train split, each step pairing every image with one of its five captions at random.
The output folder looks like a hub checkpoint (weights, config, CLIP tokenizer files, image
processor config), so `python -m export --model DIR --out models/demo` exports it like the real
one. Seeded; on the same machine and thread count the result is reproducible.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from demo import quality
from demo.data import COLOURS, read_captions, read_split
from demo.vocab import build_clip_vocab

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
STAMP = "training.json"


@dataclass(frozen=True)
class Recipe:
    image_size: int = 64
    patch_size: int = 8
    hidden: int = 64
    vision_layers: int = 4
    text_layers: int = 2
    heads: int = 2
    projection_dim: int = 64
    num_merges: int = 300
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_fraction: float = 0.05
    threads: int = 2
    # Each batch holds images of this many colours (0: any). Colour is the easy attribute: with
    # few colours per batch, most negatives share it and the contrast has to use the shape.
    colours_per_batch: int = 0
    logit_scale_init: float = 2.6592  # ln(1/0.07), CLIP's
    logit_scale_lr_factor: float = 1.0


FAST = Recipe(
    hidden=32,
    vision_layers=1,
    text_layers=1,
    heads=2,
    projection_dim=16,
    epochs=2,
    batch_size=32,
    num_merges=100,
)


def _processor(size: int):
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )


def _tokenizers(corpus: list[str], out_dir: Path, num_merges: int):
    from transformers import CLIPTokenizer, CLIPTokenizerFast

    build_clip_vocab(corpus, out_dir, num_merges)
    vocab, merges = out_dir / "vocab.json", out_dir / "merges.txt"
    slow = CLIPTokenizer(vocab, merges, model_max_length=77)
    fast = CLIPTokenizerFast(vocab_file=str(vocab), merges_file=str(merges), model_max_length=77)
    slow.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return fast


def _model(recipe: Recipe, tokenizer):
    from transformers import CLIPConfig, CLIPModel

    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    # eos_token_id != 2 makes CLIPTextTransformer pool at the first eos (not argmax of the ids).
    assert ids["eos_token_id"] != 2, ids
    tower = {
        "hidden_size": recipe.hidden,
        "intermediate_size": recipe.hidden * 4,
        "num_attention_heads": recipe.heads,
    }
    config = CLIPConfig(
        text_config={
            **tower,
            **ids,
            "vocab_size": len(tokenizer),
            "num_hidden_layers": recipe.text_layers,
            "max_position_embeddings": 77,
        },
        vision_config={
            **tower,
            "num_hidden_layers": recipe.vision_layers,
            "image_size": recipe.image_size,
            "patch_size": recipe.patch_size,
        },
        projection_dim=recipe.projection_dim,
        logit_scale_init_value=recipe.logit_scale_init,
    )
    return CLIPModel(config)


def _pixels(processor, paths: list[Path]) -> torch.Tensor:
    batches = []
    for i in range(0, len(paths), 256):
        images = [Image.open(p).convert("RGB") for p in paths[i : i + 256]]
        batches.append(processor(images=images, return_tensors="pt")["pixel_values"])
    return torch.cat(batches)


def _tokens(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def _colour(caption_texts: list[str]) -> int:
    """Index in COLOURS of the colour word the captions share."""
    words = set(" ".join(caption_texts).lower().replace(",", " ").split())
    return next(i for i, c in enumerate(COLOURS) if c in words)


def _batches(colours: torch.Tensor, per_batch: int, size: int, gen) -> list[torch.Tensor]:
    """One epoch of full batches; each draws on `per_batch` colours (0: all), picked at random."""
    if per_batch <= 0:
        order = torch.randperm(len(colours), generator=gen)
        return list(order[: len(order) // size * size].split(size))
    palette = torch.randperm(len(COLOURS), generator=gen).tolist()
    out: list[torch.Tensor] = []
    for g in range(0, len(palette), per_batch):
        members = torch.nonzero(torch.isin(colours, torch.tensor(palette[g : g + per_batch])))
        members = members[:, 0][torch.randperm(len(members), generator=gen)]
        out += list(members[: len(members) // size * size].split(size))
    return [out[i] for i in torch.randperm(len(out), generator=gen).tolist()]


def _param_groups(model, recipe: Recipe):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if name == "logit_scale":
            continue
        (no_decay if p.ndim < 2 or "embedding" in name else decay).append(p)
    return [
        {"params": decay, "weight_decay": recipe.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
        # A sharper softmax puts the gradient on the hard negatives (same colour, other shape);
        # at the base learning rate the temperature would barely move in a short run.
        {
            "params": [model.logit_scale],
            "weight_decay": 0.0,
            "lr": recipe.lr * recipe.logit_scale_lr_factor,
        },
    ]


@torch.no_grad()
def _embed(model, pixels, ids, mask, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    img = torch.cat(
        [
            model.get_image_features(pixel_values=pixels[i : i + batch])
            for i in range(0, len(pixels), batch)
        ]
    )
    txt = torch.cat(
        [
            model.get_text_features(
                input_ids=ids[i : i + batch], attention_mask=mask[i : i + batch]
            )
            for i in range(0, len(ids), batch)
        ]
    )
    return img.numpy(), txt.numpy()


def evaluate(model, tokenizer, data: dict, log=print) -> dict[str, float]:
    """Recall@K on the test split, and the colour+shape top-10 score against every image."""
    test = data["test"]
    texts = [t for name in test for t in data["captions"][name]]
    owner = np.repeat(np.arange(len(test)), [len(data["captions"][n]) for n in test])
    ids, mask = _tokens(tokenizer, texts)
    index = {n: i for i, n in enumerate(data["names"])}
    rows = torch.tensor([index[n] for n in test])
    img, txt = _embed(model, data["pixels"][rows], ids, mask)
    metrics = quality.recalls(img, txt, owner)

    queries = quality.colour_shape_queries()
    all_img, q = _embed(model, data["pixels"], *_tokens(tokenizer, [x[0] for x in queries]))
    gallery_caps = [data["captions"][n] for n in data["names"]]
    metrics["colour_shape_top10"] = quality.top10_score(q, all_img, gallery_caps, queries)
    return metrics


def _load(data_dir: Path, processor, log) -> dict:
    captions = read_captions(data_dir)
    names = sorted(captions)
    t0 = time.perf_counter()
    pixels = _pixels(processor, [data_dir / "Images" / n for n in names])
    log(f"preprocessed {len(names)} images in {time.perf_counter() - t0:.1f}s")
    return {
        "captions": captions,
        "names": names,
        "pixels": pixels,
        "train": read_split(data_dir, "train"),
        "test": read_split(data_dir, "test"),
    }


def train(
    data_dir: Path,
    out_dir: Path,
    seed: int = 0,
    recipe: Recipe | None = None,
    force: bool = False,
    log=lambda m: print(m, file=sys.stderr),
) -> Path:
    """Train and save the checkpoint into `out_dir`; skipped if it is already there."""
    recipe = recipe or Recipe()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    stamp_path = out_dir / STAMP
    settings = {
        "seed": seed,
        "recipe": asdict(recipe),
        "data": (data_dir / ".complete").read_text(encoding="utf-8"),
    }
    if not force and stamp_path.is_file():
        if json.loads(stamp_path.read_text(encoding="utf-8")).get("settings") == settings:
            log(f"{out_dir} is already trained with these settings")
            return out_dir
    stamp_path.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)

    torch.set_num_threads(recipe.threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    start = time.perf_counter()

    processor = _processor(recipe.image_size)
    data = _load(data_dir, processor, log)
    train_names = data["train"]
    tokenizer = _tokenizers(
        [t for n in train_names for t in data["captions"][n]], out_dir, recipe.num_merges
    )
    model = _model(recipe, tokenizer)
    log(
        f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
        f"vocab {len(tokenizer)}"
    )

    index = {n: i for i, n in enumerate(data["names"])}
    rows = torch.tensor([index[n] for n in train_names])
    pixels = data["pixels"][rows]
    caps = [data["captions"][n] for n in train_names]
    per_image = len(caps[0])
    flat_ids, flat_mask = _tokens(tokenizer, [t for c in caps for t in c])

    colours = torch.tensor([_colour(c) for c in caps])
    steps_per_epoch = len(
        _batches(
            colours,
            recipe.colours_per_batch,
            recipe.batch_size,
            torch.Generator().manual_seed(seed),
        )
    )
    total = steps_per_epoch * recipe.epochs
    warmup = max(1, int(total * recipe.warmup_fraction))
    optimizer = torch.optim.AdamW(
        _param_groups(model, recipe), lr=recipe.lr, betas=(0.9, 0.98), eps=1e-6
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            (s + 1) / warmup
            if s < warmup
            else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup)))
        ),
    )
    gen = torch.Generator().manual_seed(seed)
    step = 0
    for epoch in range(recipe.epochs):
        model.train()
        batches = _batches(colours, recipe.colours_per_batch, recipe.batch_size, gen)
        pick = torch.randint(per_image, (len(train_names),), generator=gen)
        losses = []
        for batch in batches:
            text_rows = batch * per_image + pick[batch]
            ids, mask = flat_ids[text_rows], flat_mask[text_rows]
            width = int(mask.sum(1).max())
            out = model(
                input_ids=ids[:, :width],
                attention_mask=mask[:, :width],
                pixel_values=pixels[batch],
                return_loss=True,
            )
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(out.loss.item())
            step += 1
        log(
            f"epoch {epoch + 1}/{recipe.epochs} loss {np.mean(losses):.3f} "
            f"scale {model.logit_scale.exp().item():.1f} {time.perf_counter() - start:.0f}s"
        )
    train_seconds = time.perf_counter() - start

    metrics = evaluate(model, tokenizer, data, log)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    record = {
        "settings": settings,
        "train_seconds": round(train_seconds, 1),
        "metrics": {k: round(v, 2) for k, v in metrics.items()},
        "torch": torch.__version__,
    }
    stamp_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    log(json.dumps(record["metrics"]))
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", type=Path, default=Path("data/demo"))
    parser.add_argument("--out", type=Path, default=Path("models/demo-torch"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--fast", action="store_true", help="tiny model, 2 epochs (for tests)")
    parser.add_argument("--force", action="store_true", help="retrain even if already trained")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a Recipe field, e.g. --set lr=5e-4",
    )
    args = parser.parse_args(argv)
    recipe = asdict(FAST if args.fast else Recipe())
    if args.epochs is not None:
        recipe["epochs"] = args.epochs
    for item in args.set:
        key, value = item.split("=", 1)
        recipe[key] = type(recipe[key])(value)
    recipe = Recipe(**recipe)
    out = train(args.data, args.out, args.seed, recipe, args.force)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
