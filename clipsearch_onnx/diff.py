"""What an index run has to do: the difference between a folder and the catalog, worked out in
SQL so that memory does not grow with the collection.

The scan goes into a temporary table (on disk, in SQLite's temp store); new, changed, moved and
vanished files are then joins against `images`, read back in pages in path order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from clipsearch_onnx.captions import captions_for
from clipsearch_onnx.catalog import Catalog, NewItem
from clipsearch_onnx.scan import Found

PAGE = 2000


@dataclass(frozen=True)
class Todo:
    """A file to embed: new, or changed since it was catalogued (`known`)."""

    path: str
    relpath: str
    size: int
    mtime_ns: int
    known: bool


def _bounds(root: str) -> tuple[str, str]:
    """[low, high) of the paths below folder `root`, so lookups stay on the path index."""
    prefix = root.rstrip("/") + "/"
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


class FolderDiff:
    def __init__(self, catalog: Catalog, root: str):
        self.catalog = catalog
        self.conn = catalog.conn
        self.root = root
        self.low, self.high = _bounds(root)
        self.conn.executescript(
            """
            PRAGMA temp_store = FILE;
            DROP TABLE IF EXISTS temp.found;
            DROP TABLE IF EXISTS temp.todo;
            DROP TABLE IF EXISTS temp.gone;
            DROP TABLE IF EXISTS temp.skips;
            CREATE TEMP TABLE found (
                path TEXT PRIMARY KEY, relpath TEXT NOT NULL, size INTEGER, mtime_ns INTEGER
            ) WITHOUT ROWID;
            CREATE TEMP TABLE skips (path TEXT PRIMARY KEY) WITHOUT ROWID;
            """
        )

    # -- the scan ---------------------------------------------------------------------------
    def load(self, entries: Iterable[Found | tuple[str, str]]) -> Iterator[tuple[str, str]]:
        """Stores the scan; yields the entries it could not use, as (path, reason)."""
        batch: list[tuple[str, str, int, int]] = []
        for entry in entries:
            if isinstance(entry, Found):
                batch.append((entry.path, entry.relpath, entry.size, entry.mtime_ns))
                if len(batch) >= PAGE:
                    self._insert_found(batch)
            else:
                self.catalog.record_skipped([entry])
                self.note_skipped([entry[0]])
                yield entry
        self._insert_found(batch)
        with self.conn:
            self.conn.execute(
                "CREATE TEMP TABLE gone AS SELECT i.id, i.path, i.size, i.sha256 FROM images i "
                "WHERE i.path >= ? AND i.path < ? "
                "AND NOT EXISTS (SELECT 1 FROM found f WHERE f.path = i.path)",
                (self.low, self.high),
            )
            self.conn.execute("CREATE INDEX temp.gone_sha ON gone(sha256)")
            self.conn.execute(
                "CREATE TEMP TABLE todo AS SELECT f.path, f.relpath, f.size, f.mtime_ns, "
                "i.id IS NOT NULL AS known FROM found f LEFT JOIN images i ON i.path = f.path "
                "WHERE i.id IS NULL OR i.size IS NOT f.size OR i.mtime_ns IS NOT f.mtime_ns "
                "ORDER BY f.path"
            )

    def _insert_found(self, batch: list[tuple[str, str, int, int]]) -> None:
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO found VALUES (?, ?, ?, ?)", batch)
        batch.clear()

    def note_skipped(self, paths: Iterable[str]) -> None:
        """Notes files this run skipped: their skip records stay, older ones below the root go."""
        with self.conn:
            self.conn.executemany("INSERT OR IGNORE INTO skips VALUES (?)", [(p,) for p in paths])

    # -- unchanged files ----------------------------------------------------------------------
    def count_unchanged(self) -> int:
        return self._one("SELECT count(*) FROM found") - self.count_todo()

    def update_captions(self, caption_map: dict[str, list[str]]) -> None:
        """Gives unchanged files the captions the captions file has for them now."""
        query = (
            "SELECT f.path, f.relpath, i.captions FROM found f JOIN images i ON i.path = f.path "
            "WHERE f.path > ? AND i.size IS f.size AND i.mtime_ns IS f.mtime_ns "
        )
        if not caption_map:
            query += "AND i.captions != '[]' "  # only captions to forget
        for page in self._pages(query + "ORDER BY f.path LIMIT ?"):
            changes = []
            for path, relpath, stored in page:
                caps = captions_for(relpath, caption_map)
                if json.loads(stored) != caps:
                    changes.append((path, caps))
            self.catalog.update_captions(changes)

    _MISSING_FACTS = (
        "FROM found f JOIN images i ON i.path = f.path WHERE f.path > ? "
        "AND i.width IS NULL AND i.size IS f.size AND i.mtime_ns IS f.mtime_ns"
    )

    def count_missing_facts(self) -> int:
        return int(self.conn.execute(f"SELECT count(*) {self._MISSING_FACTS}", ("",)).fetchone()[0])

    def backfill_facts(
        self,
        read_facts: Callable[[str], tuple[int, int, str | None] | None],
        advance: Callable[[int], None] = lambda n: None,
    ) -> int:
        """Gives unchanged files catalogued without width/height (by an older version) their
        facts, read from the file's header. Returns how many were filled."""
        filled = 0
        for page in self._pages(f"SELECT f.path {self._MISSING_FACTS} ORDER BY f.path LIMIT ?"):
            rows = []
            for (path,) in page:
                facts = read_facts(path)
                if facts is not None:
                    rows.append((path, *facts))
            self.catalog.set_facts(rows)
            filled += len(rows)
            advance(len(page))
        return filled

    # -- moves, new and changed files ----------------------------------------------------------
    def apply_moves(
        self, digest: Callable[[str], str | None], caption_map: dict[str, list[str]]
    ) -> int:
        """New paths whose content is that of a vanished file take over its catalog row (and so
        its embedding). Only new files of a vanished file's size are hashed."""
        moved = 0
        query = (
            "SELECT path, relpath, size, mtime_ns FROM todo WHERE path > ? AND NOT known "
            "AND size IN (SELECT size FROM gone) ORDER BY path LIMIT ?"
        )
        for page in self._pages(query):
            moves = []
            for path, relpath, size, mtime_ns in page:
                sha = digest(path)
                row = (
                    sha
                    and self.conn.execute(
                        "SELECT id, path FROM gone WHERE sha256 = ? AND size = ? LIMIT 1",
                        (sha, size),
                    ).fetchone()
                )
                if not row:
                    continue
                with self.conn:
                    self.conn.execute("DELETE FROM gone WHERE id = ?", (row[0],))
                    self.conn.execute("DELETE FROM todo WHERE path = ?", (path,))
                caps = captions_for(relpath, caption_map)
                moves.append((row[0], NewItem(path, size, mtime_ns, sha, caps, 0)))
            self.catalog.move(moves)
            moved += len(moves)
        return moved

    def count_todo(self) -> int:
        return self._one("SELECT count(*) FROM todo")

    def todo(self) -> Iterator[Todo]:
        """Files to embed, in path order, read in pages (the catalog may change meanwhile)."""
        for page in self._pages(
            "SELECT path, relpath, size, mtime_ns, known FROM todo WHERE path > ? "
            "ORDER BY path LIMIT ?"
        ):
            for path, relpath, size, mtime_ns, known in page:
                yield Todo(path, relpath, size, mtime_ns, bool(known))

    # -- vanished files ---------------------------------------------------------------------
    def remove_gone(self) -> int:
        """Forgets vanished files, and skips of files under the root this run did not skip."""
        with self.conn:
            removed = self.conn.execute(
                "DELETE FROM images WHERE id IN (SELECT id FROM gone)"
            ).rowcount
            self.conn.execute(
                "DELETE FROM skipped WHERE path >= ? AND path < ? "
                "AND path NOT IN (SELECT path FROM skips)",
                (self.low, self.high),
            )
        return removed

    def close(self) -> None:
        self.conn.executescript(
            "DROP TABLE IF EXISTS temp.found; DROP TABLE IF EXISTS temp.todo; "
            "DROP TABLE IF EXISTS temp.gone; DROP TABLE IF EXISTS temp.skips;"
        )

    # -- paging -----------------------------------------------------------------------------
    def _pages(self, query: str) -> Iterator[list[tuple]]:
        """Keyset pages of `query` (its first column is the path it is ordered and bounded by,
        `WHERE ... path > ?` and `LIMIT ?` its last parameters); each page is fetched whole
        before the caller changes anything."""
        after = ""
        while True:
            page = self.conn.execute(query, (after, PAGE)).fetchall()
            if not page:
                return
            yield page
            after = page[-1][0]

    def _one(self, query: str) -> int:
        return int(self.conn.execute(query).fetchone()[0])
