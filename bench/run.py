"""Running a measured child process: wall time, peak RSS, output."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass
class Run:
    seconds: float
    cpu_seconds: float  # user + system
    peak_rss_mb: float
    stdout: str
    stderr: str
    peak_anon_mb: float = float("nan")  # peak RssAnon, when sampled (see `run`)


def run(
    cmd: list[str], env: dict[str, str] | None = None, check: bool = True, anon: bool = False
) -> Run:
    """Runs `cmd` and returns its wall time and its own peak resident memory (wait4's
    ru_maxrss for that child, so neither ours nor earlier children's). `anon`: also sample its
    RssAnon every 20 ms (ru_maxrss counts the pages of memory-mapped files too)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        peak_anon = 0
        while anon and not (done := os.wait4(proc.pid, os.WNOHANG))[0]:
            peak_anon = max(peak_anon, _rss_anon_kb(proc.pid))
            time.sleep(0.02)
        _, status, usage = done if anon else os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        result = Run(seconds, cpu, usage.ru_maxrss / 1024, out.read(), err.read())
        if anon:
            result.peak_anon_mb = peak_anon / 1024
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{result.stderr[-3000:]}"
        )
    return result


def _rss_anon_kb(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/status", encoding="ascii"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0
