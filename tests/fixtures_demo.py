"""Session fixtures: the committed demo model exported once, and demo data sets indexed with it
(`make demo`'s 8,000-image set, seed 0, and others on demand), shared by the tests that check
what the demo model finds (test_demo_quality, test_query_demo)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from demo.__main__ import COMMITTED
from demo.data import DEFAULT_IMAGES, generate
from tests.fixtures_collection import run_cli


@dataclass(frozen=True)
class Indexed:
    data: Path
    model: Path
    index: Path
    home: Path


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.__main__ import main

    out = tmp_path_factory.mktemp("demo-model") / "model"
    assert main(["--model", str(COMMITTED), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def demo_indexer(
    demo_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[int, int], Indexed]:
    """`index(seed, n_images)`: that demo data set generated and indexed (once a session)."""
    built: dict[tuple[int, int], Indexed] = {}

    def index(seed: int, n_images: int) -> Indexed:
        if (seed, n_images) not in built:
            home = tmp_path_factory.mktemp(f"demo-data-{seed}")
            data = generate(home / "data", n_images=n_images, seed=seed)
            folder = home / "index"
            proc = run_cli(
                "index", data / "Images", "--captions", data / "captions.txt",
                "--model", demo_model, "--index", folder, "-q", home=home, timeout=600,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            built[seed, n_images] = Indexed(data, demo_model, folder, home)
        return built[seed, n_images]

    return index


@pytest.fixture(scope="session")
def demo_set(demo_indexer: Callable[[int, int], Indexed]) -> Indexed:
    """`make demo`'s data set (seed 0, 8,000 images), indexed."""
    return demo_indexer(0, DEFAULT_IMAGES)
