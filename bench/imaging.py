"""`python -m bench --only imaging`: the decoder's figures, measured in this process.

- fidelity: per-image cosine of each decoding to the reference (transformers' CLIPImageProcessor on
  a full decode), fp32 PyTorch, on sensitive tiny checkpoints (weights std 0.2) at S = 32, 64, 224,
  over detailed photo-sized (1-12 MP) and web-sized (0.2-0.5 MP) JPEGs;
- batch dependence: per-image cosine of a vector embedded alone and inside batches of 4 and 32,
  each precision, on the sensitive tiny model and the full-size random ViT-B/32;
- decode cost: CPU ms per image of decode + preprocess (one thread, S = 224), photo- and web-sized.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

from bench.images import PHOTO_SIZES, WEB_SIZES
from bench.run import say

SENSITIVE_SIZES = (32, 64, 224)


def _sizes(base: list[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    """`n` sizes cycling through `base`, every fifth turned portrait (as bench.images does)."""
    out = []
    for i in range(n):
        w, h = base[i % len(base)]
        out.append((h, w) if i % 5 == 4 else (w, h))
    return out


def test_images(cache: Path, n: int) -> dict[str, list[Path]]:
    from tests.factories import make_detailed_jpegs

    return {
        "photo": make_detailed_jpegs(cache / "detailed-photo", _sizes(PHOTO_SIZES, n), seed=11),
        "web": make_detailed_jpegs(cache / "detailed-web", _sizes(WEB_SIZES, n), seed=12),
    }


def sensitive_checkpoint(cache: Path, size: int) -> Path:
    from tests.factories import make_sensitive_clip

    folder = cache / f"sensitive-{size}"
    if not (folder / "model.safetensors").exists():
        make_sensitive_clip(folder, image_size=size, patch_size=32 if size >= 224 else 8)
    return folder


def sensitive_model(cache: Path, size: int = 32) -> Path:
    """The sensitive checkpoint exported (fp32 + int8), once."""
    ckpt = sensitive_checkpoint(cache, size)
    out = cache / f"sensitive-{size}-model"
    if not (out / "manifest.json").exists():
        say(f"exporting the sensitive S={size} checkpoint (once)")
        cmd = [sys.executable, "-m", "export", "--model", str(ckpt), "--out", str(out)]
        subprocess.run([*cmd, "--overwrite"], check=True, stdout=subprocess.DEVNULL)
    return out


# -- fidelity ------------------------------------------------------------------------------------


def _variants() -> dict[str, Callable[[Path, object], np.ndarray]]:
    from clipsearch_onnx import pipeline
    from clipsearch_onnx.decode import load_image

    def fast_at(factor: float | None) -> Callable[[Path, object], np.ndarray]:
        def read(path: Path, pre) -> np.ndarray:
            kept = pipeline.REDUCE_FACTOR
            pipeline.REDUCE_FACTOR = factor or kept
            try:
                return pipeline.read_file(path, pre, pipeline.FAST).pixels
            finally:
                pipeline.REDUCE_FACTOR = kept

        return read

    def old_draft(path: Path, pre) -> np.ndarray:
        return pre.pixels(load_image(path, draft=True, min_side=pre.resize_shortest_edge))

    def pillow_draft(path: Path, pre) -> np.ndarray:
        with without_simplejpeg():
            return pipeline.read_file(path, pre, pipeline.FAST).pixels

    return {
        f"fast (default, {pipeline.REDUCE_FACTOR}x target)": fast_at(None),
        "fast, Pillow draft (no simplejpeg)": pillow_draft,
        "fast, 2x target": fast_at(2),
        "fast, 3x target": fast_at(3),
        "fast, 6x target": fast_at(6),
        "old draft mode (1x, reduced geometry)": old_draft,
    }


def fidelity(cache: Path, images: dict[str, list[Path]]) -> list[dict]:
    import torch
    from transformers import CLIPModel

    from clipsearch_onnx.pipeline import REFERENCE, read_file
    from clipsearch_onnx.preprocess import Preprocessor
    from tests.factories import CLIP_MEAN, CLIP_STD

    rows = []
    for size in SENSITIVE_SIZES:
        model = CLIPModel.from_pretrained(sensitive_checkpoint(cache, size)).eval()
        pre = Preprocessor(size, size, CLIP_MEAN, CLIP_STD)

        def embed(pixels: list[np.ndarray], model=model) -> np.ndarray:
            with torch.no_grad():
                out = model.get_image_features(pixel_values=torch.from_numpy(np.stack(pixels)))
            return torch.nn.functional.normalize(out, dim=-1).numpy()

        for kind, paths in images.items():
            ref = embed([read_file(p, pre, REFERENCE).pixels for p in paths])
            between = ref @ ref.T
            row: dict = {"S": size, "images": f"{len(paths)} {kind}", "variants": {}}
            row["between_images"] = float(between[~np.eye(len(paths), dtype=bool)].mean())
            for name, read in _variants().items():
                cos = (embed([read(p, pre) for p in paths]) * ref).sum(axis=1)
                row["variants"][name] = {"min": float(cos.min()), "mean": float(cos.mean())}
            rows.append(row)
            say(f"fidelity S={size} {kind}: done")
    return rows


# -- batch dependence ----------------------------------------------------------------------------


def batch_dependence(models: dict[str, Path], paths: list[Path]) -> list[dict]:
    from clipsearch_onnx.encoder import Encoder
    from clipsearch_onnx.manifest import Manifest
    from clipsearch_onnx.pipeline import FAST, read_file

    rows = []
    for name, folder in models.items():
        manifest = Manifest.load(folder)
        for precision in manifest.precisions:
            encoder = Encoder(manifest, precision)
            pixels = np.stack([read_file(p, encoder.preprocess, FAST).pixels for p in paths])
            alone = np.concatenate(
                [encoder.embed_pixels(pixels[i : i + 1]) for i in range(len(pixels))]
            )
            row = {"model": name, "precision": precision, "images": len(paths)}
            for batch in (4, 32):
                together = np.concatenate(
                    [
                        encoder.embed_pixels(pixels[i : i + batch])
                        for i in range(0, len(pixels), batch)
                    ]
                )
                cos = (alone * together).sum(axis=1)
                row[f"batch {batch}"] = {"min": float(cos.min()), "mean": float(cos.mean())}
            rows.append(row)
            say(f"batch dependence {name} {precision}: done")
    return rows


# -- decode cost ---------------------------------------------------------------------------------


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@contextmanager
def without_simplejpeg() -> Iterator[None]:
    """FAST decoding as it runs without the `decode` extra (Pillow's draft mode)."""
    from clipsearch_onnx import turbo

    kept, turbo.simplejpeg = turbo.simplejpeg, None
    try:
        yield
    finally:
        turbo.simplejpeg = kept


def decoders() -> dict[str, tuple[Callable[[bytes, str, object], np.ndarray], bool]]:
    """name -> (read(data, name, preprocessor) -> pixels, whether simplejpeg may be used)."""
    from PIL import Image

    from clipsearch_onnx.decode import load_image
    from clipsearch_onnx.pipeline import FAST, REFERENCE, read_bytes

    def before(data: bytes, name: str, pre) -> np.ndarray:
        """main before issue 11: draft down to 1x the target, the reduced image's geometry,
        float64 rescale."""
        img = load_image(name, data=data, draft=True, min_side=pre.resize_shortest_edge)
        resized = img.resize(pre.resized_size(*img.size), Image.Resampling.BICUBIC)
        arr = pre.crop(np.asarray(resized)).astype(np.float64) * (1 / 255)
        return ((arr.astype(np.float32) - pre.mean) / pre.std).transpose(2, 0, 1)

    def fast(data: bytes, name: str, pre) -> np.ndarray:
        return read_bytes(data, name, pre, FAST).pixels

    return {
        "reference (full decode, Pillow)": (
            lambda d, n, p: read_bytes(d, n, p, REFERENCE).pixels,
            True,
        ),
        "before (draft 1x, main before issue 11)": (before, True),
        "fast, Pillow draft 1/2-1/8 (no simplejpeg)": (fast, False),
        "fast (default: simplejpeg M/8)": (fast, True),
    }


def decode_cost(images: dict[str, list[Path]], rounds: int = 2) -> list[dict]:
    """CPU ms per image on this thread, decoders interleaved per round (the machine is shared)."""
    from clipsearch_onnx.preprocess import Preprocessor
    from tests.factories import CLIP_MEAN, CLIP_STD

    pre = Preprocessor(224, 224, CLIP_MEAN, CLIP_STD)
    rows = []
    for kind, paths in images.items():
        data = [(p.read_bytes(), str(p)) for p in paths]
        cpu: dict[str, list[float]] = {}
        for _ in range(rounds):
            for name, (read, turbo_on) in decoders().items():
                with nullcontext() if turbo_on else without_simplejpeg():
                    c0 = _cpu()
                    for raw, path in data:
                        read(raw, path, pre)
                    cpu.setdefault(name, []).append((_cpu() - c0) / len(data) * 1000)
        rows.append(
            {"images": f"{len(paths)} {kind}", "cpu_ms": {k: min(v) for k, v in cpu.items()}}
        )
        say(f"decode cost {kind}: done")
    return rows


def pipeline_rate(model: Path, images: dict[str, list[Path]], workers: int = 2) -> list[dict]:
    """Decode-ahead threads + the int8 image tower in this process (what `clipsearch index` does
    between scanning and writing), per decoder, over photo- and web-sized JPEGs half and half:
    images per second and CPU ms per image, decoders interleaved."""
    from clipsearch_onnx.encoder import Encoder
    from clipsearch_onnx.manifest import Manifest

    encoder = Encoder(Manifest.load(model), "int8")
    encoder.session("vision")
    pre = encoder.preprocess
    paths = [p for pair in zip(images["photo"], images["web"], strict=False) for p in pair]
    rows = []
    for name, (read, turbo_on) in decoders().items():
        t0, c0 = time.perf_counter(), _cpu()
        with (
            nullcontext() if turbo_on else without_simplejpeg(),
            ThreadPoolExecutor(workers) as pool,
        ):
            pixels = pool.map(lambda p, read=read: read(p.read_bytes(), str(p), pre), paths)
            batch: list[np.ndarray] = []
            for px in pixels:
                batch.append(px)
                if len(batch) == 32:
                    encoder.embed_pixels(np.stack(batch))
                    batch = []
            if batch:
                encoder.embed_pixels(np.stack(batch))
        seconds, cpu = time.perf_counter() - t0, _cpu() - c0
        rows.append(
            {
                "decoder": name,
                "images": len(paths),
                "img_per_s": len(paths) / seconds,
                "cpu_ms_per_img": 1000 * cpu / len(paths),
            }
        )
        say(f"pipeline {name}: {rows[-1]['img_per_s']:.1f} img/s")
    return rows


# -- report --------------------------------------------------------------------------------------


def render(results: dict) -> str:
    lines = ["## Decoding (bench/imaging.py)", ""]
    lines += [
        "### Fidelity to the reference decoding (sensitive checkpoint, fp32): cosine min / mean",
        "",
    ]
    names = list(results["fidelity"][0]["variants"])
    lines.append("| S | images | " + " | ".join(names) + " | two images |")
    lines.append("|---|---|" + "---|" * len(names) + "---|")
    for row in results["fidelity"]:
        cells = [f"{v['min']:.5f} / {v['mean']:.5f}" for v in row["variants"].values()]
        lines.append(
            f"| {row['S']} | {row['images']} | " + " | ".join(cells)
            + f" | {row['between_images']:.2f} |"
        )  # fmt: skip
    lines += [
        "",
        "### Batch dependence: cosine of a vector alone vs inside a batch (min / mean)",
        "",
    ]
    lines += ["| model | precision | batch 4 | batch 32 |", "|---|---|---|---|"]
    for row in results["batch"]:
        b4, b32 = row["batch 4"], row["batch 32"]
        lines.append(
            f"| {row['model']} | {row['precision']} | {b4['min']:.6f} / {b4['mean']:.6f} "
            f"| {b32['min']:.6f} / {b32['mean']:.6f} |"
        )
    lines += ["", "### Decode + preprocess CPU ms per image (one thread, S = 224)", ""]
    lines += ["(photo-sized: 1-12 MP; web-sized: 0.2-0.5 MP; detailed JPEGs, quality 90)", ""]
    names = list(results["cost"][0]["cpu_ms"])
    lines.append("| images | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for row in results["cost"]:
        lines.append(
            f"| {row['images']} | " + " | ".join(f"{v:.1f}" for v in row["cpu_ms"].values()) + " |"
        )
    if results.get("pipeline"):
        lines += ["", "### Decoding threads + int8 image tower, full-size ViT-B/32", ""]
        lines += ["| decoder | images | img/s | CPU ms per image |", "|---|---|---|---|"]
        for row in results["pipeline"]:
            lines.append(
                f"| {row['decoder']} | {row['images']} | {row['img_per_s']:.1f} "
                f"| {row['cpu_ms_per_img']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(cache: Path, quick: bool, full_model: Path | None) -> int:
    n = 16 if quick else 48
    images = test_images(cache, n)
    results = {
        "fidelity": fidelity(cache, images),
        "batch": batch_dependence(
            {"sensitive tiny S=32": sensitive_model(cache)}
            | ({"full-size ViT-B/32 (random)": full_model} if full_model else {}),
            images["web"][:32],
        ),
        "cost": decode_cost(images, rounds=1 if quick else 2),
        "pipeline": pipeline_rate(full_model, images) if full_model else [],
    }
    (cache / "imaging.json").write_text(json.dumps(results, indent=1))
    text = render(results)
    (cache / "imaging.md").write_text(text)
    sys.stdout.write(text)
    return 0
