"""How `search` writes its results: a table that fits the terminal (with thumbnails under each
row with --preview), the paths alone (--paths, -0), or JSON (--json, --jsonl).

Everything here works from the search's JSON (`Response.to_json()`), whether the answer came from
this process or from a running `clipsearch serve`. On a terminal (or with COLUMNS set) the table
has a header and fits the width: paths are shortened (home as `~`, the start of the directory cut
first, the file name kept). In a pipe it is one row per result with whole paths, as before.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Any, TextIO

from clipsearch_onnx import cells
from clipsearch_onnx.cli.output import print_json

RANK, SCORE, GAP = 3, 6, 2  # column widths in cells
CAPTION_MAX = 60  # without a terminal to fit (a pipe), captions are cut here
CAPTION_MIN = 8  # narrower than this, the caption column is left out
PREVIEW_ROWS = 8  # a thumbnail's height in cells
PREVIEW_INDENT = RANK + GAP


def write_response(
    data: dict[str, Any],
    args: argparse.Namespace,
    out: TextIO | None = None,
    columns: int | None = None,
) -> None:
    """Writes a search's JSON as the arguments ask, on `out` (stdout). `columns` is the width of
    the terminal the table is for (`table_width()` for this process's; None: not a terminal).
    `clipsearch serve` calls this for a search it answers in a client's place (issue 15)."""
    out = out or sys.stdout
    results = data["results"]
    if args.json:
        print_json(data, out)
    elif args.jsonl:
        for result in results:
            print_json(result, out)
    elif args.paths or args.null:
        end = "\0" if args.null else "\n"
        out.write("".join(r["path"] + end for r in results))
    else:
        _write_table(data, columns, getattr(args, "preview", None), out)


def table_width() -> int | None:
    """The terminal's width when stdout is one (or COLUMNS says it), else None: no limit."""
    if "COLUMNS" in os.environ or sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def format_table(data: dict[str, Any], width: int | None = None) -> str:
    """The result table in at most `width` cells a line, with a header; None: rows alone, with
    whole paths."""
    return "".join(line + "\n" for line, _ in _rows(data, width))


def _rows(data: dict[str, Any], width: int | None) -> list[tuple[str, dict[str, Any] | None]]:
    """(line, the result it shows or None for the header)."""
    results = data["results"]
    if not results:
        cut = data.get("cut") or {}
        if cut.get("before"):
            why = (
                f"none of the top {cut['before']} passes {_cut_flags(cut)}: nothing in the "
                "index matches the query well enough"
            )
        elif data.get("query", {}).get("filter"):
            why = "no image passes the filters"
        else:
            why = "the index is empty"
        return [(f"no results ({why})", None)]
    captions = [" ".join(r["captions"][0].split()) if r["captions"] else "" for r in results]
    notes = [_note(r) for r in results]  # kept whole after the path, like the file name
    paths = [r["path"] + note for r, note in zip(results, notes, strict=True)]
    caption_w, path_w = _column_widths(captions, paths, width)

    def line(rank: str, score: str, caption: str, path: str, note: str = "") -> str:
        parts = [f"{rank:>{RANK}}", f"{score:>{SCORE}}"]
        if caption_w:
            parts.append(cells.pad(cells.fit_end(caption, caption_w), caption_w))
        room = None if path_w is None else max(1, path_w - cells.width(note))
        parts.append((path if room is None else cells.fit_path(path, room)) + note)
        return (" " * GAP).join(parts).rstrip()

    rows: list[tuple[str, dict[str, Any] | None]] = []
    if width is not None:
        rows.append((line("#", "score", "caption", "path"), None))
    for r, caption, note in zip(results, captions, notes, strict=True):
        rank, score = str(r["rank"]), f"{r['score']:.3f}"
        rows.append((line(rank, score, caption, r["path"], note), r))
    return rows


def _note(result: dict[str, Any]) -> str:
    """After the path: the photo's date (search --sort date) and the copies --collapse hid."""
    notes = []
    if result.get("date"):
        notes.append(result["date"].replace("T", " "))
    if result.get("copies"):
        notes.append(f"+{result['copies']} cop{'y' if result['copies'] == 1 else 'ies'}")
    return f"  ({', '.join(notes)})" if notes else ""


def _cut_flags(cut: dict[str, Any]) -> str:
    flags = [f"--min-score {cut['min_score']:g}"] if "min_score" in cut else []
    flags += [f"--min-prob {cut['min_prob']:g}"] if "min_prob" in cut else []
    flags += ["--cutoff auto"] if "auto" in cut else []
    return " and ".join(flags)


def _column_widths(
    captions: list[str], paths: list[str], width: int | None
) -> tuple[int, int | None]:
    """Caption and path column widths: file names whole first, then the caption, then the
    directories. A path width of None means whole paths (no terminal to fit)."""
    caption_need = max(cells.width(c) for c in captions)
    if width is None:
        return min(CAPTION_MAX, caption_need), None
    shown = [cells.display_path(p) for p in paths]
    path_need = max(cells.width(p) for p in shown)
    name_need = max(cells.width(os.path.basename(p)) for p in shown) + 1  # + the ellipsis
    room = max(1, width - RANK - SCORE - 2 * GAP)
    path_min = min(path_need, max(name_need, room // 2))
    caption_w = min(caption_need, room - GAP - path_min)
    if caption_w < CAPTION_MIN:
        caption_w = 0
    path_w = min(path_need, room - (caption_w + GAP if caption_w else 0))
    return caption_w, max(1, path_w)


def _write_table(data: dict[str, Any], width: int | None, preview: str | None, out: TextIO) -> None:
    mode = None
    if preview:
        from clipsearch_onnx import termgraphics  # Pillow: only for pictures

        mode = termgraphics.choose(preview, out.isatty())
    if mode is None:
        out.write(format_table(data, width))
        return
    cell = termgraphics.cell_pixels(out)
    max_cols = (width or 80) - PREVIEW_INDENT
    for text, result in _rows(data, width):
        out.write(text + "\n")
        if result is not None:
            out.write(_thumbnail(result["path"], mode, max_cols, cell) + "\n")
        out.flush()


def _thumbnail(path: str, mode: str, max_cols: int, cell: tuple[int, int]) -> str:
    from clipsearch_onnx import termgraphics
    from clipsearch_onnx.errors import ClipSearchError

    indent = " " * PREVIEW_INDENT
    try:
        img = termgraphics.thumbnail(path)
    except (ClipSearchError, OSError) as exc:
        return f"{indent}(cannot show the picture: {exc})"
    cols, rows = termgraphics.cell_grid(img.size, max(1, max_cols), PREVIEW_ROWS)
    drawn = termgraphics.render(mode, img, cols, rows, cell)
    return "\n".join(indent + line for line in drawn.split("\n"))
