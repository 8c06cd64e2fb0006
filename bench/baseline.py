"""The prototype's embedding pipeline, as a process of its own: transformers' `CLIPProcessor` and
`CLIPModel.get_image_features` in PyTorch fp32, batched, images decoded with Pillow in the loop.

    python -m bench.baseline --model CHECKPOINT --images DIR [--batch-size 32] [--out emb.npy]

Prints one JSON line: images, seconds spent embedding (decode + preprocess + model), and the
seconds from process start to the first batch (imports and model load).
"""

from __future__ import annotations

import argparse
import json
import time

STARTED = time.perf_counter()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.baseline")
    p.add_argument("--model", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="save the L2-normalised embeddings here (.npy)")
    args = p.parse_args()

    from pathlib import Path

    import numpy as np
    import torch
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    torch.set_num_threads(args.threads)
    model = CLIPModel.from_pretrained(args.model).eval()
    processor = CLIPProcessor.from_pretrained(args.model)
    paths = sorted(Path(args.images).glob("*.jpg"))
    ready = time.perf_counter()
    out = []
    with torch.inference_mode():
        for start in range(0, len(paths), args.batch_size):
            images = [Image.open(p).convert("RGB") for p in paths[start : start + args.batch_size]]
            inputs = processor(images=images, return_tensors="pt")
            emb = model.get_image_features(**inputs)
            out.append(torch.nn.functional.normalize(emb, dim=-1).numpy())
    done = time.perf_counter()
    if args.out:
        np.save(args.out, np.concatenate(out))
    print(
        json.dumps(
            {
                "images": len(paths),
                "embed_seconds": done - ready,
                "startup_seconds": ready - STARTED,
            }
        )
    )


if __name__ == "__main__":
    main()
