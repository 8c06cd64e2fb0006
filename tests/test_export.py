"""`python -m export`: a tiny CLIP checkpoint becomes a verified model folder, or a clear failure."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipsearch_onnx import backends
from clipsearch_onnx.manifest import Manifest
from export.__main__ import main
from tests.factories import make_images
from tests.fixtures_export import EXPORT_DIM, EXPORT_IMAGE_SIZE

REPO = Path(__file__).resolve().parents[1]
MANIFEST_KEYS = {
    "format", "source", "embedding_dim", "image_size", "resize_shortest_edge", "image_mean",
    "image_std", "context_length", "tokenizer", "opset", "files", "precisions",
    "default_precision", "quantization", "fidelity", "tools", "created", "family", "preprocess",
    "text_inputs", "scores", "backends",
}  # fmt: skip
MODEL_FILES = {
    "vision.onnx", "text.onnx", "vision.int8.onnx", "text.int8.onnx", "tokenizer.json",
    "preprocessor_config.json", "vision.onnx.data", "text.onnx.data", "vision.int8.onnx.data",
    "text.int8.onnx.data",
} | (  # OpenVINO's own int8 image tower, written when OpenVINO is there to gate it
    {"vision.int8.openvino.onnx", "vision.int8.openvino.onnx.data"}
    if backends.installed("openvino")
    else set()
)  # fmt: skip


@pytest.fixture(scope="module")
def torch_clip(export_checkpoint):
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizerFast

    model = CLIPModel.from_pretrained(export_checkpoint).eval()
    return (
        model,
        CLIPTokenizerFast.from_pretrained(export_checkpoint),
        CLIPImageProcessor.from_pretrained(export_checkpoint),
    )


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_model_folder_has_every_file_with_matching_checksums(exported_model):
    data = json.loads((exported_model / "manifest.json").read_text())
    assert set(data) == MANIFEST_KEYS
    assert {p.name for p in exported_model.iterdir() if not p.name.startswith(".")} == (
        MODEL_FILES | {"manifest.json"}
    )
    assert set(data["files"]) == MODEL_FILES
    for name, entry in data["files"].items():
        blob = (exported_model / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}, name
    m = Manifest.load(exported_model)  # the runtime accepts it
    assert (m.embedding_dim, m.image_size, m.context_length) == (EXPORT_DIM, EXPORT_IMAGE_SIZE, 77)
    assert m.tower_path("text", "int8").name == "text.int8.onnx"
    towers = data["quantization"]["towers"]
    assert (towers["vision"]["mode"], towers["text"]["mode"]) == ("static", "dynamic")
    # static activation scales: an image's vector is the same alone and in a batch
    assert data["fidelity"]["vision"]["int8"]["batch_min_cosine"] >= 0.99999
    for tower in ("vision", "text"):
        assert data["fidelity"][tower]["fp32"]["min"] >= 0.9999
    # nothing half-written is left beside the folder
    assert [p.name for p in exported_model.parent.iterdir()] == [exported_model.name]


def test_graphs_match_pytorch_on_other_images_and_captions(exported_model, torch_clip, tmp_path):
    model, tokenizer, processor = torch_clip
    images = [Image.open(p).convert("RGB") for p in make_images(tmp_path, 6, (57, 91), seed=11)]
    pixels = processor(images, return_tensors="np")["pixel_values"].astype(np.float32)
    enc = tokenizer(
        ["a dog on the beach", "two children and a red kite in the wind", "x"],
        padding=True,
        return_tensors="np",
    )
    feed = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        want_img = model.get_image_features(pixel_values=torch.from_numpy(pixels)).numpy()
        want_txt = model.get_text_features(**{k: torch.from_numpy(v) for k, v in feed.items()})
    for precision, limit in (("", 0.9999), (".int8", 0.98)):
        (img,) = _session(exported_model / f"vision{precision}.onnx").run(
            ["image_embeds"], {"pixel_values": pixels}
        )
        (txt,) = _session(exported_model / f"text{precision}.onnx").run(["text_embeds"], feed)
        assert img.shape == (6, EXPORT_DIM) and txt.shape == (3, EXPORT_DIM)
        assert _cosines(img, want_img).min() >= limit, precision
        assert _cosines(txt, want_txt.numpy()).min() >= limit, precision


@pytest.mark.parametrize("batch,length", [(1, 2), (3, 5), (2, 77)])
def test_text_graph_takes_any_batch_and_length(exported_model, torch_clip, batch, length):
    model, tokenizer, _ = torch_clip
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    rng = np.random.default_rng(length)
    ids = np.full((batch, length), eos, dtype=np.int64)  # CLIP pads with eos
    mask = np.zeros_like(ids)
    for row in range(batch):
        n = length if row == 0 else int(rng.integers(2, length + 1))  # row 0 sets L, others pad
        ids[row, 0] = bos
        ids[row, 1 : n - 1] = rng.integers(0, min(bos, eos), size=n - 2)
        mask[row, :n] = 1
    (got,) = _session(exported_model / "text.onnx").run(
        ["text_embeds"], {"input_ids": ids, "attention_mask": mask}
    )
    with torch.no_grad():
        want = model.get_text_features(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
        ).numpy()
    assert got.shape == (batch, EXPORT_DIM)
    assert _cosines(got, want).min() >= 0.9999


def test_legacy_eos_config_keeps_argmax_pooling(tmp_path):
    """Configs with eos_token_id=2 pool at argmax(input_ids); the graph must do the same."""
    from transformers import CLIPConfig, CLIPModel

    from export.convert import export_text

    small = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    cfg = CLIPConfig(
        text_config=dict(small, vocab_size=50, eos_token_id=2, bos_token_id=1, pad_token_id=0),
        vision_config=dict(small, image_size=16, patch_size=8),
        projection_dim=8,
    )
    torch.manual_seed(0)
    model = CLIPModel(cfg).eval()
    model.set_attn_implementation("eager")
    trace = np.array([[1, 5, 6, 7, 2], [1, 5, 2, 0, 0]], dtype=np.int64)
    export_text(model, {"input_ids": trace, "attention_mask": (trace > 0) * 1}, tmp_path / "t.onnx")
    ids = np.array([[1, 7, 49, 3, 2], [1, 2, 30, 2, 2]], dtype=np.int64)  # max id != first "eos"
    mask = np.ones_like(ids)
    (got,) = _session(tmp_path / "t.onnx").run(None, {"input_ids": ids, "attention_mask": mask})
    with torch.no_grad():
        want = model.get_text_features(input_ids=torch.from_numpy(ids)).numpy()
    assert _cosines(got, want).min() >= 0.9999


def test_int8_files_are_smaller(exported_model):
    def size(name: str) -> int:  # the graph and its weights
        return sum(p.stat().st_size for p in exported_model.glob(f"{name}*"))

    for tower in ("vision", "text"):
        assert size(f"{tower}.int8.onnx") < size(f"{tower}.onnx"), tower


def test_failed_verification_exits_nonzero_and_keeps_the_old_folder(
    exported_model, export_checkpoint, tmp_path, capsys
):
    out = tmp_path / "model"
    shutil.copytree(exported_model, out)
    before = (out / "manifest.json").read_bytes()
    code = main(
        ["--model", str(export_checkpoint), "--out", str(out), "--overwrite"]
        + ["--min-int8-cosine", "1.01"]
    )
    err = capsys.readouterr().err
    assert code == 4
    assert "drifts from PyTorch" in err and "--min-int8-cosine" in err
    assert "Traceback" not in err
    assert (out / "manifest.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no partial folder left


def test_refuses_to_overwrite_without_flag(exported_model, export_checkpoint, capsys):
    code = main(["--model", str(export_checkpoint), "--out", str(exported_model)])
    assert code == 1
    assert "--overwrite" in capsys.readouterr().err


def test_tokenizer_json_is_built_when_only_bpe_files_exist(export_checkpoint, tmp_path):
    from tokenizers import Tokenizer

    from export import checkpoint, tokenizer

    src = tmp_path / "ckpt"
    shutil.copytree(export_checkpoint, src, ignore=shutil.ignore_patterns("tokenizer.json"))
    out = tmp_path / "out"
    out.mkdir()
    entry = tokenizer.write(checkpoint.load(str(src)), out)
    shipped = Tokenizer.from_file(str(export_checkpoint / "tokenizer.json"))
    built = Tokenizer.from_file(str(out / "tokenizer.json"))
    text = "A Dog catching a frisbee, in mid-air!"
    assert built.encode(text).ids == shipped.encode(text).ids
    assert entry["kind"] == "clip" and entry["lowercase"]
    assert entry["eos_token_id"] == built.encode(text).ids[-1]


def test_hub_id_offline_fails_with_one_clear_line(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run(
        [sys.executable, "-m", "export", "--model", "openai/clip-vit-base-patch32"]
        + ["--out", str(tmp_path / "m")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "offline" in errors[0] and "--model DIR" in errors[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "m").exists()


def test_hub_id_downloads_only_needed_files_at_a_pinned_commit(
    export_checkpoint, tmp_path, monkeypatch
):
    """The network is the one edge faked here: model_info and snapshot_download."""
    import huggingface_hub

    from export import checkpoint

    sha = "0123456789abcdef0123456789abcdef01234567"
    files = ["config.json", "model.safetensors", "pytorch_model.bin", "flax_model.msgpack"]
    calls = []

    class Info:
        def __init__(self):
            self.sha = sha
            self.siblings = [type("Sibling", (), {"rfilename": f})() for f in files]

    def fake_snapshot_download(repo_id, revision, allow_patterns, **kwargs):
        calls.append((repo_id, revision, allow_patterns, kwargs))
        target = tmp_path / "snapshots" / revision
        shutil.copytree(export_checkpoint, target)
        return str(target)

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda self, repo, revision: Info())
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    folder, revision = checkpoint.resolve("someone/tiny-clip", "main")
    assert revision == sha and folder == tmp_path / "snapshots" / sha
    [(repo_id, pinned, patterns, kwargs)] = calls
    assert (repo_id, pinned) == ("someone/tiny-clip", sha)
    assert "model.safetensors" in patterns and "pytorch_model.bin" not in patterns
    assert not kwargs.get("local_files_only")
