"""Captions files in the Flickr8k token format: `name.jpg#k<TAB>caption`, UTF-8.

The CSV layout of some Flickr8k mirrors (`image,caption` header) is read too. A caption names its
image by file name, or by a path relative to the indexed folder; names that would point outside
that folder (absolute, `..`) are refused, so a captions file cannot attach anything elsewhere.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path, PurePosixPath

from clipsearch_onnx.errors import InputError


def _safe_name(name: str) -> str | None:
    name = name.strip().replace("\\", "/")
    if not name or name.startswith("/") or ".." in PurePosixPath(name).parts:
        return None
    return str(PurePosixPath(name))


def parse_captions(text: str) -> tuple[dict[str, list[str]], list[str]]:
    """Captions by image name, plus one warning per line that could not be used."""
    captions: dict[str, list[str]] = defaultdict(list)
    warnings: list[str] = []
    # Lines end at "\n" only: str.splitlines() would also cut at form feeds, U+2028 and the
    # like inside a caption.
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    first = lines[0].strip().lower() if lines else ""
    if first.startswith("image,caption"):
        rows = csv.reader(io.StringIO(text))
        next(rows)
        pairs = ((n, row[0], row[1]) for n, row in enumerate(rows, 2) if len(row) >= 2)
    else:

        def token_pairs():
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                key, tab, caption = line.partition("\t")
                if not tab:
                    warnings.append(f"line {number}: no tab between image name and caption")
                    continue
                yield number, key.rsplit("#", 1)[0] if "#" in key else key, caption

        pairs = token_pairs()
    for number, raw_name, caption in pairs:
        name = _safe_name(raw_name)
        if name is None:
            warnings.append(f"line {number}: image name {raw_name!r} points outside the folder")
            continue
        caption = " ".join(caption.split())
        if caption:
            captions[name].append(caption)
    return dict(captions), warnings


def read_captions(path: Path) -> tuple[dict[str, list[str]], list[str]]:
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"captions file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"captions file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from exc
    except OSError as exc:
        raise InputError(f"cannot read captions file {path}: {exc.strerror}") from exc
    return parse_captions(text)


def captions_for(relpath: str, captions: dict[str, list[str]]) -> list[str]:
    """The captions of the image at `relpath` (relative to the indexed folder): by relative path
    first, else by bare file name."""
    return captions.get(relpath) or captions.get(PurePosixPath(relpath).name, [])
