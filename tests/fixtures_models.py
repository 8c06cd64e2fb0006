"""Session fixtures: tiny checkpoints of each model family, each exported once by `python -m
export`'s code path.

- `siglip`: a SigLIP 2-style SiglipModel (Gemma-style tokenizer returning input_ids + mask),
  exported through the hub path (`--model someone/tiny-siglip`) with only huggingface_hub's two
  network calls faked, so the download code runs as it does for a real hub id.
- `siglip_v1`: a SigLIP (v1)-style one: a slow SentencePiece tokenizer (spiece.model) returning
  input_ids only, which the export converts to a tokenizer.json.
- `clip16`: a CLIP with patch 16, 112 px images and projection 40 (nothing may assume 32/224/512).
- `sensitive_clip`: the sensitive tiny CLIP (tests/factories.py: weights std 0.2, S = 32), where a
  decoding that moves pixels by a grey level shows in the cosine.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.factories import make_sensitive_clip, make_tiny_clip
from tests.factories_models import make_tiny_siglip

HUB_SHA = "fedcba9876543210fedcba9876543210fedcba98"


@dataclass(frozen=True)
class Exported:
    checkpoint: Path  # the transformers checkpoint
    model: Path  # the exported model folder


def _export(source: str, out: Path) -> Path:
    from export.__main__ import main

    code = main(["--model", source, "--out", str(out)])
    assert code == 0, f"export of {source} failed with exit code {code}"
    return out


def fake_hub(monkeypatch: pytest.MonkeyPatch, checkpoint: Path, root: Path) -> list[dict]:
    """Fakes huggingface_hub's network edge: model_info lists the checkpoint's files and
    snapshot_download copies the ones its allow_patterns select. Returns the download calls."""
    import fnmatch

    import huggingface_hub

    calls: list[dict] = []
    names = sorted(p.name for p in checkpoint.iterdir())

    class Info:
        sha = HUB_SHA
        siblings = [type("Sibling", (), {"rfilename": n})() for n in names]

    def snapshot_download(repo_id, revision, allow_patterns, **kwargs):
        calls.append({"repo_id": repo_id, "revision": revision, "patterns": allow_patterns})
        target = root / "snapshots" / revision
        target.mkdir(parents=True, exist_ok=True)
        for name in names:
            if any(fnmatch.fnmatch(name, pattern) for pattern in allow_patterns):
                shutil.copyfile(checkpoint / name, target / name)
        return str(target)

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda self, repo, revision: Info())
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


@pytest.fixture(scope="session")
def siglip(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    ckpt = make_tiny_siglip(tmp_path_factory.mktemp("siglip-ckpt"), image_size=32, seed=2)
    root = tmp_path_factory.mktemp("siglip-hub")
    with pytest.MonkeyPatch.context() as mp:
        calls = fake_hub(mp, ckpt, root)
        model = _export("someone/tiny-siglip", root / "model")
    assert [c["revision"] for c in calls] == [HUB_SHA]
    return Exported(ckpt, model)


@pytest.fixture(scope="session")
def siglip_v1(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    ckpt = make_tiny_siglip(
        tmp_path_factory.mktemp("siglip-v1-ckpt"), image_size=48, patch_size=16, seed=3,
        spm=True,
    )  # fmt: skip
    return Exported(ckpt, _export(str(ckpt), tmp_path_factory.mktemp("siglip-v1") / "model"))


@pytest.fixture(scope="session")
def clip16(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    ckpt = make_tiny_clip(
        tmp_path_factory.mktemp("clip16-ckpt"), projection_dim=40, image_size=112, patch_size=16,
        hidden=32, layers=2, heads=2, seed=4,
    )  # fmt: skip
    return Exported(ckpt, _export(str(ckpt), tmp_path_factory.mktemp("clip16") / "model"))


@pytest.fixture(scope="session")
def sensitive_clip(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    ckpt = make_sensitive_clip(tmp_path_factory.mktemp("sensitive-ckpt"), image_size=32)
    return Exported(ckpt, _export(str(ckpt), tmp_path_factory.mktemp("sensitive") / "model"))
