"""Reading `search --queries FILE|-`: a text per line, or a JSON object per line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from clipsearch_onnx.errors import InputError


def read_queries(source: str) -> list[dict[str, Any]]:
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            text = Path(source).expanduser().read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"query file {source} does not exist") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"query file {source} is not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise InputError(f"cannot read query file {source}: {exc.strerror}") from exc
    queries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                query = json.loads(line)
            except ValueError as exc:
                raise InputError(f"query file {source}, line {number}: bad JSON ({exc})") from exc
            if not isinstance(query, dict) or not ({"text", "image"} & query.keys()):
                raise InputError(
                    f'query file {source}, line {number}: expected {{"text": ...}} and/or '
                    '{"image": ...}'
                )
            queries.append(query)
        else:
            queries.append({"text": line})
    return queries
