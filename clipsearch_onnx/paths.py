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


def cache_dir() -> Path:
    """Disposable files (thumbnails): `$CLIPSEARCH_HOME/cache` if that is set, else
    `$XDG_CACHE_HOME/clipsearch` (`~/.cache/clipsearch`)."""
    if os.environ.get("CLIPSEARCH_HOME"):
        return home() / "cache"
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(xdg).expanduser() / "clipsearch"


def runtime_dir(*, fallback: bool = False) -> Path:
    """Sockets of running servers: `$XDG_RUNTIME_DIR/clipsearch`, else (or with `fallback`)
    `/tmp/clipsearch-UID`. Whoever creates it makes it private (0700)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg) and not fallback:
        return Path(xdg) / "clipsearch"
    return Path("/tmp") / f"clipsearch-{os.getuid()}"
