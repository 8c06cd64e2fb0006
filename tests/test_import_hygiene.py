"""The core imports without torch, transformers, optimum or any UI or web library.

Every submodule of clipsearch_onnx is imported (found with pkgutil, so new modules are covered
without touching this test) in a fresh interpreter, then sys.modules is inspected. The command
modules (`cli.*`) are covered too: each defers its heavy imports into `run`. Only `__main__`,
which runs the command line when imported, is exempt.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import clipsearch_onnx

FORBIDDEN = (
    *("torch", "transformers", "optimum", "textual", "rich", "click"),
    *("starlette", "uvicorn", "multipart", "python_multipart", "playwright", "httpx"),
    *("ray", "pyarrow", "pandas"),  # the dist extra: imported by ray_job.run only
)
EXEMPT = {"clipsearch_onnx.__main__"}

PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def core_modules() -> list[str]:
    found = pkgutil.walk_packages(clipsearch_onnx.__path__, prefix="clipsearch_onnx.")
    return ["clipsearch_onnx"] + sorted(m.name for m in found if m.name not in EXEMPT)


def test_core_modules_are_discovered():
    names = core_modules()
    assert {"clipsearch_onnx.tokenizer", "clipsearch_onnx.preprocess"} <= set(names)
    assert not EXEMPT & set(names)


def test_core_imports_no_heavy_or_ui_library():
    names = core_modules()
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *names], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out))
    assert "clipsearch_onnx" in loaded
    assert loaded.isdisjoint(FORBIDDEN), f"imported: {sorted(loaded & set(FORBIDDEN))}"
