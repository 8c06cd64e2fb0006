"""The writer's side of a large collection (`python -m bench --only store`): `clipsearch index` over
a folder of N catalogued files, unchanged and with one new picture, at two sizes.

The folder holds N hard links to one small JPEG (in folders of 1,000); a synthetic shard that
records each link's path, size and mtime (and clustered vectors, bench/vectors.py) is imported
first, so the index run finds N known, unchanged files: what it costs is the scan, the folder diff
in SQL and publishing. Figures: wall time and peak RssAnon (sampled) of each run. Interrupting a
first run at random moments is `python -m bench.interrupts`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from bench import vectors
from bench.large import CLIPSEARCH
from bench.run import run, say

SIZES = (100_000, 200_000)
PER_FOLDER = 1000
LINKS_PER_FILE = 50_000


def make_folder(root: Path, n: int) -> list[dict]:
    """`n` links to a few copies of one JPEG below `root`, and their catalog lines."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        source = root.parent / f"one-{i // LINKS_PER_FILE}.jpg"  # ext4 allows 65,000 links
        if not source.exists():
            Image.new("RGB", (64, 48), (200, 40, 40)).save(source, quality=90)
        path = root / f"{i // PER_FOLDER:05d}" / f"{i:07d}.jpg"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, path)
        st = path.stat()
        lines.append(
            {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
             "width": 64, "height": 48}
        )  # fmt: skip
    return lines


def measure_size(cache: Path, model: Path, n: int) -> dict:
    work = cache / f"n{n}"
    folder, index, shard = work / "photos", work / "index", work / "shard"
    lines = make_folder(folder, n)
    if not (shard / "items.jsonl").exists():
        shard.mkdir(parents=True, exist_ok=True)
        sample = vectors.ClusterModel().sample(n, np.random.default_rng(n))
        np.save(shard / "embeddings.npy", sample)
        (shard / "items.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    del lines
    shutil.rmtree(index, ignore_errors=True)
    (folder / "new.jpg").unlink(missing_ok=True)
    say(f"{n:,} files: clipsearch import of their vectors")
    common = ["--index", str(index), "-q"]
    imported = run([*CLIPSEARCH, "import", str(shard), "--model", str(model), *common], anon=True)
    say(f"{n:,} files: clipsearch index, nothing changed")
    unchanged = run([*CLIPSEARCH, "index", str(folder), *common], anon=True)
    Image.new("RGB", (64, 48), (20, 40, 200)).save(folder / "new.jpg", quality=90)
    say(f"{n:,} files: clipsearch index, one new picture")
    one = run([*CLIPSEARCH, "index", str(folder), *common], anon=True)
    # (ru_maxrss is not reported: a child's starts at its parent's size, here hundreds of MB)
    return {
        name: {"seconds": r.seconds, "peak_anon_mb": r.peak_anon_mb}
        for name, r in (
            ("import", imported),
            ("index_unchanged", unchanged),
            ("index_one_new", one),
        )
    }


def measure(cache: Path, model: Path, sizes: list[int]) -> dict:
    cache = cache / "store"
    return {"sizes": {n: measure_size(cache, model, n) for n in sizes}, "load": os.getloadavg()}


def render(result: dict) -> list[str]:
    lines = [
        "## The writer: index runs over a large catalog (issue 12)",
        "",
        "| files | step | wall s | peak RssAnon MB |",
        "|---:|---|---:|---:|",
    ]
    for n, steps in result["sizes"].items():
        for step, f in steps.items():
            lines.append(f"| {int(n):,} | {step} | {f['seconds']:.1f} | {f['peak_anon_mb']:.0f} |")
    lines.append(f"\nload average at the end: {result['load'][0]:.1f}")
    return lines
