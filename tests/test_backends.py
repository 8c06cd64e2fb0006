"""Every backend runs the exported towers and gives the same embeddings; OpenVINO is optional and
imported only by its own backend."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clipsearch_onnx import backends, cpu
from clipsearch_onnx.encoder import Encoder
from clipsearch_onnx.errors import ModelError
from clipsearch_onnx.manifest import Manifest
from tests.factories import make_images
from tests.fixtures_collection import cli_env, make_distinct_images, run_cli, write_captions

TEXTS = ["a red circle", "two blue squares on a white background", "x"]

needs_openvino = pytest.mark.skipif(
    not backends.installed("openvino"), reason="the openvino extra is not installed"
)


def _embeddings(model: Path, precision: str, backend: str, images) -> tuple[np.ndarray, ...]:
    encoder = Encoder(Manifest.load(model), precision, 1, backend=backend)
    return encoder.embed_texts(TEXTS), encoder.embed_pixels(encoder.preprocess(images))


@needs_openvino
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_openvino_gives_the_embeddings_onnxruntime_gives(exported_model, tmp_path, precision):
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in make_images(tmp_path, 4, seed=3)]
    ort_text, ort_image = _embeddings(exported_model, precision, "onnxruntime", images)
    ov_text, ov_image = _embeddings(exported_model, precision, "openvino", images)
    # same graph, two runtimes: fp32 agrees to rounding; int8 to the kernels' rounding of the
    # same static scales (dynamic int8 would also see the batch's own range)
    limit = 0.99999 if precision == "fp32" else 0.999
    assert (ort_text * ov_text).sum(axis=1).min() >= limit
    assert (ort_image * ov_image).sum(axis=1).min() >= limit


def _auto_vision() -> str:
    """What auto should pick for the image tower on this machine."""
    fast = cpu.has_int8_dot() and backends.installed("openvino")
    return "openvino" if fast else "onnxruntime"


def test_auto_runs_images_on_openvino_where_the_cpu_has_int8_dot_products(exported_model):
    encoder = Encoder(Manifest.load(exported_model), "int8")
    assert encoder.backend_of("vision") == _auto_vision()
    assert encoder.backend_of("text") == "onnxruntime"


@pytest.mark.parametrize("flags", [{"avx2", "fma"}, {"avx2", "avx512_vnni"}, {"amx_int8"}])
def test_auto_depends_on_the_cpu_features(monkeypatch, flags):
    monkeypatch.setattr(cpu, "flags", lambda: frozenset(flags))
    onnx = Path("vision.int8.onnx")
    want = "openvino" if flags & cpu.INT8_DOT and backends.installed("openvino") else "onnxruntime"
    assert backends.choose("auto", "vision", onnx, backends.BACKENDS) == want
    # a model the export did not check on OpenVINO stays on ONNX Runtime
    assert backends.choose("auto", "vision", onnx, ("onnxruntime",)) == "onnxruntime"
    assert backends.choose("auto", "text", Path("text.int8.onnx")) == "onnxruntime"
    assert backends.choose("onnxruntime", "vision", onnx) == "onnxruntime"


@needs_openvino
def test_auto_keeps_a_model_not_checked_on_openvino_on_onnxruntime(
    exported_model, tmp_path, monkeypatch
):
    monkeypatch.setattr(cpu, "flags", lambda: frozenset({"avx2", "amx_int8"}))
    assert Encoder(Manifest.load(exported_model), "int8").backend_of("vision") == "openvino"
    model = tmp_path / "model"
    shutil.copytree(exported_model, model)
    data = json.loads((model / "manifest.json").read_text())
    del data["fidelity"]["openvino"], data["backends"]  # as exported without OpenVINO
    (model / "manifest.json").write_text(json.dumps(data))
    assert Encoder(Manifest.load(model), "int8").backend_of("vision") == "onnxruntime"


@needs_openvino
def test_openvino_runs_its_own_gated_int8_image_tower(exported_model):
    manifest = Manifest.load(exported_model)
    own = manifest.tower_path("vision", "int8", "openvino")
    assert own.name == "vision.int8.openvino.onnx"
    assert manifest.tower_path("vision", "int8", "onnxruntime").name == "vision.int8.onnx"
    assert manifest.tower_path("text", "int8", "openvino").name == "text.int8.onnx"
    quant = manifest.raw["quantization"]["backends"]["openvino"]["vision"]
    assert quant["activation_type"] == "QInt8" and quant["activation_symmetric"]
    assert manifest.raw["fidelity"]["openvino"]["vision"]["int8"]["min"] >= 0.98


def test_onnxruntime_refuses_openvino_ir(tmp_path):
    ir = tmp_path / "vision.int8.xml"
    assert backends.choose("auto", "vision", ir) == "openvino"
    with pytest.raises(ModelError, match="OpenVINO IR"):
        backends.choose("onnxruntime", "vision", ir)
    with pytest.raises(ModelError, match="backend must be one of"):
        backends.choose("tensorrt", "vision", ir)


PROBE = """
import json, sys
from clipsearch_onnx.encoder import Encoder
from clipsearch_onnx.manifest import Manifest
encoder = Encoder(Manifest.load(sys.argv[1]), "int8", 1)
encoder.embed_texts(["a cat"])
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_onnxruntime_backend_does_not_import_openvino(exported_model):
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(exported_model)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    loaded = set(json.loads(out))
    assert "onnxruntime" in loaded
    assert "openvino" not in loaded


def _eval(model: Path, folder: Path, *extra: str) -> dict:
    proc = run_cli(
        "eval", "--images", folder / "Images", "--captions", folder / "captions.txt",
        "--model", model, "--precision", "int8", "--json", "-q", *extra, home=folder,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["int8"]


@needs_openvino
def test_eval_reports_the_backend_and_openvino_scores_alike(exported_model, tmp_path):
    names = [f"pic_{i}.jpg" for i in range(8)]
    make_distinct_images(tmp_path / "Images", names, seed=9)
    write_captions(
        tmp_path / "captions.txt", {n: [f"{TEXTS[i % 3]} #{i}"] for i, n in enumerate(names)}
    )
    auto = _eval(exported_model, tmp_path)
    ort = _eval(exported_model, tmp_path, "--backend", "onnxruntime")
    forced = _eval(exported_model, tmp_path, "--backend", "openvino")
    assert auto["backend"] == {"vision": _auto_vision(), "text": "onnxruntime"}
    assert ort["backend"] == {"vision": "onnxruntime", "text": "onnxruntime"}
    assert forced["backend"] == {"vision": "openvino", "text": "openvino"}
    for way in ("t2i", "i2t"):
        for k in ("R@1", "R@5"):
            assert forced[way][k] == pytest.approx(ort[way][k], abs=100 / len(names) + 0.01)


def test_an_unknown_backend_is_one_line_and_exit_2(exported_model, tmp_path):
    env = {**cli_env(tmp_path), "CLIPSEARCH_BACKEND": "tensorrt"}
    proc = run_cli("embed", "--text", "a cat", "--model", exported_model, home=tmp_path, env=env)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "CLIPSEARCH_BACKEND" in proc.stderr, proc.stderr


@needs_openvino
def test_the_export_gates_every_installed_backend(exported_model):
    fidelity = json.loads((exported_model / "manifest.json").read_text())["fidelity"]
    for tower in ("vision", "text"):
        assert fidelity["openvino"][tower]["fp32"]["min"] >= 0.9999
        assert fidelity["openvino"][tower]["int8"]["min"] >= 0.98


@pytest.mark.parametrize("backend", [pytest.param("openvino", marks=needs_openvino), "onnxruntime"])
def test_a_tower_runs_from_several_threads_at_once(exported_model, backend):
    """`clipsearch serve` embeds uploads on several query workers at once: each call gets its
    own input's output (OpenVINO's infer request served one call at a time: "Infer Request is
    busy", a 500 for concurrent uploads)."""
    from concurrent.futures import ThreadPoolExecutor

    encoder = Encoder(Manifest.load(exported_model), "int8", 1, backend=backend)
    size = encoder.manifest.image_size
    rng = np.random.default_rng(5)
    batches = [rng.standard_normal((4, 3, size, size)).astype(np.float32) for _ in range(6)]
    alone = [encoder.embed_pixels(b) for b in batches]
    with ThreadPoolExecutor(6) as pool:
        for _ in range(5):
            together = list(pool.map(encoder.embed_pixels, batches))
            for got, want in zip(together, alone, strict=True):
                np.testing.assert_allclose(got, want, atol=1e-5)


@needs_openvino
def test_a_backend_file_below_the_gate_is_left_out_and_the_usual_one_runs(
    export_checkpoint, tmp_path, monkeypatch
):
    """OpenVINO's own int8 image tower (symmetric s8 activations, Conv quantised) is only a
    speed-up: when it misses the gate (seen on a deeper sensitive CLIP, 6x96 std 0.2, patch 16:
    0.972 where vision.int8.onnx gave 0.991 on OpenVINO) the export ships without it instead of
    failing. Forced here by calibrating that file alone on near-black pictures."""
    from export import quantize
    from export.__main__ import main

    real = quantize.quantize

    def quantize_own_file_badly(src, dst, settings, **kw):
        if Path(dst).name == "vision.int8.openvino.onnx":
            kw["calibration"] = [
                {"pixel_values": f["pixel_values"] * 0.01} for f in kw["calibration"]
            ]
        return real(src, dst, settings, **kw)

    monkeypatch.setattr(quantize, "quantize", quantize_own_file_badly)
    out = tmp_path / "model"
    assert main(["--model", str(export_checkpoint), "--out", str(out)]) == 0
    raw = json.loads((out / "manifest.json").read_text())
    [rejected] = raw["fidelity"]["rejected"]
    assert (rejected["backend"], rejected["file"]) == ("openvino", "vision.int8.openvino.onnx")
    assert rejected["min"] < 0.98
    assert not list(out.glob("vision.int8.openvino.onnx*"))
    assert raw["backends"] == {} and raw["quantization"]["backends"] == {}
    assert raw["fidelity"]["openvino"]["vision"]["int8"]["min"] >= 0.98  # the usual file on it
    manifest = Manifest.load(out)
    assert manifest.tower_name("vision", "int8", "openvino") == "vision.int8.onnx"
    image = make_images(tmp_path / "img", 1, seed=5)[0]
    proc = run_cli(
        "embed", "--model", out, "--backend", "openvino", "--image", image, home=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
