"""Image throughput of the recommended model architectures on this CPU (issue 16).

Each architecture is built full size with random weights (the shapes of its hub checkpoint;
weights do not change the cost), its image tower exported by the export's own code
(export.convert, export.quantize with the default int8 settings), and run by ONNX Runtime as
the runtime runs it, batch 32. Rounds alternate between the architectures, so a machine that
gets busier mid-run slows them alike; figures are medians. Only the image tower is timed: it
is what indexing costs (a query's text tower runs once per query).

`python -m bench --only models` runs this alone and prints the table.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.run import say

BATCH = 32


@dataclass(frozen=True)
class Arch:
    name: str
    family: str
    vision: dict[str, Any]
    text: dict[str, Any] = field(default_factory=dict)
    projection: int = 512


L14_VISION = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "patch_size": 14,
}
L14_TEXT = {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12}
# Shapes of the hub checkpoints (config.json of each; transformers' defaults fill the rest).
ARCHS = [
    Arch("CLIP ViT-B/32 224", "clip", {}),
    Arch("CLIP ViT-B/16 224", "clip", {"patch_size": 16}),
    Arch("CLIP ViT-L/14 224", "clip", L14_VISION, L14_TEXT, projection=768),
    Arch("CLIP ViT-L/14 336", "clip", {**L14_VISION, "image_size": 336}, L14_TEXT, 768),
    Arch("SigLIP 2 B/32 256", "siglip", {"patch_size": 32, "image_size": 256}),
    Arch("SigLIP 2 B/16 224", "siglip", {"patch_size": 16, "image_size": 224}),
]
SIGLIP2_VOCAB = 256_000
CLIP_VOCAB = 49_408


def build(arch: Arch) -> Any:
    """The full-size model with random weights, eval mode, eager attention."""
    import torch
    from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

    torch.manual_seed(0)
    if arch.family == "clip":
        config = CLIPConfig(
            text_config={"vocab_size": CLIP_VOCAB, **arch.text},
            vision_config={**arch.vision},
            projection_dim=arch.projection,
        )
        return CLIPModel._from_config(config, attn_implementation="eager").eval()
    config = SiglipConfig(
        text_config={"vocab_size": SIGLIP2_VOCAB, **arch.text},
        vision_config={**arch.vision},
    )
    return SiglipModel._from_config(config, attn_implementation="eager").eval()


def params(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def prepare(arch: Arch, cache: Path) -> dict[str, Any]:
    """Exports the image tower (fp32 + int8) once; returns sizes and file paths."""
    from export import convert, quantize

    folder = cache / arch.name.replace(" ", "_").replace("/", "-")
    fp32, int8 = folder / "vision.onnx", folder / "vision.int8.onnx"
    model = build(arch)
    vision = model.vision_model
    size = int(model.config.vision_config.image_size)
    figures = {
        "name": arch.name,
        "family": arch.family,
        "image_size": size,
        "vision_params_m": round(params(vision) / 1e6, 1),
        "text_params_m": round((params(model) - params(vision)) / 1e6, 1),
    }
    if not int8.exists():
        folder.mkdir(parents=True, exist_ok=True)
        say(f"{arch.name}: exporting the image tower")
        convert.export_vision(model, size, fp32)
        sub = model.config.vision_config
        quantize.quantize(
            fp32, int8, num_heads=sub.num_attention_heads, hidden_size=sub.hidden_size
        )
    del model
    figures["files"] = {"fp32": str(fp32), "int8": str(int8)}
    figures["vision_int8_mb"] = round(int8.stat().st_size / 1e6, 1)
    return figures


def measure(cache: Path, rounds: int = 3, threads: int = 2) -> list[dict[str, Any]]:
    import onnxruntime as ort

    rows = [prepare(arch, cache) for arch in ARCHS]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    rng = np.random.default_rng(0)
    times: dict[tuple[int, str], list[float]] = {}
    for precision in ("int8", "fp32"):
        sessions = [
            ort.InferenceSession(r["files"][precision], opts, providers=["CPUExecutionProvider"])
            for r in rows
        ]
        feeds = [
            {"pixel_values": rng.standard_normal((BATCH, 3, s, s)).astype(np.float32)}
            for s in (r["image_size"] for r in rows)
        ]
        for sess, feed in zip(sessions, feeds, strict=True):
            sess.run(None, {"pixel_values": feed["pixel_values"][:2]})  # warm-up
        for round_ in range(rounds):
            say(f"{precision} round {round_ + 1}/{rounds}")
            for i, (sess, feed) in enumerate(zip(sessions, feeds, strict=True)):
                started = time.perf_counter()
                sess.run(None, feed)
                times.setdefault((i, precision), []).append(time.perf_counter() - started)
        del sessions
    for i, row in enumerate(rows):
        for precision in ("int8", "fp32"):
            row[f"img_s_{precision}"] = round(BATCH / statistics.median(times[i, precision]), 1)
        del row["files"]
    return rows


def render(rows: list[dict[str, Any]], conditions: str = "") -> str:
    lines = [
        "| architecture | px | image / text tower params (M) | image int8 file (MB) "
        "| img/s int8 | img/s fp32 |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['image_size']} | {r['vision_params_m']} / {r['text_params_m']} "
            f"| {r['vision_int8_mb']} | {r['img_s_int8']} | {r['img_s_fp32']} |"
        )
    note = (
        f"\nImage tower only, ONNX Runtime, batch {BATCH}, 2 threads, random weights, median of "
        f"alternating rounds. {conditions}".rstrip()
    )
    return "\n".join(lines) + "\n" + note + "\n"
