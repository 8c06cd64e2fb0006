"""All tunable settings in one typed object.

Precedence: command-line flag > environment (`CLIPSEARCH_*`) > config file (`config.toml` in the
clipsearch home, see `paths`) > default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from clipsearch_onnx import paths
from clipsearch_onnx.errors import ClipSearchError


@dataclass(frozen=True)
class Settings:
    model_dir: Path | None = None
    """Exported model folder (manifest.json, *.onnx). None: the one recorded in the index, else
    the default under the clipsearch home."""
    index_dir: Path | None = None
    """Index folder. None: `index` under the clipsearch home."""
    precision: str | None = None
    """'int8' or 'fp32'. None: the index's precision for queries, the model's default to build."""
    threads: int | None = None
    """ONNX Runtime intra-op threads. None: all physical cores."""
    batch_size: int = 32
    """Images per inference batch; also the commit unit when indexing."""

    def resolved_index_dir(self) -> Path:
        return (self.index_dir or paths.default_index_dir()).absolute()


_ENV = {
    "model_dir": ("CLIPSEARCH_MODEL", Path),
    "index_dir": ("CLIPSEARCH_INDEX", Path),
    "precision": ("CLIPSEARCH_PRECISION", str),
    "threads": ("CLIPSEARCH_THREADS", int),
    "batch_size": ("CLIPSEARCH_BATCH_SIZE", int),
}


def load_settings(overrides: dict[str, Any] | None = None, config: Path | None = None) -> Settings:
    """Settings from defaults, then the config file, then the environment, then `overrides`
    (command-line flags; None values are ignored)."""
    values: dict[str, Any] = {}
    config = config or paths.config_file()
    if config.is_file():
        import tomllib  # only with a config file: with datetime, ~3 ms of a one-shot search

        try:
            data = tomllib.loads(config.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ClipSearchError(f"cannot read config file {config}: {exc}") from exc
        known = {f.name for f in fields(Settings)}
        for key, value in data.items():
            if key not in known:
                raise ClipSearchError(f"config file {config}: unknown setting {key!r}")
            values[key] = value
    for name, (var, kind) in _ENV.items():
        raw = os.environ.get(var)
        if raw:
            try:
                values[name] = kind(raw)
            except ValueError as exc:
                raise ClipSearchError(f"environment variable {var}={raw!r}: {exc}") from exc
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    for name in ("model_dir", "index_dir"):
        if values.get(name) is not None:
            values[name] = Path(values[name]).expanduser()
    if values.get("precision") not in (None, "int8", "fp32"):
        raise ClipSearchError(f"precision must be int8 or fp32, not {values['precision']!r}")
    return replace(Settings(), **values)
