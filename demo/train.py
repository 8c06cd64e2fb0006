"""Train the demo's small CLIP on the generated data (`python -m demo.train`).

Contrastive (InfoNCE both ways, learnable logit scale) on the train split; every step pairs each
image with one of its five captions at random. One refinement over plain CLIP: a caption is not
used as a negative for another image in the batch that it describes just as well ("a red circle"
against a second red circle), judged from the attribute words of that image's own captions.
Without it the loss pushes same-colour, same-shape images apart, and shape is learned far slower.

The output folder looks like a hub checkpoint (see demo/model.py). Seeded: the same machine and
thread count give the same weights.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from demo import quality
from demo.data import MARKER, attribute_values, mentions, read_captions, read_split
from demo.model import build_model, build_processor, build_tokenizer, embed, pixels, tokens

STAMP = "training.json"


@dataclass(frozen=True)
class Recipe:
    image_size: int = 64
    patch_size: int = 16
    hidden: int = 128
    heads: int = 4
    vision_layers: int = 4
    text_layers: int = 2
    projection_dim: int = 64
    num_merges: int = 300
    steps: int = 3000
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.1
    warmup_fraction: float = 0.05
    threads: int = 2
    exclude_false_negatives: bool = True

    def architecture(self) -> dict:
        keys = ("image_size", "patch_size", "hidden", "heads", "vision_layers", "text_layers")
        return {k: getattr(self, k) for k in (*keys, "projection_dim")}


# Checks the pipeline in seconds; learns next to nothing.
FAST = Recipe(
    hidden=32, heads=2, vision_layers=1, text_layers=1, projection_dim=16, num_merges=100,
    steps=6, batch_size=32,
)  # fmt: skip


def _codes(texts: list[str]) -> list[int]:
    """Per attribute, the index of the value these texts name (-1: none or conflicting)."""
    named: dict[str, set[str]] = {}
    for text in texts:
        for attribute, value in mentions(text).items():
            named.setdefault(attribute, set()).add(value)
    out = []
    for attribute, values in attribute_values().items():
        found = named.get(attribute, set())
        out.append(values.index(next(iter(found))) if len(found) == 1 else -1)
    return out


def _describes(caption_codes: torch.Tensor, image_codes: torch.Tensor) -> torch.Tensor:
    """[T, I] bool: caption t names nothing that image i's captions contradict."""
    c, i = caption_codes[:, None, :], image_codes[None, :, :]
    return ((c == -1) | (i == -1) | (c == i)).all(-1)


def _loss(logits_per_text: torch.Tensor, describes: torch.Tensor | None) -> torch.Tensor:
    if describes is not None:
        others = describes & ~torch.eye(len(describes), dtype=torch.bool)
        logits_per_text = logits_per_text.masked_fill(others, float("-inf"))
    target = torch.arange(len(logits_per_text))
    return (
        torch.nn.functional.cross_entropy(logits_per_text, target)
        + torch.nn.functional.cross_entropy(logits_per_text.T, target)
    ) / 2


def _schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _param_groups(model, weight_decay: float) -> list[dict]:
    decay, rest = [], []
    for name, p in model.named_parameters():
        no_decay = p.ndim < 2 or "embedding" in name or name == "logit_scale"
        (rest if no_decay else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def evaluate(model, tokenizer, images: torch.Tensor, names: list[str], captions, test) -> dict:
    """Recall@K on the test split, and the colour+shape top-10 score against every image."""
    row = {n: i for i, n in enumerate(names)}
    texts = [t for n in test for t in captions[n]]
    owner = np.repeat(np.arange(len(test)), [len(captions[n]) for n in test])
    test_images = images[torch.tensor([row[n] for n in test])]
    img, txt = embed(model, test_images, *tokens(tokenizer, texts))
    metrics = quality.recalls(img, txt, owner)
    queries = quality.colour_shape_queries()
    gallery, q = embed(model, images, *tokens(tokenizer, [query for query, _, _ in queries]))
    metrics["colour_shape_top10"] = quality.top10_score(
        q, gallery, [captions[n] for n in names], queries
    )
    return metrics


def _fit(model, recipe: Recipe, images, flat_ids, flat_mask, caption_codes, image_codes,
         caption_of, seed: int, log) -> None:  # fmt: skip
    n = len(images)
    batch_size = min(recipe.batch_size, n)
    optimizer = torch.optim.AdamW(
        _param_groups(model, recipe.weight_decay), lr=recipe.lr, betas=(0.9, 0.98), eps=1e-6
    )
    warmup = max(1, int(recipe.steps * recipe.warmup_fraction))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _schedule(s, recipe.steps, warmup)
    )
    gen = torch.Generator().manual_seed(seed)
    start, losses, step = time.perf_counter(), [], 0
    model.train()
    while step < recipe.steps:
        order = torch.randperm(n, generator=gen)
        chosen = caption_of(gen)  # one caption per image, drawn anew each epoch
        for b in range(n // batch_size):
            if step == recipe.steps:
                break
            rows = order[b * batch_size : (b + 1) * batch_size]
            texts = chosen[rows]
            ids, mask = flat_ids[texts], flat_mask[texts]
            width = int(mask.sum(1).max())
            out = model(
                input_ids=ids[:, :width], attention_mask=mask[:, :width], pixel_values=images[rows]
            )
            describes = (
                _describes(caption_codes[texts], image_codes[rows])
                if recipe.exclude_false_negatives
                else None
            )
            loss = _loss(out.logits_per_text, describes)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))  # as CLIP does
            losses.append(loss.item())
            step += 1
            if step % max(1, recipe.steps // 10) == 0 or step == recipe.steps:
                log(
                    f"step {step}/{recipe.steps} loss {np.mean(losses):.3f} "
                    f"scale {model.logit_scale.exp().item():.1f} "
                    f"{time.perf_counter() - start:.0f}s"
                )
                losses = []


def train(
    data_dir: Path,
    out_dir: Path,
    seed: int = 0,
    recipe: Recipe | None = None,
    force: bool = False,
    half: bool = False,
    log=lambda m: print(m, file=sys.stderr, flush=True),
) -> Path:
    """Train on `data_dir`'s train split, save the checkpoint in `out_dir` and return it.

    `half` stores the weights in float16 (half the bytes; the committed demo checkpoint); the
    metrics are then measured on the rounded weights. Skipped when `out_dir` already holds a
    checkpoint trained with the same settings and data.
    """
    recipe = recipe or Recipe()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    stamp = out_dir / STAMP
    settings = {
        "seed": seed,
        "recipe": asdict(recipe),
        "weights": "float16" if half else "float32",
        "data": (data_dir / MARKER).read_text(encoding="utf-8"),
    }
    if not force and stamp.is_file():
        if json.loads(stamp.read_text(encoding="utf-8")).get("settings") == settings:
            log(f"{out_dir} is already trained with these settings")
            return out_dir
    stamp.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(recipe.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        started = time.perf_counter()
        captions = read_captions(data_dir)
        names = sorted(captions)
        processor = build_processor(recipe.image_size)
        images = pixels(processor, [data_dir / "Images" / n for n in names])
        log(f"preprocessed {len(names)} images in {time.perf_counter() - started:.1f}s")

        train_names = read_split(data_dir, "train")
        corpus = [t for n in train_names for t in captions[n]]
        tokenizer = build_tokenizer(corpus, out_dir, recipe.num_merges)
        model = build_model(tokenizer, **recipe.architecture())
        size = sum(p.numel() for p in model.parameters())
        log(f"model: {size / 1e6:.2f}M parameters, vocabulary {len(tokenizer)}")

        counts = torch.tensor([len(captions[n]) for n in train_names])
        offsets = torch.cumsum(counts, 0) - counts
        flat_ids, flat_mask = tokens(tokenizer, corpus)
        row = {n: i for i, n in enumerate(names)}
        _fit(
            model,
            recipe,
            images[torch.tensor([row[n] for n in train_names])],
            flat_ids,
            flat_mask,
            torch.tensor([_codes([t]) for t in corpus]),
            torch.tensor([_codes(captions[n]) for n in train_names]),
            lambda gen: offsets + (torch.rand(len(counts), generator=gen) * counts).long(),
            seed,
            log,
        )
        seconds = time.perf_counter() - started
        if half:
            model.half().float()
        test = read_split(data_dir, "test")
        metrics = evaluate(model, tokenizer, images, names, captions, test)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)

    (model.half() if half else model).save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    record = {
        "settings": settings,
        "train_seconds": round(seconds, 1),
        "metrics": {k: round(v, 2) for k, v in metrics.items()},
        "torch": torch.__version__,
    }
    stamp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    log(json.dumps(record["metrics"]))
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", type=Path, default=Path("data/demo"))
    parser.add_argument("--out", type=Path, default=Path("models/demo-torch"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="tiny model, a few steps (tests)")
    parser.add_argument("--force", action="store_true", help="retrain even if already trained")
    parser.add_argument("--half", action="store_true", help="store the weights in float16")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE",
        help="change one Recipe field, e.g. --set steps=2000",
    )  # fmt: skip
    args = parser.parse_args(argv)
    recipe = FAST if args.fast else Recipe()
    for item in args.set:
        key, value = item.split("=", 1)
        kind = type(getattr(recipe, key))
        recipe = replace(recipe, **{key: value in ("1", "true") if kind is bool else kind(value)})
    print(train(args.data, args.out, args.seed, recipe, args.force, args.half))
    return 0


if __name__ == "__main__":
    sys.exit(main())
