"""`search --queries FILE|-`: a text per line, or a JSON object per line; every good line is
answered, in order, and each bad one gets `{"line": N, "error": "..."}` in its place.

A line that cannot be used (bad JSON, an empty object, a bad `k`, a missing or unreadable image)
fails alone; only a file that cannot be read at all, or a broken index or model, ends the run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from clipsearch_onnx.cli.output import print_json
from clipsearch_onnx.errors import ExitCode, InputError

if TYPE_CHECKING:
    from clipsearch_onnx.filters import Filter
    from clipsearch_onnx.relevance import Cut
    from clipsearch_onnx.search import Searcher

KEYS = ("text", "image", "k")  # what a JSON line may hold


class QueryLine(NamedTuple):
    line: int  # 1-based line number in the file
    query: dict[str, Any]  # text and/or image, maybe k
    error: str | None = None  # why the line cannot be used


def read_queries(source: str) -> list[QueryLine]:
    """The non-blank lines of `source` ("-": stdin), each parsed or with the reason it can't be."""
    try:
        if source == "-":
            text = sys.stdin.buffer.read().decode("utf-8")
        else:
            text = Path(source).expanduser().read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"query file {source} does not exist") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"query file {source} is not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise InputError(f"cannot read query file {source}: {exc.strerror}") from exc
    return [
        _parse(number, line.strip())
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip()
    ]


def _parse(number: int, line: str) -> QueryLine:
    if not line.startswith("{"):
        return QueryLine(number, {"text": line})
    try:
        query = json.loads(line)
    except ValueError as exc:
        return QueryLine(number, {}, error=f"bad JSON ({exc})")
    if not isinstance(query, dict):
        return QueryLine(number, {}, error="expected a JSON object")
    unknown = sorted(set(query) - set(KEYS))
    if unknown:
        return QueryLine(number, {}, error=f"unknown key {unknown[0]!r} (valid: {', '.join(KEYS)})")
    for key in ("text", "image"):
        if query.get(key) is not None and not isinstance(query[key], str):
            return QueryLine(number, {}, error=f"{key!r} must be a string")
    if not (query.get("text") or "").strip() and not query.get("image"):
        return QueryLine(number, {}, error='expected {"text": ...} and/or {"image": ...}')
    k = query.get("k")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        return QueryLine(number, {}, error=f"'k' must be a whole number of at least 1, not {k!r}")
    return QueryLine(number, query)


def answer_queries(
    searcher: Searcher,
    lines: list[QueryLine],
    k: int,
    where: Filter | None = None,
    cut: Cut | None = None,
    exclude_query: bool = False,
) -> int:
    """One JSON line per query line, in order (`line` names it; a text in the query syntax);
    ExitCode.PARTIAL if any failed, with one summary line on stderr. `where` (the filters),
    `cut` and `exclude_query` are the same for every line."""
    failed = []
    for q in lines:
        error = q.error
        if error is None:
            try:
                response = searcher.search(
                    q.query.get("text"),
                    q.query.get("image"),
                    q.query.get("k") or k,
                    where=where,
                    cut=cut,
                    exclude_query=exclude_query,
                )
            except InputError as exc:  # this query's image, text or k: the others go on
                error = str(exc)
            else:
                print_json({"line": q.line, **response.to_json()})
        if error is not None:
            failed.append(q.line)
            print_json({"line": q.line, "error": error})
        sys.stdout.flush()
    if not failed:
        return ExitCode.OK
    shown = ", ".join(map(str, failed[:10])) + (", ..." if len(failed) > 10 else "")
    print(
        f"clipsearch: {len(failed)} of {len(lines)} queries failed (line {shown}); "
        'each has an {"line": N, "error": ...} result in the output',
        file=sys.stderr,
    )
    return ExitCode.PARTIAL
