"""One export, start to finish: checkpoint -> ONNX -> int8 -> verified model folder.

Everything is written into a hidden `.<name>.partial-<pid>` folder beside the destination, the
manifest last, and the folder is renamed into place only after verification passed: a failed or
interrupted export never leaves something that looks like a complete model folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from export import (
    batch_check,
    calibration,
    checkpoint,
    convert,
    layout,
    manifest,
    quantize,
    tokenizer,
    verify,
)
from export.errors import ExportError
from export.progress import say, step

STUDY_FILE = Path(__file__).with_name("quant_study.json")
PREPROCESSOR = "preprocessor_config.json"


def export_model(
    source: str,
    out: Path,
    *,
    revision: str | None = None,
    settings: dict[str, quantize.QuantSettings] = quantize.DEFAULTS,  # noqa: B006 - read only
    backend_settings: dict[str, dict[str, quantize.QuantSettings]] | None = None,
    calibration_dir: Path | None = None,
    thresholds: verify.Thresholds = verify.Thresholds(),  # noqa: B008 - frozen dataclass
    opset: int = convert.OPSET,
    overwrite: bool = False,
    keep_failed: bool = False,
) -> dict:
    """Export `source` (hub id or folder) into the model folder `out`; return its manifest.

    `settings` holds the int8 settings per tower; static ones are calibrated on the pictures in
    `calibration_dir`, else on generated samples (export/calibration.py). `backend_settings`
    ({backend: {tower: settings}}, default `quantize.BACKEND_DEFAULTS` with the default
    `settings`, else none) adds int8 files one backend runs instead (the manifest's "backends"),
    for the backends installed here: every file shipped passes the fidelity gate on its backend."""
    if backend_settings is None:
        backend_settings = quantize.BACKEND_DEFAULTS if settings == quantize.DEFAULTS else {}
    backend_settings = {
        b: towers for b, towers in backend_settings.items() if b in verify.backends_to_check()
    }
    out = Path(out).expanduser().absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ExportError(f"{out} exists and is not empty; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    ok = False
    try:
        result = _export_into(
            work, source, revision, settings, backend_settings, calibration_dir, thresholds, opset
        )
        _replace(work, out)
        ok = True
        return result
    finally:
        if not ok:
            if keep_failed:
                say(f"partial output kept in {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)


def _export_into(
    work, source, revision, settings, backend_settings, calibration_dir, thresholds, opset
) -> dict:
    with step(f"loading {source}"):
        ckpt = checkpoint.load(source, revision)
    cfg = ckpt.model.config
    say(
        f"{ckpt.family}: D={ckpt.embedding_dim} S={ckpt.image_size} "
        f"vision {cfg.vision_config.num_hidden_layers}x{cfg.vision_config.hidden_size}, "
        f"text {cfg.text_config.num_hidden_layers}x{cfg.text_config.hidden_size}"
    )
    with step("tokenizer and preprocessing, checked against the checkpoint's own"):
        tokenizer_entry = tokenizer.write(ckpt, work)
        shutil.copyfile(ckpt.directory / PREPROCESSOR, work / PREPROCESSOR)
        verify.check_preprocessing(ckpt, ckpt.preprocess)
    fp32, int8 = manifest.PRECISIONS["fp32"], manifest.PRECISIONS["int8"]
    with step(f"vision tower -> ONNX (opset {opset})"):
        convert.export_vision(ckpt.model, ckpt.image_size, work / fp32["vision"], opset)
    with step(f"text tower -> ONNX (opset {opset})"):
        feed = verify.text_feeds(ckpt, ["a dog running on the beach", "a cat"])
        convert.export_text(ckpt.model, feed, work / fp32["text"], opset)
    every = [s for towers in (settings, *backend_settings.values()) for s in towers.values()]
    calib = (
        calibration.load(ckpt, calibration_dir) if any(s.mode == "static" for s in every) else None
    )
    subs = {"vision": cfg.vision_config, "text": cfg.text_config}
    jobs = [(tower, int8[tower], settings[tower], "") for tower in ("vision", "text")]
    backend_files = {b: {"int8": {}} for b in backend_settings}
    for backend, towers in backend_settings.items():
        for tower, own in towers.items():
            name = manifest.BACKEND_FILES[backend]["int8"][tower]
            backend_files[backend]["int8"][tower] = name
            jobs.append((tower, name, own, f" for {backend}"))
    for tower, name, tower_settings, why in jobs:
        with step(f"{tower} tower -> int8{why} ({tower_settings.label()})"):
            quantize.quantize(
                work / fp32[tower],
                work / name,
                tower_settings,
                num_heads=subs[tower].num_attention_heads,
                hidden_size=subs[tower].hidden_size,
                calibration=_calibration_feeds(tower, tower_settings, calib),
            )
    for tower in ("vision", "text"):
        small, big = (work / int8[tower]).stat().st_size, (work / fp32[tower]).stat().st_size
        say(f"{tower}: fp32 {big / 1e6:.1f} MB, int8 {small / 1e6:.1f} MB")
    with step("laying the graphs out for fast loading (page-aligned weight files)"):
        for towers in [*manifest.PRECISIONS.values(), *_own_files(backend_files)]:
            for tower, name in towers.items():
                layout.lay_out(work / name, optimise=tower == "text")
    with step("verifying against PyTorch"):
        fidelity = verify.check(work, ckpt, manifest.PRECISIONS, thresholds, backend_files)
    for miss in fidelity.get("rejected", []):
        _drop_backend_file(work, backend_files, backend_settings, miss, fidelity)
    for tower in ("vision", "text"):
        f, q = fidelity[tower]["fp32"], fidelity[tower]["int8"]
        say(
            f"{tower} cosine vs PyTorch: fp32 min {f['min']:.6f}, "
            f"int8 min {q['min']:.4f} mean {q['mean']:.4f}"
        )
    for backend in verify.backends_to_check()[1:]:
        other = fidelity[backend]
        say(
            f"on {backend}: "
            + ", ".join(f"{t} {p} min {other[t][p]['min']:.4f}" for t in other for p in other[t])
        )
    pixels = verify.sample_inputs(ckpt, images=8, seed=2).pixel_values
    fidelity["vision"]["int8"]["batch_min_cosine"] = batch_check.alone_vs_batched(
        work / int8["vision"], pixels
    )
    say(
        "vision int8: cosine of an image's vector alone vs in a batch of "
        f"{batch_check.GROUP}: min {fidelity['vision']['int8']['batch_min_cosine']:.6f}"
    )
    data = manifest.build(
        ckpt,
        work,
        opset=opset,
        tokenizer_entry=tokenizer_entry,
        quantization=_quantization_entry(settings, backend_settings, calib),
        fidelity=fidelity,
        backends=backend_files,
    )
    manifest.write(work, data)
    return data


def _calibration_feeds(tower, settings, calib) -> list[dict] | None:
    if settings.mode != "static":
        return None
    if tower != "vision" or calib is None:
        raise ExportError(f"static int8 is calibrated for the vision tower only, not {tower}")
    return calib.feeds


def _drop_backend_file(
    work: Path, backend_files: dict, backend_settings: dict, miss: dict, fidelity: dict
) -> None:
    """Leave out a backend's own file that missed the fidelity gate (verify.check measured the
    usual file on that backend instead): that backend then runs the usual file."""
    backend, precision, tower, name = (miss[k] for k in ("backend", "precision", "tower", "file"))
    for path in work.iterdir():
        if path.name == name or path.name.startswith(name + "."):  # and its weights (NAME.data)
            path.unlink()
    towers = backend_files[backend][precision]
    del towers[tower]
    if not towers:
        del backend_files[backend][precision]
    if not backend_files[backend]:
        del backend_files[backend]
    if precision == "int8":
        backend_settings[backend] = {
            t: s for t, s in backend_settings.get(backend, {}).items() if t != tower
        }
        if not backend_settings[backend]:
            del backend_settings[backend]
    usual = manifest.PRECISIONS[precision][tower]
    runs = fidelity[backend][tower][precision]["min"]
    say(
        f"{name}: min cosine {miss['min']:.4f} < {miss['limit']} on {backend}, not shipped; "
        f"{backend} runs {usual} instead (min {runs:.4f})"
    )


def _own_files(backend_files: dict) -> list[dict[str, str]]:
    return [towers for precisions in backend_files.values() for towers in precisions.values()]


def _quantization_entry(settings, backend_settings, calib) -> dict:
    defaults = settings == quantize.DEFAULTS
    entry: dict = {
        "tool": "onnxruntime.quantization",
        "label": "; ".join(f"{t}: {s.label()}" for t, s in settings.items()),
        "towers": {t: s.to_dict() for t, s in settings.items()},
        "backends": {
            b: {t: s.to_dict() for t, s in towers.items()} for b, towers in backend_settings.items()
        },
        "calibration": calib.source if calib else None,
        "is_default": defaults,
        "reason": f"{quantize.WHY_VISION} {quantize.WHY_DEFAULT}"
        if defaults
        else "non-default settings passed to export_model",
    }
    try:
        entry["study"] = json.loads(STUDY_FILE.read_text())
    except (OSError, ValueError):
        entry["study"] = None
    return entry


def _replace(work: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    work.rename(out)
    if old is not None and old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    elif old is not None:
        old.unlink()
