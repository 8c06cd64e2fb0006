"""The catalog: one SQLite database per index build with every image's path, file facts,
captions and where its embedding lives (shard and row).

SQLite in WAL mode gives the two guarantees the writer and searcher rely on: a batch is committed
all at once or not at all (so a killed run resumes with nothing lost and nothing twice), and a
reader sees a consistent snapshot while a writer works. Reads that could cover the whole
collection are streamed (iterators, per-shard arrays), never gathered.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from clipsearch_onnx import schema
from clipsearch_onnx.errors import IndexCorrupt, IndexNotFound, InputError

CATALOG = "catalog.sqlite"
CHECK_ROWS = 100_000  # rows an open reads to find a damaged file (see Catalog.open)

R = TypeVar("R")


def _damage_named(read: Callable[..., R]) -> Callable[..., R]:
    """A read of a damaged catalog (SQLite finds it only where it reads: `open` checks a bounded
    part) raises IndexCorrupt, as `open` does, instead of sqlite3's own error. Locks and other
    operational errors pass through."""

    @functools.wraps(read)
    def checked(self: Catalog, *args: Any, **kwargs: Any) -> R:
        try:
            return read(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise
            raise _damaged(self.path, exc) from exc

    return checked


def _damaged(path: Path, exc: Exception) -> IndexCorrupt:
    return IndexCorrupt(
        f"the catalog {path} is damaged ({exc}); "
        "rebuild the index with `clipsearch index PHOTOS --rebuild`"
    )


@dataclass(frozen=True)
class Item:
    """One catalogued image. `width`, `height`: the upright full-resolution picture; `taken`:
    EXIF DateTimeOriginal as 'YYYY-MM-DDTHH:MM:SS' (None when unknown); `fingerprint`: see
    clipsearch_onnx/fingerprint.py (None when unknown)."""

    id: int
    path: str
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    captions: list[str]
    shard: int
    row: int
    width: int | None = None
    height: int | None = None
    taken: str | None = None
    fingerprint: int | None = None


@dataclass(frozen=True)
class NewItem:
    """An image about to be catalogued; `row` is its row in the shard being committed."""

    path: str
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    captions: Sequence[str]
    row: int
    width: int | None = None
    height: int | None = None
    taken: str | None = None
    fingerprint: int | None = None

    def values(self) -> tuple:
        return (
            self.path,
            self.size,
            self.mtime_ns,
            self.sha256,
            json.dumps(list(self.captions), ensure_ascii=False),
            self.row,
            self.width,
            self.height,
            self.taken,
            self.fingerprint,
        )


def _item(row: tuple) -> Item:
    i, path, size, mtime_ns, sha256, captions, shard, row_, *facts = row
    return Item(i, path, size, mtime_ns, sha256, json.loads(captions), shard, row_, *facts)


class Catalog:
    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn = conn
        self.path = path
        columns = {r[1] for r in conn.execute("PRAGMA table_info(images)")}
        # A reader of a catalog no writer has migrated yet sees unknown facts.
        facts = ", ".join(name if name in columns else "NULL" for name, _ in schema.FACTS)
        self._columns = f"id, path, size, mtime_ns, sha256, captions, shard, row, {facts}"

    @classmethod
    def create(cls, folder: Path) -> None:
        """Writes a new, empty catalog in `folder` with its schema, in one transaction. (The
        writer does it in a build folder that only appears once this has finished.)"""
        schema.create(Path(folder) / CATALOG)

    @classmethod
    def open(cls, folder: Path, *, readonly: bool = False) -> Catalog:
        """Opens the catalog of a build folder (see `layout`); never creates one. A writer
        brings an older catalog up to the current schema first."""
        path = Path(folder) / CATALOG
        if not path.exists():
            raise IndexNotFound(
                f"no index at {folder}; build one with `clipsearch index PHOTOS --index {folder}`"
            )
        try:
            if readonly:
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            else:
                conn = sqlite3.connect(path, timeout=30)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
            # Reads enough to find a damaged file, a bounded amount: a count of 10M rows reads a
            # whole index (4 s with a cold page cache, most of a cold one-shot query)
            conn.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM images LIMIT {CHECK_ROWS})"
            ).fetchone()
            conn.execute("SELECT value FROM meta LIMIT 1").fetchall()
            conn.execute("SELECT id, name FROM shards LIMIT 1").fetchall()
            if not readonly:
                schema.migrate(conn)
            return cls(conn, path)
        except sqlite3.DatabaseError as exc:
            raise _damaged(path, exc) from exc

    def close(self) -> None:
        self.conn.close()

    # -- meta -----------------------------------------------------------------------------------
    @_damage_named
    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta"))

    def set_meta(self, **values: str) -> None:
        with self.conn:
            self.conn.executemany(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                list(values.items()),
            )

    def rows_may_be_missing(self, generation: int) -> bool:
        """True when vectors of published `generation` may legitimately lack catalog rows: a run
        changed the catalog after publishing it (and may have been killed), or a newer
        generation exists. A catalog older than the generation (it lost commits) is damaged."""
        meta = self.meta()
        published = int(meta.get("generation") or 0)
        unpublished = meta.get("unpublished") == "1"
        return published > generation or (published == generation and unpublished)

    # -- reading --------------------------------------------------------------------------------
    def count(self) -> int:
        """Rows of the catalog: reads a whole index (seconds at 10M rows with a cold page
        cache); `is_empty` and the published index.json's count are cheap."""
        return self.conn.execute("SELECT count(*) FROM images").fetchone()[0]

    def is_empty(self) -> bool:
        return self.conn.execute("SELECT 1 FROM images LIMIT 1").fetchone() is None

    def items(self) -> Iterator[Item]:
        """Every item, in id order (streamed)."""
        yield from map(_item, self.conn.execute(f"SELECT {self._columns} FROM images ORDER BY id"))

    @_damage_named
    def by_ids(self, ids: Iterable[int]) -> dict[int, Item]:
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(f"SELECT {self._columns} FROM images WHERE id IN ({marks})", ids)
        return {item.id: item for item in map(_item, rows)}

    @_damage_named
    def by_sha256(self, digests: Iterable[str]) -> dict[str, Item]:
        found: dict[str, Item] = {}
        for digest in digests:
            row = self.conn.execute(
                f"SELECT {self._columns} FROM images WHERE sha256 = ? LIMIT 1", (digest,)
            ).fetchone()
            if row:
                found[digest] = _item(row)
        return found

    @_damage_named
    def by_path(self, path: str) -> Item | None:
        row = self.conn.execute(
            f"SELECT {self._columns} FROM images WHERE path = ?", (path,)
        ).fetchone()
        return _item(row) if row else None

    @_damage_named
    def shard_names(self) -> dict[int, str]:
        return dict(self.conn.execute("SELECT id, name FROM shards"))

    def live_counts(self) -> list[tuple[int, str, int, int]]:
        """(shard id, name, rows, live rows) of every shard with live rows, oldest first."""
        return self.conn.execute(
            "SELECT s.id, s.name, s.count, c.n FROM shards s JOIN "
            "(SELECT shard, count(*) AS n FROM images GROUP BY shard) c ON c.shard = s.id "
            "ORDER BY s.id"
        ).fetchall()

    def shard_ids(self, shard: int, rows: int) -> np.ndarray:
        """int64 [rows]: the catalog id of each row of a shard, -1 for rows no longer live."""
        ids = np.full(rows, -1, dtype=np.int64)
        cur = self.conn.execute("SELECT row, id FROM images WHERE shard = ?", (shard,))
        while chunk := cur.fetchmany(65536):
            at = np.array(chunk, dtype=np.int64)
            ids[at[:, 0]] = at[:, 1]
        return ids

    def has_origin(self, origin: str) -> bool:
        """True if a shard from `origin` (see `commit_shard`) is in the catalog with live rows."""
        row = self.conn.execute(
            "SELECT 1 FROM shards s WHERE origin = ? "
            "AND EXISTS (SELECT 1 FROM images i WHERE i.shard = s.id) LIMIT 1",
            (origin,),
        ).fetchone()
        return row is not None

    @_damage_named
    def skipped(self) -> list[tuple[str, str]]:
        return list(self.conn.execute("SELECT path, reason FROM skipped ORDER BY path"))

    def roots(self) -> list[str]:
        """The folders `clipsearch index` was run on (absolute paths)."""
        return [p for (p,) in self.conn.execute("SELECT path FROM roots ORDER BY path")]

    # -- writing --------------------------------------------------------------------------------
    def commit_shard(
        self,
        shard_name: str,
        items: Iterable[NewItem],
        *,
        replace_all: bool = False,
        replaced: Iterable[str] = (),
        skipped: Iterable[tuple[str, str]] = (),
        resolved: Iterable[str] = (),
        origin: str | None = None,
        expect: int | None = None,
    ) -> int:
        """Registers a shard already on disk and its items (streamed), in one transaction;
        returns how many items it holds.

        `replaced` paths (or, with `replace_all`, each item's path) lose their old rows first,
        so a changed file gets a new id and its old vector resolves to nothing; `skipped`
        records files that could not be embedded, `resolved` forgets earlier skips that now
        succeeded; `origin` is where an imported shard came from. With `expect`, a shard that
        does not hold that many items is refused (InputError) and nothing is committed."""
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO shards (name, count, origin) VALUES (?, 0, ?)", (shard_name, origin)
            )
            shard_id = cur.lastrowid
            self.conn.executemany("DELETE FROM images WHERE path = ?", [(p,) for p in replaced])
            count = 0

            def rows() -> Iterator[tuple]:
                nonlocal count
                for item in items:
                    count += 1
                    yield (*item.values(), shard_id)

            if replace_all:
                self.conn.executemany(
                    "INSERT OR REPLACE INTO images (path, size, mtime_ns, sha256, captions, row, "
                    "width, height, taken, fingerprint, shard) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows(),
                )
            else:
                self.conn.executemany(
                    "INSERT INTO images (path, size, mtime_ns, sha256, captions, row, width, "
                    "height, taken, fingerprint, shard) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows(),
                )
            if expect is not None and count != expect:
                raise InputError(f"shard {shard_name} changed while it was imported")
            self.conn.execute("UPDATE shards SET count = ? WHERE id = ?", (count, shard_id))
            self.record_skipped(skipped, commit=False)
            self.conn.executemany("DELETE FROM skipped WHERE path = ?", [(p,) for p in resolved])
        return count

    def move(self, moves: Sequence[tuple[int, NewItem]]) -> None:
        """Re-points existing embeddings (catalog ids) at new paths (files moved or renamed:
        same content). The catalog id is kept, so the published vectors resolve to the file
        under its new name."""
        with self.conn:
            for old_id, new in moves:
                self.conn.execute(
                    "DELETE FROM images WHERE path = ? AND id != ?", (new.path, old_id)
                )
                path, size, mtime_ns, sha256, captions, _row, *facts = new.values()
                self.conn.execute(
                    "UPDATE images SET path = ?, size = ?, mtime_ns = ?, sha256 = ?, captions = ?, "
                    "width = coalesce(?, width), height = coalesce(?, height), "
                    "taken = coalesce(?, taken), fingerprint = coalesce(?, fingerprint) "
                    "WHERE id = ?",
                    (path, size, mtime_ns, sha256, captions, *facts, old_id),
                )

    def record_skipped(self, skipped: Iterable[tuple[str, str]], *, commit: bool = True) -> None:
        sql = "INSERT INTO skipped VALUES (?, ?) ON CONFLICT(path) DO UPDATE SET reason=excluded.reason"
        if not commit:
            self.conn.executemany(sql, skipped)
            return
        with self.conn:
            self.conn.executemany(sql, skipped)

    def update_captions(self, changes: Sequence[tuple[str, Sequence[str]]]) -> None:
        with self.conn:
            self.conn.executemany(
                "UPDATE images SET captions = ? WHERE path = ?",
                [(json.dumps(list(c), ensure_ascii=False), p) for p, c in changes],
            )

    def set_facts(self, rows: Sequence[tuple[str, int, int, str | None]]) -> None:
        """(path, width, height, taken) for catalogued files that had none recorded."""
        with self.conn:
            self.conn.executemany(
                "UPDATE images SET width = ?, height = ?, taken = ? WHERE path = ?",
                [(w, h, t, p) for p, w, h, t in rows],
            )

    def add_root(self, root: str) -> None:
        with self.conn:
            self.conn.execute("INSERT OR IGNORE INTO roots VALUES (?)", (root,))

    def drop_unused_shards(self) -> list[str]:
        """Forgets shards no item points at any more and returns their names (to delete)."""
        rows = self.conn.execute(
            "SELECT id, name FROM shards s WHERE NOT EXISTS "
            "(SELECT 1 FROM images i WHERE i.shard = s.id)"
        ).fetchall()
        with self.conn:
            self.conn.executemany("DELETE FROM shards WHERE id = ?", [(r[0],) for r in rows])
        return [r[1] for r in rows]
