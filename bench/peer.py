"""The peer pipeline: an OpenVINO NNCF int8 image tower inside a plain Pillow decoding loop, as a
process of its own (what a user of OpenVINO, e.g. Immich on a CPU, runs instead of us).

    python -m bench.peer --model VISION.xml --images DIR [--batch-size 32] [--threads 2] [--out emb.npy]

Decoding, CLIP preprocessing (shortest side to S, bicubic, centre crop, normalise) and inference,
one batch after another on one Python thread; prints one JSON line like bench.baseline.
`python -m bench.peer --quantise vision.onnx --images DIR --out VISION.xml` quantises an fp32
image tower with NNCF (transformer preset, static int8, calibrated on 64 of those pictures).
"""

from __future__ import annotations

import argparse
import json
import time

STARTED = time.perf_counter()
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CALIBRATION_IMAGES = 64


def pixels(path, size: int):
    import numpy as np
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
    w, h = img.size
    scale = size / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    arr = (np.asarray(img, dtype=np.float32) / 255 - CLIP_MEAN) / CLIP_STD
    return arr.transpose(2, 0, 1).astype(np.float32)


def embed(args: argparse.Namespace) -> None:
    from pathlib import Path

    import numpy as np
    import openvino as ov

    config = {"INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY"}
    compiled = ov.Core().compile_model(args.model, "CPU", config)
    size = int(compiled.inputs[0].get_partial_shape()[2].get_length())
    request = compiled.create_infer_request()
    paths = sorted(Path(args.images).glob("*.jpg"))
    ready = time.perf_counter()
    out = []
    for start in range(0, len(paths), args.batch_size):
        batch = np.stack([pixels(p, size) for p in paths[start : start + args.batch_size]])
        emb = np.array(request.infer([batch])[0], copy=True)
        out.append(emb / np.linalg.norm(emb, axis=1, keepdims=True))
    done = time.perf_counter()
    if args.out:
        np.save(args.out, np.concatenate(out))
    result = {
        "images": len(paths),
        "embed_seconds": done - ready,
        "startup_seconds": ready - STARTED,
    }
    print(json.dumps(result))


def build(args: argparse.Namespace) -> None:
    from pathlib import Path

    import nncf
    import openvino as ov

    model = ov.Core().read_model(args.quantise)
    size = int(model.inputs[0].get_partial_shape()[2].get_length())
    files = sorted(Path(args.images).glob("*.jpg"))[:CALIBRATION_IMAGES]
    data = nncf.Dataset([pixels(p, size)[None] for p in files])
    quantised = nncf.quantize(
        model, data, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(files)
    )
    ov.save_model(quantised, args.out)
    print(json.dumps({"calibration_images": len(files), "out": args.out, "size": size}))


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__)
    p.add_argument("--model", help="the NNCF int8 image tower (OpenVINO IR .xml) to embed with")
    p.add_argument("--quantise", metavar="ONNX", help="build --out from this fp32 image tower")
    p.add_argument("--images", required=True)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="embeddings (.npy) or, with --quantise, the model (.xml)")
    args = p.parse_args()
    if args.quantise:
        build(args)
    else:
        embed(args)


if __name__ == "__main__":
    main()
