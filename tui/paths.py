"""How file paths and captions are fitted on screen: the home folder as `~`, and when space is
short the directory is shortened, never the file name. The rules live in the core
(`clipsearch_onnx.cells`), shared with the CLI's result table."""

from __future__ import annotations

from clipsearch_onnx.cells import ELLIPSIS, display_path, fit_end, fit_middle, fit_path

__all__ = ["ELLIPSIS", "display_path", "fit_end", "fit_middle", "fit_path"]
