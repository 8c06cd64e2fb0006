"""End to end against the peer runtime and the prototype: whole processes on the same JPEGs.

Three pipelines embed the same folder (half photo-sized, half web-sized JPEGs), interleaved
round by round so that load from other processes hits them alike; img/s = images / the median
process wall time (start-up, decoding, preprocessing, inference; ours also hashes, writes the
catalog and publishes the index):

- `clipsearch index` with its defaults (int8, backend chosen automatically);
- the peer: an OpenVINO NNCF int8 image tower in a plain Pillow decoding loop (bench/peer.py);
- the prototype: transformers CLIPProcessor + CLIPModel in PyTorch fp32 (bench/baseline.py).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench import throughput
from bench.run import Run, run, say

OURS, PEER, TORCH = "clipsearch index", "peer: OpenVINO NNCF int8 + Pillow loop", "PyTorch fp32"


def peer(model: Path, images: Path, out: Path, threads: int = 2) -> Run:
    cmd = [sys.executable, "-m", "bench.peer", "--model", str(model), "--images", str(images)]
    return run([*cmd, "--threads", str(threads), "--out", str(out)])


def _cosines(vectors: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    cos = (vectors * reference).sum(axis=1)
    return {"min": float(cos.min()), "mean": float(cos.mean())}


def measure(checkpoint: Path, model: Path, peer_model: Path, images: Path, rounds: int) -> dict:
    n = len(list(images.glob("*.jpg")))
    runs: dict[str, list[Run]] = {OURS: [], PEER: [], TORCH: []}
    with tempfile.TemporaryDirectory(prefix="clipsearch-e2e-") as tmp:
        work = Path(tmp)
        for r in range(rounds):
            say(f"end to end, round {r + 1}/{rounds}: clipsearch index, peer, PyTorch")
            runs[OURS].append(throughput.index(model, images, work / "index", "int8")[0])
            runs[PEER].append(peer(peer_model, images, work / "peer.npy"))
            runs[TORCH].append(throughput.baseline(checkpoint, images, work / "torch.npy")[0])
        reference = np.load(work / "torch.npy")
        paths = sorted(str(p.absolute()) for p in images.glob("*.jpg"))
        found = throughput.index_embeddings(work / "index")
        cosines = {
            OURS: _cosines(np.stack([found[p] for p in paths]), reference),
            PEER: _cosines(np.load(work / "peer.npy"), reference),
        }
    result: dict = {"images": n, "rounds": rounds, "pipelines": {}}
    for name, measured in runs.items():
        wall = statistics.median(r.seconds for r in measured)
        result["pipelines"][name] = {
            "img_per_s": n / wall,
            "walls": [round(r.seconds, 2) for r in measured],
            "cpu_ms_per_img": 1000 * statistics.median(r.cpu_seconds for r in measured) / n,
            "peak_rss_mb": max(r.peak_rss_mb for r in measured),
            "cosine_to_torch": cosines.get(name),
        }
    ours = result["pipelines"][OURS]["img_per_s"]
    result["vs_peer"] = ours / result["pipelines"][PEER]["img_per_s"]
    result["vs_torch"] = ours / result["pipelines"][TORCH]["img_per_s"]
    # the same ratios pair by pair (round r against round r), less sensitive to drifting load
    result["vs_peer_rounds"] = [
        p.seconds / o.seconds for o, p in zip(runs[OURS], runs[PEER], strict=True)
    ]
    result["vs_torch_rounds"] = [
        t.seconds / o.seconds for o, t in zip(runs[OURS], runs[TORCH], strict=True)
    ]
    return result


def render_rows(result: dict) -> list[list[str]]:
    rows = []
    for name, f in result["pipelines"].items():
        cos = f["cosine_to_torch"]
        rows.append(
            [
                name,
                f"{f['img_per_s']:.2f}",
                f"{f['cpu_ms_per_img']:.0f}",
                f"{f['peak_rss_mb']:.0f}",
                f"{cos['mean']:.5f} / {cos['min']:.5f}" if cos else "reference",
                json.dumps(f["walls"]),
            ]
        )
    return rows
