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


def run(cmd: list[str], env: dict[str, str] | None = None, check: bool = True) -> Run:
    """Runs `cmd` and returns its wall time and its own peak resident memory (wait4's
    ru_maxrss for that child, so neither ours nor earlier children's)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        result = Run(seconds, cpu, usage.ru_maxrss / 1024, out.read(), err.read())
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{result.stderr[-3000:]}"
        )
    return result
