"""All tunable settings in one typed object, and the one description of where each comes from.

Precedence: command-line flag > environment (`CLIPSEARCH_*`) > config file (`config.toml` in the
clipsearch home, see `paths`) > default. A value that cannot be used, from any of them, is a
`SettingsError` (one line, exit code 2) that names where it came from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

from clipsearch_onnx import paths
from clipsearch_onnx.backends import CHOICES as BACKENDS
from clipsearch_onnx.errors import SettingsError

PRECISIONS = ("int8", "fp32")
DECODINGS = ("fast", "reference")  # pipeline.FAST, pipeline.REFERENCE


class Settings(NamedTuple):  # a NamedTuple, not a dataclass: `dataclasses` costs start-up time
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
    backend: str = "auto"
    """What runs the model: 'onnxruntime', 'openvino' (the openvino extra) or 'auto' (the faster
    one for the graph on this kind of CPU; see clipsearch_onnx/backends)."""
    decoding: str | None = None
    """'fast' (large JPEGs decoded reduced) or 'reference' (exactly the checkpoint's own
    preprocessing), for every command that embeds image files but `eval`. None: each command's
    own (`pipeline.decoding_for`: fast for index and embed-shards, reference for single files)."""

    def resolved_index_dir(self) -> Path:
        return (self.index_dir or paths.default_index_dir()).absolute()


class Key(NamedTuple):
    """One setting: its config.toml key (= the Settings field), variable, flag and meaning."""

    name: str
    env: str
    flag: str
    kind: type
    help: str


KEYS = (
    Key("model_dir", "CLIPSEARCH_MODEL", "--model", Path, "exported model folder"),
    Key("index_dir", "CLIPSEARCH_INDEX", "--index", Path, "index folder"),
    Key("precision", "CLIPSEARCH_PRECISION", "--precision", str, "int8 or fp32"),
    Key(
        "threads",
        "CLIPSEARCH_THREADS",
        "--threads",
        int,
        "inference threads (>= 1; physical cores)",
    ),
    Key("batch_size", "CLIPSEARCH_BATCH_SIZE", "--batch-size", int, "images per batch (>= 1; 32)"),
    Key("backend", "CLIPSEARCH_BACKEND", "--backend", str, "auto, onnxruntime or openvino"),
    Key(
        "decoding",
        "CLIPSEARCH_DECODING",
        "--decoding",
        str,
        "fast or reference (default: per command)",
    ),
)
_BY_NAME = {key.name: key for key in KEYS}


def describe() -> str:
    """The settings table for `--help` (and the README): key, variable, flag, meaning."""
    rows = [f"  {k.name:<11} {k.env:<22} {k.flag:<13} {k.help}" for k in KEYS]
    return (
        "settings: a flag wins over its environment variable, which wins over config.toml in\n"
        "CLIPSEARCH_HOME (default ~/.local/share/clipsearch, which also holds the default model\n"
        "and index folders), which wins over the default:\n"
        f"  {'config key':<11} {'environment variable':<22} {'flag':<13} meaning\n"
        + "\n".join(rows)
        + '\nconfig.toml example:  index_dir = "~/pictures-index"  and  threads = 2\n'
    )


def load_settings(overrides: dict[str, Any] | None = None, config: Path | None = None) -> Settings:
    """Settings from defaults, then the config file, then the environment, then `overrides`
    (command-line flags; None values are ignored)."""
    values: dict[str, Any] = {}
    config = config or paths.config_file()
    if config.is_file():
        for name, value in _read_config(config).items():
            values[name] = _checked(_BY_NAME[name], value, f"config file {config}: {name}")
    for key in KEYS:
        raw = os.environ.get(key.env)
        if raw:
            values[key.name] = _checked(key, raw, f"environment variable {key.env}")
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _checked(_BY_NAME[name], value, _BY_NAME[name].flag)
    return Settings(**values)


def _read_config(config: Path) -> dict[str, Any]:
    import tomllib  # only with a config file: it costs a one-shot search a few ms

    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {config} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read config file {config}: {exc}") from None
    for name in data:
        if name not in _BY_NAME:
            raise SettingsError(f"config file {config}: unknown setting {name!r}{_hint(name)}")
    return data


def _hint(name: str) -> str:
    import difflib

    valid = [k.name for k in KEYS]
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6) or [
        v for v in valid if v.startswith(name) or name.startswith(v.split("_")[0])
    ]
    guess = f"; did you mean {close[0]!r}?" if close else ""
    return f"{guess} (valid: {', '.join(valid)})"


def _checked(key: Key, value: Any, where: str) -> Any:
    """`value` converted to the key's type and checked, or a SettingsError naming `where`."""
    if key.kind is Path:
        if not isinstance(value, str | Path) or not str(value):
            raise SettingsError(f"{where} must be a folder path, not {value!r}")
        return Path(value).expanduser()
    if key.kind is int:
        number = _whole_number(value)
        if number is None or number < 1:
            raise SettingsError(f"{where} must be a whole number of at least 1, not {value!r}")
        return number
    if key.name == "precision" and value not in PRECISIONS:
        raise SettingsError(f"{where} must be {' or '.join(PRECISIONS)}, not {value!r}")
    if key.name == "backend" and value not in BACKENDS:
        raise SettingsError(f"{where} must be one of {', '.join(BACKENDS)}, not {value!r}")
    if key.name == "decoding" and value not in DECODINGS:
        raise SettingsError(f"{where} must be {' or '.join(DECODINGS)}, not {value!r}")
    return value


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None
