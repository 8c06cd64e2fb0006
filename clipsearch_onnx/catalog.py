"""The catalog: one SQLite database per index with every image's path, file facts, captions and
where its embedding lives (shard and row).

SQLite in WAL mode gives the two guarantees the indexer and searcher rely on: a batch is committed
all at once or not at all (so a killed run resumes with nothing lost and nothing twice), and a
reader sees a consistent snapshot while a writer works.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from clipsearch_onnx.errors import IndexCorrupt, IndexNotFound

CATALOG = "catalog.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shards (
    id INTEGER PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT UNIQUE NOT NULL,
    size INTEGER,
    mtime_ns INTEGER,
    sha256 TEXT,
    captions TEXT NOT NULL DEFAULT '[]',
    shard INTEGER NOT NULL REFERENCES shards(id),
    row INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS images_sha256 ON images(sha256);
CREATE TABLE IF NOT EXISTS skipped (path TEXT PRIMARY KEY, reason TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Item:
    """One catalogued image."""

    id: int
    path: str
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    captions: list[str]
    shard: int
    row: int


@dataclass(frozen=True)
class NewItem:
    """An image about to be catalogued; `row` is its row in the shard being committed."""

    path: str
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    captions: Sequence[str]
    row: int


def _item(row: tuple) -> Item:
    return Item(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6], row[7])


_COLUMNS = "id, path, size, mtime_ns, sha256, captions, shard, row"


class Catalog:
    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn = conn
        self.path = path

    @classmethod
    def create(cls, folder: Path) -> None:
        """Writes a new, empty catalog in `folder` with its schema, in one transaction. (The
        writer does it in a build folder that only appears once this has finished.)"""
        conn = sqlite3.connect(Path(folder) / CATALOG)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(
                f"BEGIN; {_SCHEMA} INSERT INTO meta VALUES ('schema', '{SCHEMA_VERSION}'); COMMIT;"
            )
        finally:
            conn.close()

    @classmethod
    def open(cls, folder: Path, *, readonly: bool = False) -> Catalog:
        """Opens the catalog of a build folder (see `layout`); never creates one."""
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
            conn.execute("SELECT count(*) FROM images").fetchone()
            conn.execute("SELECT value FROM meta LIMIT 1").fetchall()
            conn.execute("SELECT id, name FROM shards LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            raise IndexCorrupt(
                f"the catalog {path} is damaged ({exc}); "
                "rebuild the index with `clipsearch index PHOTOS --rebuild`"
            ) from exc
        return cls(conn, path)

    def close(self) -> None:
        self.conn.close()

    # -- meta -----------------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta"))

    def set_meta(self, **values: str) -> None:
        with self.conn:
            self.conn.executemany(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                list(values.items()),
            )

    # -- reading --------------------------------------------------------------------------------
    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM images").fetchone()[0]

    def items(self) -> Iterator[Item]:
        """Every item, in id order."""
        yield from map(_item, self.conn.execute(f"SELECT {_COLUMNS} FROM images ORDER BY id"))

    def placements(self) -> list[tuple[int, int, int]]:
        """(id, shard, row) of every item, in id order: all that publishing needs, without
        decoding every item's captions."""
        return self.conn.execute("SELECT id, shard, row FROM images ORDER BY id").fetchall()

    def items_under(self, root: str) -> dict[str, Item]:
        """Items whose path lies below folder `root` (an absolute path), by path."""
        prefix = root.rstrip("/") + "/"
        # `>= prefix AND < prefix-with-last-char-bumped` keeps the lookup on the path index.
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM images WHERE path >= ? AND path < ?", (prefix, upper)
        )
        return {item.path: item for item in map(_item, rows)}

    def by_ids(self, ids: Iterable[int]) -> dict[int, Item]:
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(f"SELECT {_COLUMNS} FROM images WHERE id IN ({marks})", ids)
        return {item.id: item for item in map(_item, rows)}

    def by_sha256(self, digests: Iterable[str]) -> dict[str, Item]:
        found: dict[str, Item] = {}
        for digest in digests:
            row = self.conn.execute(
                f"SELECT {_COLUMNS} FROM images WHERE sha256 = ? LIMIT 1", (digest,)
            ).fetchone()
            if row:
                found[digest] = _item(row)
        return found

    def by_path(self, path: str) -> Item | None:
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM images WHERE path = ?", (path,)).fetchone()
        return _item(row) if row else None

    def shard_names(self) -> dict[int, str]:
        return dict(self.conn.execute("SELECT id, name FROM shards"))

    def skipped(self) -> list[tuple[str, str]]:
        return list(self.conn.execute("SELECT path, reason FROM skipped ORDER BY path"))

    # -- writing --------------------------------------------------------------------------------
    def commit_shard(
        self,
        shard_name: str,
        items: Sequence[NewItem],
        *,
        replaced: Iterable[str] = (),
        skipped: Iterable[tuple[str, str]] = (),
        resolved: Iterable[str] = (),
    ) -> None:
        """Registers a shard already on disk and its items, in one transaction.

        `replaced` paths lose their old rows first (changed files); `skipped` records files that
        could not be embedded, `resolved` forgets earlier skips that now succeeded.
        """
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO shards (name, count) VALUES (?, ?)", (shard_name, len(items))
            )
            shard_id = cur.lastrowid
            self.conn.executemany("DELETE FROM images WHERE path = ?", [(p,) for p in replaced])
            self.conn.executemany(
                "INSERT INTO images (path, size, mtime_ns, sha256, captions, shard, row) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET "
                "size=excluded.size, mtime_ns=excluded.mtime_ns, sha256=excluded.sha256, "
                "captions=excluded.captions, shard=excluded.shard, row=excluded.row",
                [
                    (
                        i.path,
                        i.size,
                        i.mtime_ns,
                        i.sha256,
                        json.dumps(list(i.captions)),
                        shard_id,
                        i.row,
                    )
                    for i in items
                ],
            )
            self.conn.executemany(
                "INSERT INTO skipped VALUES (?, ?) ON CONFLICT(path) DO UPDATE SET reason=excluded.reason",
                list(skipped),
            )
            self.conn.executemany("DELETE FROM skipped WHERE path = ?", [(p,) for p in resolved])

    def move(self, moves: Sequence[tuple[Item, NewItem]]) -> None:
        """Re-points existing embeddings at new paths (files moved or renamed: same content).

        The old row is updated in place: the old path goes away and the catalog id is kept, so
        the published vector index still resolves to the file under its new name."""
        with self.conn:
            for old, new in moves:
                self.conn.execute(
                    "DELETE FROM images WHERE path = ? AND id != ?", (new.path, old.id)
                )
                self.conn.execute(
                    "UPDATE images SET path = ?, size = ?, mtime_ns = ?, sha256 = ?, captions = ? "
                    "WHERE id = ?",
                    (
                        new.path,
                        new.size,
                        new.mtime_ns,
                        new.sha256,
                        json.dumps(list(new.captions)),
                        old.id,
                    ),
                )

    def record_skipped(self, skipped: Sequence[tuple[str, str]]) -> None:
        with self.conn:
            self.conn.executemany(
                "INSERT INTO skipped VALUES (?, ?) "
                "ON CONFLICT(path) DO UPDATE SET reason=excluded.reason",
                list(skipped),
            )

    def update_captions(self, changes: Sequence[tuple[str, Sequence[str]]]) -> None:
        with self.conn:
            self.conn.executemany(
                "UPDATE images SET captions = ? WHERE path = ?",
                [(json.dumps(list(c)), p) for p, c in changes],
            )

    def remove(self, paths: Iterable[str]) -> None:
        with self.conn:
            self.conn.executemany("DELETE FROM images WHERE path = ?", [(p,) for p in paths])
            self.conn.executemany("DELETE FROM skipped WHERE path = ?", [(p,) for p in paths])

    def drop_skipped_under(self, root: str, keep: Iterable[str]) -> None:
        keep = set(keep)
        prefix = root.rstrip("/") + "/"
        rows = [p for (p,) in self.conn.execute("SELECT path FROM skipped") if p.startswith(prefix)]
        with self.conn:
            self.conn.executemany(
                "DELETE FROM skipped WHERE path = ?", [(p,) for p in rows if p not in keep]
            )

    def rows_may_be_missing(self, generation: int) -> bool:
        """True when vectors of published `generation` may legitimately lack catalog rows: a run
        changed the catalog after publishing it (and may have been killed), or a newer
        generation exists. A catalog older than the generation (it lost commits) is damaged."""
        meta = self.meta()
        published = int(meta.get("generation") or 0)
        unpublished = meta.get("unpublished") == "1"
        return published > generation or (published == generation and unpublished)

    def drop_unused_shards(self) -> list[str]:
        """Forgets shards no item points at any more and returns their names (to delete)."""
        rows = self.conn.execute(
            "SELECT id, name FROM shards WHERE id NOT IN (SELECT DISTINCT shard FROM images)"
        ).fetchall()
        with self.conn:
            self.conn.executemany("DELETE FROM shards WHERE id = ?", [(r[0],) for r in rows])
        return [r[1] for r in rows]
