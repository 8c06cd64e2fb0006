"""A one-shot `clipsearch search` starts quickly: importing the CLI and the searcher loads none of
the heavy libraries; each is imported by the step that needs it (FAISS when the index opens,
onnxruntime and tokenizers with the text tower, Pillow only for images)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import clipsearch_onnx.cli, clipsearch_onnx.search
from clipsearch_onnx.cli.parser import COMMANDS
clipsearch_onnx.cli.build_parser()
import clipsearch_onnx.settings
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_search_path_imports_no_heavy_library_up_front():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out))
    assert "clipsearch_onnx" in loaded
    assert loaded.isdisjoint({"PIL", "onnxruntime", "faiss", "tokenizers", "ray"}), sorted(loaded)
