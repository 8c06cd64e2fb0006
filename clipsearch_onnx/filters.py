"""Narrowing a search to part of the collection (issue 14): a folder, a file-name pattern, a date
range on the photo's date, a minimum picture size; and how the results are ordered and whether
near-duplicates are shown once.

A `Filter` is a value: `Filter.parse(...)` checks what a user typed (one clear `InputError` per
mistake); `where()` is its SQL condition on the catalog, `select(catalog, f)` the catalog ids it
allows. How a search runs among them is `filtered`'s.

The photo's date is EXIF DateTimeOriginal ('YYYY-MM-DDTHH:MM:SS', local time as the camera
wrote it, recorded by `clipsearch index`), else the file's modification time in local time.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, fields
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import numpy as np

from clipsearch_onnx.errors import InputError

if TYPE_CHECKING:
    from clipsearch_onnx.catalog import Catalog

SORTS = ("score", "date", "path")
COLLAPSE_FETCH = 4  # --collapse picks k groups from the best 4k+8 results
# The photo's date in SQL: EXIF DateTimeOriginal, else the file's mtime in local time (the same
# 'YYYY-MM-DDTHH:MM:SS' form, so that dates compare as strings).
DATE_SQL = (
    "coalesce(taken, strftime('%Y-%m-%dT%H:%M:%S', mtime_ns / 1000000000, 'unixepoch', "
    "'localtime'))"
)
_SIZE = re.compile(r"\s*(\d{1,6})\s*[xX×]\s*(\d{1,6})\s*")
_GLOB_SQL = "clipsearch_glob"


@dataclass(frozen=True)
class Filter:
    """Which images a search may return, and how its results are shown. Build one with `parse`.

    `under`: an absolute folder (as catalogued paths are written); `glob`: a shell pattern on
    the file name, or on the path's end when it holds a `/`; `after`/`before`: the photo's date
    from `after` (included) to `before` (excluded), 'YYYY-MM-DDTHH:MM:SS'; `min_width`/
    `min_height`: the upright picture's pixels at least; `sort`: one of SORTS (score: best
    first; date: oldest first; path: A-Z), applied to the top-k; `collapse`: one result per group
    of near-duplicates (see `dups`)."""

    under: str | None = None
    glob: str | None = None
    after: str | None = None
    before: str | None = None
    min_width: int | None = None
    min_height: int | None = None
    sort: str = "score"
    collapse: bool = False

    @classmethod
    def parse(
        cls,
        *,
        under: str | None = None,
        glob: str | None = None,
        after: str | None = None,
        before: str | None = None,
        min_size: str | None = None,
        sort: str | None = None,
        collapse: bool = False,
        cwd: str | None = None,
    ) -> Filter:
        """A Filter from what a user typed: DIR (relative to `cwd`, default the working
        directory; `~` expanded), PATTERN, DATE (YYYY-MM-DD, or an ISO 8601 date and time; a
        day given alone is included whole by --before), WxH. Raises InputError."""
        folder = None
        if under is not None:
            if not under.strip():
                raise InputError("--under needs a folder")
            folder = os.path.normpath(os.path.join(cwd or os.getcwd(), os.path.expanduser(under)))
        if glob is not None and not glob.strip():
            raise InputError("--glob needs a pattern, such as '*.png' or 'holiday/*'")
        start = None if after is None else _date(after, "--after")
        end = None if before is None else _date(before, "--before", end=True)
        if start and end and start >= end:
            raise InputError(f"--after {after} is not before --before {before}: nothing can match")
        width = height = None
        if min_size is not None:
            match = _SIZE.fullmatch(min_size)
            if match is None:
                raise InputError(
                    f"--min-size takes WIDTHxHEIGHT in pixels, such as 800x600, not {min_size!r}"
                )
            width, height = int(match[1]), int(match[2])
        sort = sort or "score"
        if sort not in SORTS:
            raise InputError(f"--sort takes {', '.join(SORTS)}, not {sort!r}")
        return cls(folder, glob, start, end, width, height, sort, collapse)

    @property
    def narrows(self) -> bool:
        """True if it leaves some images out (sort and collapse do not)."""
        return any(
            v is not None
            for v in (
                self.under,
                self.glob,
                self.after,
                self.before,
                self.min_width,
                self.min_height,
            )
        )

    def where(self) -> tuple[str, list[Any]]:
        """A SQL condition on the `images` table and its parameters ('1' when it allows all)."""
        terms: list[str] = []
        params: list[Any] = []
        if self.under is not None:
            # The folder's paths, as a range of the path index: 'DIR/' <= path < 'DIR0'
            # ('0' follows '/'), plus a file catalogued as DIR itself.
            base = self.under.rstrip("/")
            terms.append("(path = ? OR (path >= ? AND path < ?))")
            params += [base or "/", base + "/", base + "0"]
        if self.glob is not None:
            # SQLite's GLOB (on the path index's values, in C) first; its * also crosses a /,
            # so fnmatch confirms unless the pattern is * and a plain ending ('*.png')
            rough, exact = self._sql_glob()
            if rough is not None:
                terms.append("path GLOB ?")
                params.append(rough)
            if not exact:
                terms.append(f"{_GLOB_SQL}(path)")
        # DATE_SQL's test, without formatting every row's mtime: the bound as an mtime
        for bound, op in ((self.after, ">="), (self.before, "<")):
            if bound is not None:
                terms.append(f"(taken {op} ? OR (taken IS NULL AND mtime_ns {op} ?))")
                params += [bound, _local_ns(bound)]
        if self.min_width is not None:
            terms.append("width >= ? AND height >= ?")
            params += [self.min_width, self.min_height]
        return " AND ".join(terms) or "1", params

    def candidates(self, k: int) -> int:
        """How many results to find for k shown (--collapse hides some)."""
        return COLLAPSE_FETCH * k + 8 if self.collapse else k

    def _sql_glob(self) -> tuple[str | None, bool]:
        """(a SQLite GLOB every match passes, or None; True if it alone decides)."""
        assert self.glob is not None
        if "[" in self.glob:
            return None, False  # classes differ ([!a] / [^a], an unclosed [)
        if "/" not in self.glob:
            plain = self.glob.startswith("*") and not any(c in self.glob[1:] for c in "*?")
            return "*/" + self.glob, plain
        return (self.glob if self.glob.startswith(("/", "*")) else "*/" + self.glob), False

    def matches_path(self, path: str) -> bool:
        """The --glob test: on the file name, or on the path's end for a pattern with a `/`."""
        if self.glob is None:
            return True
        if "/" not in self.glob:
            return fnmatchcase(os.path.basename(path), self.glob)
        pattern = self.glob if self.glob.startswith(("/", "*")) else "*/" + self.glob
        return fnmatchcase(path, pattern)

    def to_json(self) -> dict[str, Any]:
        """The fields given (for a response's `query`)."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and value != f.default:
                data[f.name] = value
        return data


def _local_ns(when: str) -> int:
    """Nanoseconds since the epoch of a local 'YYYY-MM-DDTHH:MM:SS' (as SQLite's 'localtime')."""
    return int(dt.datetime.strptime(when, "%Y-%m-%dT%H:%M:%S").timestamp()) * 1_000_000_000


def _date(text: str, option: str, *, end: bool = False) -> str:
    """'YYYY-MM-DDTHH:MM:SS' of a date the user typed, in local time (as EXIF dates are). A day
    alone given as an end is the next day's midnight, so that the day is included."""
    raw = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            day = dt.datetime.strptime(raw, "%Y-%m-%d")
            when = day + dt.timedelta(days=1) if end else day
        else:
            when = dt.datetime.fromisoformat(raw.replace(" ", "T", 1))
            if when.tzinfo is not None:
                when = when.astimezone().replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise InputError(
            f"{option} takes a date as YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], not {text!r}"
        ) from None
    return when.strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True)
class Selection:
    """The images a filter allows: catalog ids, and where each one's embedding is."""

    ids: np.ndarray  # in no particular order
    shards: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def select(catalog: Catalog, f: Filter) -> Selection:
    """The catalog ids `f` allows, selected in SQL (streamed into arrays)."""
    condition, params = f.where()
    conn = catalog.conn
    register(catalog, f)
    cur = conn.execute(f"SELECT id, shard, row FROM images WHERE {condition}", params)
    chunks = []
    while chunk := cur.fetchmany(65536):
        chunks.append(np.array(chunk, dtype=np.int64))
    found = np.concatenate(chunks) if chunks else np.zeros((0, 3), dtype=np.int64)
    return Selection(found[:, 0].copy(), found[:, 1].copy(), found[:, 2].copy())


def dates(catalog: Catalog, ids: list[int]) -> dict[int, str | None]:
    """The photo's date of each catalog id (see DATE_SQL)."""
    found: dict[int, str | None] = {}
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        marks = ",".join("?" * len(part))
        rows = catalog.conn.execute(
            f"SELECT id, {DATE_SQL} FROM images WHERE id IN ({marks})", part
        )
        found.update(rows)
    return found


def register(catalog: Catalog, f: Filter) -> None:
    """The Python half of --glob, as a SQL function of this connection."""
    if f.glob is not None:
        catalog.conn.create_function(_GLOB_SQL, 1, f.matches_path, deterministic=True)


def allowed(catalog: Catalog, f: Filter, ids: list[int]) -> set[int]:
    """Those of `ids` that `f` allows."""
    condition, params = f.where()
    register(catalog, f)
    found: set[int] = set()
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        marks = ",".join("?" * len(part))
        sql = f"SELECT id FROM images WHERE id IN ({marks}) AND {condition}"
        found.update(i for (i,) in catalog.conn.execute(sql, [*part, *params]))
    return found
