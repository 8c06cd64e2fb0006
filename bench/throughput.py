"""Embedding throughput, whole processes on the same JPEGs: the prototype's transformers + PyTorch
fp32 pipeline against `clipsearch index` at fp32 and int8, interleaved round by round so that
background load hits all three alike."""

from __future__ import annotations

import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.run import Run, run, say

CLIPSEARCH = [sys.executable, "-m", "clipsearch_onnx"]
SUMMARY = re.compile(r"(\d+) embedded in ([\d.]+) s")


def baseline(checkpoint: Path, images: Path, out: Path) -> tuple[Run, float]:
    cmd = [sys.executable, "-m", "bench.baseline", "--model", str(checkpoint)]
    r = run([*cmd, "--images", str(images), "--out", str(out)])
    data = json.loads(r.stdout.strip().splitlines()[-1])
    return r, data["images"] / data["embed_seconds"]


def index(model: Path, images: Path, index_dir: Path, precision: str) -> tuple[Run, float]:
    cmd = [*CLIPSEARCH, "index", str(images), "--model", str(model), "--index", str(index_dir)]
    r = run([*cmd, "--precision", precision, "--rebuild"])
    match = SUMMARY.search(r.stderr)
    steady = int(match[1]) / float(match[2]) if match and float(match[2]) else float("nan")
    return r, steady


def index_embeddings(index_dir: Path) -> dict[str, np.ndarray]:
    """path -> embedding, read back from the index's shards."""
    found = {}
    from clipsearch_onnx.layout import SHARDS, current_dir

    build = current_dir(index_dir)
    assert build is not None, f"no index in {index_dir}"
    for shard in sorted((build / SHARDS).iterdir()):
        emb = np.load(shard / "embeddings.npy")
        lines = (shard / "items.jsonl").read_text(encoding="utf-8").splitlines()
        for row, line in enumerate(lines):
            found[json.loads(line)["path"]] = emb[row]
    return found


def measure(checkpoint: Path, model: Path, images: Path, rounds: int) -> dict:
    """Figures for one image folder: per pipeline, medians over `rounds` runs."""
    n = len(list(images.glob("*.jpg")))
    runs: dict[str, list[tuple[Run, float]]] = {"torch-fp32": [], "onnx-fp32": [], "onnx-int8": []}
    with tempfile.TemporaryDirectory(prefix="clipsearch-bench-") as tmp:
        work = Path(tmp)
        for r in range(rounds):
            say(f"{images.name}: round {r + 1}/{rounds}: prototype (transformers + PyTorch fp32)")
            runs["torch-fp32"].append(baseline(checkpoint, images, work / "torch.npy"))
            for precision in ("fp32", "int8"):
                say(
                    f"{images.name}: round {r + 1}/{rounds}: clipsearch index --precision {precision}"
                )
                runs[f"onnx-{precision}"].append(
                    index(model, images, work / f"index-{precision}", precision)
                )
        reference = np.load(work / "torch.npy")
        paths = sorted(str(p.absolute()) for p in images.glob("*.jpg"))
        cosines = {}
        for precision in ("fp32", "int8"):
            found = index_embeddings(work / f"index-{precision}")
            ours = np.stack([found[p] for p in paths])
            cos = (ours * reference).sum(axis=1)
            cosines[f"onnx-{precision}"] = {"mean": float(cos.mean()), "min": float(cos.min())}
    result: dict = {"images": n, "folder": str(images), "rounds": rounds, "pipelines": {}}
    for name, measured in runs.items():
        wall = statistics.median(r.seconds for r, _ in measured)
        result["pipelines"][name] = {
            "wall_s": wall,
            "img_per_s": n / wall,
            "steady_img_per_s": statistics.median(s for _, s in measured),
            "cpu_ms_per_img": 1000 * statistics.median(r.cpu_seconds for r, _ in measured) / n,
            "peak_rss_mb": max(r.peak_rss_mb for r, _ in measured),
            "walls": [round(r.seconds, 2) for r, _ in measured],
            "cosine_to_torch": cosines.get(name),
        }
    base = result["pipelines"]["torch-fp32"]
    for figures in result["pipelines"].values():
        figures["ratio"] = figures["img_per_s"] / base["img_per_s"]
        figures["steady_ratio"] = figures["steady_img_per_s"] / base["steady_img_per_s"]
    return result
