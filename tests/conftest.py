"""Session-wide fixtures. Other fixture modules are registered in `pytest_plugins` below."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.factories import make_tiny_clip

pytest_plugins = [
    "tests.fixtures_export",
    "tests.fixtures_index",
    "tests.fixtures_collection",
    "tests.fixtures_web",
    "tests.fixtures_models",
    "tests.fixtures_demo",
]


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Caches written by code the tests run in-process (OpenVINO's compiled graphs) go to a
    temporary folder, not the user's ~/.cache/clipsearch."""
    if not os.environ.get("CLIPSEARCH_HOME"):
        os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIP checkpoint laid out like a hub download (torch weights + tokenizer)."""
    return make_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))
