"""One-shot queries without a daemon: a whole `clipsearch search TEXT` process, and where its
time goes.

Whole process: `clipsearch search TEXT --index DIR` (CLIPSEARCH_NO_DAEMON=1, warm page cache)
against a bare `python -c pass`, alternating, median wall and CPU time over `runs`. Breakdown:
`python -m bench.startup --index DIR [--usual]` times each step in a process of its own (CPU and
wall ms): the imports, opening the index, loading the text tower (the quick way a one-shot
search does, or with --usual the way a long-lived searcher does), the first query.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from bench.run import run

QUERY = "a dog running on the beach"


def whole_process(index_dir: Path, runs: int) -> dict:
    env = {**os.environ, "CLIPSEARCH_NO_DAEMON": "1"}
    search = [sys.executable, "-m", "clipsearch_onnx", "search", QUERY, "--index", str(index_dir)]
    bare = [sys.executable, "-c", "pass"]
    run(search, env=env)  # warm the page cache
    measured: dict[str, list] = {"search": [], "bare": []}
    for _ in range(runs):
        measured["search"].append(run(search, env=env))
        measured["bare"].append(run(bare))
    return {
        name: {
            "wall_s": statistics.median(r.seconds for r in rs),
            "cpu_s": statistics.median(r.cpu_seconds for r in rs),
            "walls": [round(r.seconds, 3) for r in rs],
        }
        for name, rs in measured.items()
    }


def breakdown(index_dir: Path, runs: int, usual: bool = False) -> dict:
    cmd = [sys.executable, "-m", "bench.startup", "--index", str(index_dir)]
    steps = [json.loads(run(cmd + (["--usual"] if usual else [])).stdout) for _ in range(runs)]
    # every key is a number, so that the medians below are taken alike
    return {k: statistics.median(s[k] for s in steps) for k in steps[0]}


def probe(index_dir: Path, usual: bool) -> dict:
    marks = [("start", time.process_time(), time.perf_counter())]

    def mark(name: str) -> None:
        marks.append((name, time.process_time(), time.perf_counter()))

    import numpy  # noqa: F401

    mark("import numpy")
    import onnxruntime  # noqa: F401

    mark("import onnxruntime")
    from clipsearch_onnx.search import open_searcher
    from clipsearch_onnx.settings import load_settings

    mark("import clipsearch")
    searcher = open_searcher(load_settings({"index_dir": index_dir}), quick_start=not usual)
    mark("open index (FAISS only for large indexes)")
    searcher.encoder.tokenizer  # noqa: B018 - loading it is the point
    searcher.encoder.session("text")
    mark("load text tower")
    searcher.search(QUERY)
    mark("first query")
    out = {"faiss imported": float("faiss" in sys.modules)}
    for (_, c0, w0), (name, c1, w1) in zip(marks, marks[1:], strict=False):
        out[f"{name} cpu_ms"] = 1000 * (c1 - c0)
        out[f"{name} wall_ms"] = 1000 * (w1 - w0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__)
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--usual", action="store_true", help="load the text tower as a server does")
    args = p.parse_args()
    print(json.dumps(probe(args.index, args.usual)))


if __name__ == "__main__":
    main()
