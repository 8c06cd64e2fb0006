"""`clipsearch serve` on the 128-image index: latency under a bounded concurrent load over
loopback HTTP, and one-shot `clipsearch search` through its query socket against a local search
and a bare interpreter (whole processes, interleaved round by round)."""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlsplit

from bench.report import _table
from bench.run import run, say
from bench.throughput import CLIPSEARCH

THREADS = 8
TARGET_DAEMON_S = 0.05
ACCEPT_DAEMON_S = 0.1
QUERY = "a dog running on the beach"


def _start(index_dir: Path, scratch: Path) -> tuple[subprocess.Popen, str, dict[str, str]]:
    env = {
        **os.environ,
        "XDG_RUNTIME_DIR": str(scratch / "run"),
        "CLIPSEARCH_HOME": str(scratch / "home"),
    }
    env.pop("CLIPSEARCH_NO_DAEMON", None)
    (scratch / "run").mkdir(mode=0o700)
    cmd = [*CLIPSEARCH, "serve", "--index", str(index_dir), "--port", "0"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        proc.kill()
        raise RuntimeError(f"clipsearch serve did not start (exit code {proc.wait()})")
    return proc, url.rstrip("/"), env


def _percentiles(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {
        "n": len(ms),
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))],
        "max_ms": ms[-1],
    }


def load(url: str, requests: int, captions: list[str]) -> dict:
    """`requests` requests from THREADS threads with keep-alive connections: 60% text searches
    (k=10), 20% "more like this", 20% thumbnails (made on first request, then cached)."""
    parts = urlsplit(url)
    first = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    first.request("GET", "/api/search?q=x&k=1000")
    ids = [r["id"] for r in json.loads(first.getresponse().read())["results"]]
    first.close()
    rng = random.Random(7)
    plan = []
    for _ in range(requests):
        kind = rng.choices(("search", "similar", "thumb"), (6, 2, 2))[0]
        if kind == "search":
            plan.append((kind, f"/api/search?q={quote(rng.choice(captions))}&k=10"))
        elif kind == "similar":
            plan.append((kind, f"/api/similar/{rng.choice(ids)}?k=10"))
        else:
            plan.append((kind, f"/thumb/{rng.choice(ids)}"))
    times: dict[str, list[float]] = {"search": [], "similar": [], "thumb": []}
    errors: list[str] = []
    lock = threading.Lock()

    def worker(steps: list[tuple[str, str]]) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        for kind, path in steps:
            started = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                times[kind].append(elapsed)
                if response.status != 200 or not body:
                    errors.append(f"{path}: {response.status}")
        conn.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(worker, [plan[i::THREADS] for i in range(THREADS)]))
    wall = time.perf_counter() - started
    every = [t for ts in times.values() for t in ts]
    return {
        "threads": THREADS,
        "requests": requests,
        "errors": len(errors),
        "first_errors": errors[:5],
        "per_s": requests / wall,
        "all": _percentiles(every),
        **{kind: _percentiles(ts) for kind, ts in times.items() if ts},
    }


def _without_took(text: str) -> str:
    return re.sub(r'"took_ms": [0-9.]+', "", text)


def one_shot(index_dir: Path, env: dict[str, str], rounds: int) -> dict:
    """Whole processes, interleaved: a bare interpreter, `clipsearch search` answered by the
    server, and the same search done locally (CLIPSEARCH_NO_DAEMON=1)."""
    search = [*CLIPSEARCH, "search", QUERY, "--index", str(index_dir), "--json"]
    commands = {
        "python -c pass": ([sys.executable, "-c", "pass"], env),
        "search via serve": (search, env),
        "search, local": (search, {**env, "CLIPSEARCH_NO_DAEMON": "1"}),
    }
    served, local = run(search, env), run(search, commands["search, local"][1])
    same = _without_took(served.stdout) == _without_took(local.stdout)
    runs: dict[str, list] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, (cmd, cmd_env) in commands.items():
            runs[name].append(run(cmd, cmd_env))
    out: dict = {"rounds": rounds, "identical_output": same}
    for name, rs in runs.items():
        walls = sorted(r.seconds for r in rs)
        out[name] = {
            "median_s": statistics.median(walls),
            "min_s": walls[0],
            "max_s": walls[-1],
            "cpu_s": statistics.median(r.cpu_seconds for r in rs),
            "peak_rss_mb": max(r.peak_rss_mb for r in rs),
        }
    return out


def measure(index_dir: Path, captions: list[str], quick: bool = False) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="cs-bench-", dir="/tmp"))  # short: socket paths
    try:
        say("clipsearch serve: load test and one-shot searches through its socket")
        started = time.perf_counter()
        proc, url, env = _start(index_dir, scratch)
        start_s = time.perf_counter() - started
        try:
            figures = {
                "start_s": start_s,
                "load": load(url, 200 if quick else 400, captions),
                "one_shot": one_shot(index_dir, env, 7 if quick else 15),
            }
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return figures


def served_one_shot(index_dir: Path, rounds: int) -> dict:
    """`one_shot` alone (no load test): start `clipsearch serve`, time the searches, stop it."""
    scratch = Path(tempfile.mkdtemp(prefix="cs-bench-", dir="/tmp"))  # short: socket paths
    try:
        say("one-shot searches through a running `clipsearch serve`")
        proc, _, env = _start(index_dir, scratch)
        try:
            return one_shot(index_dir, env, rounds)
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _ms(f: dict) -> str:
    return f"{f['p50_ms']:.1f} / {f['p99_ms']:.1f} ms"


def render(web: dict, count: int) -> list[str]:
    lo, shot = web["load"], web["one_shot"]
    out = [
        "## `clipsearch serve`",
        "",
        f"The {count}-image index, full-size model, int8. Load: {lo['threads']} threads on "
        "keep-alive loopback connections, 60% text searches (k=10, varied captions), 20% "
        '"more like this", 20% thumbnails (made on first request, then cached); the server and '
        "the clients share the machine's cores.",
        "",
    ]
    rows = [
        ["server start (index open, both towers loaded) to listening", f"{web['start_s']:.2f} s"],
        ["requests / errors", f"{lo['requests']} / {lo['errors']}"],
        ["throughput", f"{lo['per_s']:.0f} requests/s"],
        ["all requests p50 / p99", _ms(lo["all"])],
    ]
    names = {"search": "text search", "similar": "more like this", "thumb": "thumbnail"}
    rows += [[f"{names[k]} p50 / p99 ({lo[k]['n']})", _ms(lo[k])] for k in names if k in lo]
    out += _table(["figure", "value"], rows)
    out += [
        f"One-shot `clipsearch search TEXT --json`: whole processes, {shot['rounds']} interleaved "
        "rounds; *via serve* asks the running server over its Unix socket, *local* loads the "
        f"model and index itself. Identical output (took_ms aside): "
        f"{'yes' if shot['identical_output'] else '**no**'}.",
        "",
    ]
    rows = []
    for name in ("python -c pass", "search via serve", "search, local"):
        f = shot[name]
        rows.append(
            [
                name,
                f"{f['median_s'] * 1000:.0f} ms ({f['min_s'] * 1000:.0f}-{f['max_s'] * 1000:.0f})",
                f"{f['cpu_s'] * 1000:.0f} ms",
                f"{f['peak_rss_mb']:.0f} MB",
            ]
        )
    return out + _table(["process", "median wall (min-max)", "CPU", "peak RSS"], rows)


def target_rows(web: dict) -> list[list[str]]:
    via = web["one_shot"]["search via serve"]["median_s"]
    met = "yes" if via <= TARGET_DAEMON_S else ("accepted" if via <= ACCEPT_DAEMON_S else "**no**")
    return [
        [
            "one-shot `clipsearch search` with `clipsearch serve` running",
            f"<= {TARGET_DAEMON_S * 1000:.0f} ms (accept {ACCEPT_DAEMON_S * 1000:.0f})",
            f"{via * 1000:.0f} ms",
            met,
        ],
        [
            "`clipsearch serve` load test errors",
            "0",
            str(web["load"]["errors"]),
            "yes" if not web["load"]["errors"] else "**no**",
        ],
    ]
