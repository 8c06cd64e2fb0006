"""Which int8 quantisation to ship: speed, size and fidelity of the variants, measured here.

    python -m export.quant_study [--iterations 3] [--threads 2] [--save]

Builds a full-size CLIP ViT-B/32 (CLIPConfig defaults) with random weights, exports both towers
through `export.convert`, quantises them with every variant in `VARIANTS` through
`export.quantize`, and prints one table: file size, throughput (batch 32 images at 224, batch 32
captions of 20 tokens, `--threads` intra-op threads) and cosine to PyTorch fp32. Speed does not
depend on the weights; fidelity on random weights is indicative only (trained CLIP has outlier
activations a random model lacks). `--save` writes the table to export/quant_study.json, which
every export copies into its manifest's "quantization" entry as the reason for the default.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from export import convert, samples
from export.quantize import DEFAULT, DEFAULTS, VISION_DEFAULT, QuantSettings
from export.verify import row_cosines, session

SAVE_TO = Path(__file__).with_name("quant_study.json")
BATCH = 32
TOWERS = ("vision", "text")
TEXT_LEN = 20
NOTE = (
    "On a machine shared with other jobs absolute figures swing between runs (up to 4x here: "
    "other processes compete for cores, caches and memory bandwidth, which niceness does not "
    "fix); compare rows of one run, which were timed round-robin under the same conditions."
)
VARIANTS: list[QuantSettings] = [
    DEFAULT.but(per_channel=False),
    DEFAULT,
    DEFAULT.but(op_types=("MatMul", "Gemm")),
    DEFAULT.but(reduce_range=True),
    DEFAULT.but(weight_type="QUInt8"),
    DEFAULT.but(preprocess="pre_process"),
    DEFAULT.but(preprocess="ort_fusion", op_types=(*DEFAULT.op_types, "Attention")),
    DEFAULT.but(op_types=(*DEFAULT.op_types, "Conv")),
    VISION_DEFAULT,
    DEFAULT.but(mode="static", per_channel=False),
    DEFAULT.but(mode="static", activation_type="QInt8"),
]


def cpu_description() -> str:
    flags: set[str] = set()
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return f"{name}; {' '.join(isa) or 'no AVX2'}"


def build_inputs(image_size: int, eos_id: int, bos_id: int) -> dict[str, dict[str, np.ndarray]]:
    from transformers import CLIPImageProcessor

    proc = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    pixels = proc(samples.images(BATCH, seed=1), return_tensors="np")["pixel_values"]
    rng = np.random.default_rng(0)
    ids = np.full((BATCH, TEXT_LEN), eos_id, dtype=np.int64)  # pad = eos, as CLIP does
    mask = np.zeros_like(ids)
    for row, length in enumerate(rng.integers(4, TEXT_LEN + 1, size=BATCH)):
        ids[row, 0] = bos_id
        ids[row, 1 : length - 1] = rng.integers(300, 40000, size=length - 2)
        ids[row, length - 1] = eos_id
        mask[row, :length] = 1
    mask[0, :] = 1  # one full row so the batch really is TEXT_LEN long
    ids[0, 1:-1] = rng.integers(300, 40000, size=TEXT_LEN - 2)
    ids[0, -1] = eos_id
    return {
        "vision": {"pixel_values": pixels.astype(np.float32)},
        "text": {"input_ids": ids, "attention_mask": mask},
    }


class Candidate:
    """One row of the table: two runnable towers, their sizes and their fidelity."""

    def __init__(self, label: str, run: dict, mb: dict, got: dict, ref: dict) -> None:
        self.label, self.run, self.mb = label, run, mb
        self.cos = {t: row_cosines(got[t], ref[t]) for t in TOWERS}
        self.times: dict[str, list[float]] = {t: [] for t in TOWERS}

    def row(self) -> dict:
        row: dict = {"variant": self.label}
        for t in TOWERS:
            row[t] = {
                "per_s": round(BATCH / statistics.median(self.times[t]), 1),
                "per_s_best": round(BATCH / min(self.times[t]), 1),
                "mb": self.mb[t],
                "cos_min": round(float(self.cos[t].min()), 5),
                "cos_mean": round(float(self.cos[t].mean()), 5),
            }
        return row


def torch_candidate(model, inputs, threads: int) -> tuple[Candidate, dict]:
    torch.set_num_threads(threads)
    pixels = torch.from_numpy(inputs["vision"]["pixel_values"])
    ids = torch.from_numpy(inputs["text"]["input_ids"])
    mask = torch.from_numpy(inputs["text"]["attention_mask"])

    def vision():
        with torch.no_grad():
            return model.get_image_features(pixel_values=pixels).numpy()

    def text():
        with torch.no_grad():
            return model.get_text_features(input_ids=ids, attention_mask=mask).numpy()

    ref = {"vision": vision(), "text": text()}
    run = {"vision": vision, "text": text}
    return Candidate("PyTorch fp32 (sdpa attention)", run, {t: None for t in TOWERS}, ref, ref), ref


def onnx_candidate(label: str, files: dict, inputs, ref, threads: int) -> Candidate:
    run, got, mb = {}, {}, {}
    for t in TOWERS:
        sess = session(files[t], threads)
        run[t] = lambda s=sess, f=inputs[t]: s.run(None, f)[0]
        got[t] = run[t]()
        mb[t] = round(files[t].stat().st_size / 1e6, 1)
    return Candidate(label, run, mb, got, ref)


def time_rounds(candidates: list[Candidate], iterations: int) -> None:
    """Round-robin timing: load from other processes hits every candidate alike."""
    from export.progress import say

    for i in range(iterations + 1):  # round 0 warms up (allocation, kernel choice)
        say(f"timing round {i}/{iterations}")
        for cand in candidates:
            for t in TOWERS:
                start = time.perf_counter()
                cand.run[t]()
                if i:
                    cand.times[t].append(time.perf_counter() - start)


def calibration(inputs) -> dict[str, list[dict[str, np.ndarray]]]:
    from transformers import CLIPImageProcessor

    proc = CLIPImageProcessor()  # calibrate on other images than those measured
    pixels = proc(samples.images(32, seed=7), return_tensors="np")["pixel_values"]
    text = inputs["text"]
    return {
        "vision": [{"pixel_values": pixels[i : i + 8].astype(np.float32)} for i in range(0, 32, 8)],
        "text": [{k: v[i : i + 8] for k, v in text.items()} for i in range(0, BATCH, 8)],
    }


def study(iterations: int, threads: int, workdir: Path, variants: list[QuantSettings]) -> dict:
    from transformers import CLIPConfig, CLIPModel
    from transformers.utils import logging as hf_logging

    from export.progress import say, step
    from export.quantize import quantize

    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    config = CLIPConfig()  # defaults are ViT-B/32: D=512, S=224, 12+12 layers
    model = CLIPModel(config).eval()  # sdpa attention: PyTorch at its fastest
    tcfg, vcfg = config.text_config, config.vision_config
    inputs = build_inputs(vcfg.image_size, tcfg.eos_token_id, tcfg.bos_token_id)
    baseline, ref = torch_candidate(model, inputs, threads)
    model.set_attn_implementation("eager")  # as export.checkpoint loads it
    fp32 = {"vision": workdir / "vision.onnx", "text": workdir / "text.onnx"}
    with step("exporting ViT-B/32 (random weights) to ONNX"):
        convert.export_vision(model, vcfg.image_size, fp32["vision"])
        convert.export_text(model, tcfg.bos_token_id, tcfg.eos_token_id, fp32["text"])
    candidates = [baseline, onnx_candidate("ONNX fp32", fp32, inputs, ref, threads)]
    failed: dict[int, str] = {}
    calib = calibration(inputs)
    for i, settings in enumerate(variants):
        files = {t: workdir / f"{t}.{i}.int8.onnx" for t in TOWERS}
        with step(f"int8 {settings.label()}"):
            try:
                for tower, sub in (("vision", vcfg), ("text", tcfg)):
                    quantize(
                        fp32[tower],
                        files[tower],
                        settings,
                        num_heads=sub.num_attention_heads,
                        hidden_size=sub.hidden_size,
                        calibration=calib[tower],
                    )
                cand = onnx_candidate(settings.label(), files, inputs, ref, threads)
                cand.settings = settings  # type: ignore[attr-defined]
                candidates.append(cand)
            except Exception as exc:  # a variant the runtime cannot run is a result too
                failed[i] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                say(f"failed: {failed[i]}")
    load_before = os.getloadavg()[0]
    time_rounds(candidates, iterations)
    load = f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    rows = []
    for cand in candidates:
        row = cand.row()
        settings = getattr(cand, "settings", None)
        if settings is not None:
            row["settings"] = settings.to_dict()
            row["default"] = settings in DEFAULTS.values()
        rows.append(row)
    for i, why in failed.items():
        rows.append(
            {"variant": variants[i].label(), "settings": variants[i].to_dict(), "error": why}
        )
    return {
        "model": "CLIP ViT-B/32 architecture (transformers CLIPConfig defaults), random weights",
        "cpu": cpu_description(),
        "threads": threads,
        "load_average_while_timing": load,  # other processes compete for the same cores
        "niceness": os.nice(0),  # run under `nice -n -15` to get the cores while others work
        "batch": BATCH,
        "image_size": vcfg.image_size,
        "text_length": TEXT_LEN,
        "iterations": iterations,
        "speed": "items/s from the median (per_s) and best (per_s_best) timed round; candidates "
        "timed round-robin after a warm-up round, so load from other processes hits all alike",
        "fidelity": "cosine per row vs PyTorch fp32; on random weights indicative only",
        "note": NOTE,
        "onnxruntime": __import__("onnxruntime").__version__,
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": rows,
    }


def table(result: dict) -> str:
    head = (
        f"{'variant':58} {'img/s':>6} {'MB':>6} {'cos min':>8} {'mean':>8}"
        f" {'txt/s':>6} {'MB':>6} {'cos min':>8} {'mean':>8}"
    )
    lines = [
        f"# {result['model']}; {result['cpu']}; threads={result['threads']}; "
        f"load average while timing {result['load_average_while_timing']}, "
        f"nice {result['niceness']}; items/s = median of {result['iterations']} rounds",
        head,
    ]
    for row in result["rows"]:
        name = ("* " if row.get("default") else "") + row["variant"]
        if "error" in row:
            lines.append(f"{name:58} failed: {row['error'][:80]}")
            continue
        cells = []
        for tower in ("vision", "text"):
            r = row[tower]
            mb = "-" if r["mb"] is None else f"{r['mb']:.1f}"
            cells.append(f"{r['per_s']:6.1f} {mb:>6} {r['cos_min']:8.5f} {r['cos_mean']:8.5f}")
        lines.append(f"{name:58} " + " ".join(cells))
    lines.append(
        "* = a tower's default (export.quantize.DEFAULTS); fidelity on random weights is indicative"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.quant_study", description=__doc__)
    p.add_argument("--iterations", type=int, default=3, help="timed runs per variant (default 3)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--only", type=int, nargs="*", help="indices into VARIANTS to measure")
    p.add_argument("--save", action="store_true", help=f"write the table to {SAVE_TO.name}")
    args = p.parse_args(argv)
    variants = [VARIANTS[i] for i in args.only] if args.only is not None else VARIANTS
    with tempfile.TemporaryDirectory(prefix="clipsearch-quant-study-") as tmp:
        result = study(args.iterations, args.threads, Path(tmp), variants)
    print(table(result))
    if args.save:
        SAVE_TO.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
