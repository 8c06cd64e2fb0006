"""Session fixtures: one tiny CLIP checkpoint exported once with `python -m export`'s code path.

`exported_model` is the model folder other tests can run the runtime on; `export_checkpoint` is
the checkpoint it was exported from (deliberately unusual sizes: D=24, S=40, patch 8, so nothing
can silently assume CLIP's 512/224). It is not the `tiny_checkpoint` fixture, whose S is 32.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import make_tiny_clip

EXPORT_DIM = 24
EXPORT_IMAGE_SIZE = 40


@pytest.fixture(scope="session")
def export_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_clip(
        tmp_path_factory.mktemp("export-ckpt"),
        projection_dim=EXPORT_DIM,
        image_size=EXPORT_IMAGE_SIZE,
        patch_size=8,
        hidden=32,
        layers=2,
        heads=2,
        seed=1,
    )


@pytest.fixture(scope="session")
def exported_model(export_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete, verified model folder (fp32 + int8 ONNX, tokenizer.json, manifest.json)."""
    from export.__main__ import main

    out = tmp_path_factory.mktemp("exported") / "model"
    code = main(["--model", str(export_checkpoint), "--out", str(out)])
    assert code == 0, f"export of the tiny checkpoint failed with exit code {code}"
    return out
