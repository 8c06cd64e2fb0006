"""Where models, indexes and the config file live by default.

Everything sits under one home folder: `$CLIPSEARCH_HOME` if set, else `$XDG_DATA_HOME/clipsearch`
(`~/.local/share/clipsearch`). Command-line flags and `CLIPSEARCH_*` variables override each path.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    env = os.environ.get("CLIPSEARCH_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or "~/.local/share"
    return Path(xdg).expanduser() / "clipsearch"


def default_model_dir() -> Path:
    return home() / "models" / "clip-vit-b32"


def default_index_dir() -> Path:
    return home() / "index"


def config_file() -> Path:
    return home() / "config.toml"
