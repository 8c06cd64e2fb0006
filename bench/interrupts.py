"""`python -m bench.interrupts`: interrupt a first `clipsearch index` at random moments, then
check that the next run succeeds (issue 11: "30 SIGINTs at random moments of a first
`clipsearch index` on a busy machine: every next run succeeds").

Each trial indexes the same photos into a fresh folder, sends SIGINT (SIGKILL with --kill) after
a delay drawn uniformly between 0 and the duration of one whole run (measured first, on the same
busy machine), then runs the same command again: it must exit 0 with every image indexed, and a
search must answer. Every --rebuild-every'th trial checks `--rebuild` instead of a plain run.
--busy N keeps N extra processes spinning meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from bench.run import say

CLIPSEARCH = [sys.executable, "-m", "clipsearch_onnx"]


def make_photos(folder: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = folder / f"photo {i:03d}.jpg"
        if not path.exists():
            cells = rng.integers(0, 256, size=(*rng.integers(2, 7, size=2), 3), dtype=np.uint8)
            image = Image.fromarray(cells, "RGB").resize((320, 240), Image.Resampling.NEAREST)
            image.save(path, quality=90)
    return folder


def spin() -> None:
    while True:
        pass


def trial(cmd: list[str], delay: float, sig: int, env: dict[str, str]) -> dict:
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        # A shell starts background jobs with SIGINT ignored, and children inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    signalled = False
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(sig)
        signalled = True
    _, err = proc.communicate()
    lines = [line for line in err.splitlines() if line.strip()]
    return {
        "delay_s": round(delay, 3),
        "signalled": signalled,
        "at_s": round(time.perf_counter() - started, 3),
        "code": proc.returncode,
        "last_line": lines[-1][:160] if lines else "",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.interrupts", description=__doc__)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--model", type=Path, help="exported model (default: the bench's, built once)")
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--kill", action="store_true", help="SIGKILL instead of SIGINT")
    p.add_argument("--busy", type=int, default=0, metavar="N", help="N spinning processes")
    p.add_argument("--rebuild-every", type=int, default=5, metavar="K")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=Path("build/bench"))
    p.add_argument("--json", action="store_true", help="print every trial as JSON")
    args = p.parse_args(argv)

    cache = args.cache.absolute()
    if args.model is None:
        from bench.model import ensure_model

        _, args.model = ensure_model(cache)
    work = cache / "interrupts"
    shutil.rmtree(work, ignore_errors=True)
    photos = make_photos(work / "photos", args.images)
    env = {**os.environ, "CLIPSEARCH_HOME": str(work / "home")}
    spinners = []
    if args.busy:
        import multiprocessing

        spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
        for s in spinners:
            s.start()
    try:
        base = [*CLIPSEARCH, "index", str(photos), "--model", str(args.model), "--quiet"]
        whole = trial([*base, "--index", str(work / "whole")], 3600, signal.SIGINT, env)
        assert whole["code"] == 0, whole
        span = whole["at_s"]
        say(f"one whole run takes {span:.1f} s; interrupting {args.runs} first runs within it")
        rng = random.Random(args.seed)
        sig = signal.SIGKILL if args.kill else signal.SIGINT
        results = []
        for number in range(args.runs):
            index = work / f"index-{number:03d}"
            cmd = [*base, "--index", str(index)]
            result = trial(cmd, rng.uniform(0, span), sig, env)
            rebuild = args.rebuild_every and number % args.rebuild_every == args.rebuild_every - 1
            after = subprocess.run(
                [*cmd, *(["--rebuild"] if rebuild else [])], capture_output=True, text=True, env=env
            )
            search = subprocess.run(
                [
                    *CLIPSEARCH,
                    "search",
                    "a red square",
                    "--index",
                    str(index),
                    "--json",
                    "-k",
                    "500",
                ],
                capture_output=True,
                text=True,
                env=env,
            )
            found = len(json.loads(search.stdout)["results"]) if search.returncode == 0 else -1
            result.update(
                next="rebuild" if rebuild else "plain",
                next_code=after.returncode,
                next_error=after.stderr.strip().splitlines()[-1:] if after.returncode else [],
                searched=found,
                ok=after.returncode == 0 and found == args.images,
            )
            results.append(result)
            say(
                f"trial {number + 1}/{args.runs}: "
                + (
                    f"signal at {result['delay_s']:.2f} s"
                    if result["signalled"]
                    else "finished first"
                )
                + f", exit "
                f"{result['code']}; next {result['next']} run exit {after.returncode}, "
                f"search found {found}"
            )
    finally:
        for s in spinners:
            s.terminate()
    codes = Counter(r["code"] for r in results)
    good = sum(r["ok"] for r in results)
    summary = {
        "trials": len(results),
        "signal": "SIGKILL" if args.kill else "SIGINT",
        "busy_spinners": args.busy,
        "whole_run_s": span,
        "interrupted_exit_codes": dict(codes),
        "next_run_ok": good,
        "load_average": os.getloadavg(),
    }
    if args.json:
        print(json.dumps({"summary": summary, "trials": results}, indent=1))
    else:
        print(json.dumps(summary))
        for r in results:
            if not r["ok"] or r["code"] not in (0, 130, -9):
                print(json.dumps(r))
    return 0 if good == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
