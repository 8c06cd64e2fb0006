"""`make demo`'s pipeline end to end (data, training, export, index, search), on a tiny recipe.

This checks that every step runs and hands the next one what it needs, that a second run reuses
what is built, and that switching to another checkpoint replaces the export and the index. The
committed model's quality is tests/test_demo_quality.py's matter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _demo(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "demo", "--images", "120", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _search_rows(run: subprocess.CompletedProcess) -> list[str]:
    """The demo's stdout, which must be the sample search's top 10 and nothing else."""
    rows = [line for line in run.stdout.splitlines() if line.strip()]
    assert len(rows) == 10, run.stdout
    assert all(row.strip()[:1].isdigit() for row in rows), run.stdout
    return rows


def _indexed_count(cwd: Path) -> int:
    info = subprocess.run(
        [sys.executable, "-m", "clipsearch_onnx", "info", "--index", "data/demo/index", "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(info.stdout)["count"]


@pytest.mark.slow
def test_demo_builds_everything_then_reuses_it(tmp_path):
    first = _demo(tmp_path, "--fast")
    assert first.returncode == 0, first.stderr[-2000:]
    assert all("data/demo/Images/demo_" in row for row in _search_rows(first))
    for path in (
        "data/demo/captions.txt",
        "models/demo/manifest.json",
        "data/demo/index/current",
        "models/demo-torch/config.json",
    ):
        assert (tmp_path / path).is_file(), path
    assert "Traceback" not in first.stderr

    second = _demo(tmp_path, "--fast")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "already trained" in second.stderr
    assert "is up to date" in second.stderr
    assert "0 embedded" in second.stderr  # nothing re-embedded

    assert _indexed_count(tmp_path) == 120

    # Then the committed checkpoint, as plain `make demo` uses it: a new export, a new index.
    third = _demo(tmp_path)
    assert third.returncode == 0, third.stderr[-2000:]
    assert "trained by python -m demo.train" in third.stderr  # the committed one, not trained here
    _search_rows(third)
    manifest = json.loads((tmp_path / "models/demo/manifest.json").read_text(encoding="utf-8"))
    assert Path(manifest["source"]["model"]).name == "checkpoint"
    assert _indexed_count(tmp_path) == 120
