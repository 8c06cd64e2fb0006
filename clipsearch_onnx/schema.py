"""The catalog's tables, and how a catalog written by an older version is brought up to date."""

from __future__ import annotations

import sqlite3
from pathlib import Path

VERSION = 3

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shards (
    id INTEGER PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    count INTEGER NOT NULL,
    origin TEXT
);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT UNIQUE NOT NULL,
    size INTEGER,
    mtime_ns INTEGER,
    sha256 TEXT,
    captions TEXT NOT NULL DEFAULT '[]',
    shard INTEGER NOT NULL REFERENCES shards(id),
    row INTEGER NOT NULL,
    width INTEGER,
    height INTEGER,
    taken TEXT,
    fingerprint INTEGER
);
CREATE INDEX IF NOT EXISTS images_sha256 ON images(sha256);
CREATE TABLE IF NOT EXISTS skipped (path TEXT PRIMARY KEY, reason TEXT NOT NULL);
"""
# Version 2 added file facts (`width`, `height` of the upright picture; `taken`: EXIF
# DateTimeOriginal 'YYYY-MM-DDTHH:MM:SS'), a lookup of a shard's rows (publishing reads the
# catalog shard by shard), the folders that were indexed, and where an imported shard came from
# (the digest of its shard.json, so importing a job again skips what is in already).
# Version 3 added `fingerprint` (clipsearch_onnx/fingerprint.py; NULL for images catalogued
# before, until they are embedded again).
FACTS = (
    ("width", "INTEGER"),
    ("height", "INTEGER"),
    ("taken", "TEXT"),
    ("fingerprint", "INTEGER"),
)
_ADDED_IN_2 = [
    "CREATE INDEX IF NOT EXISTS images_shard ON images(shard, row)",
    "CREATE TABLE IF NOT EXISTS roots (path TEXT PRIMARY KEY)",
    "CREATE INDEX IF NOT EXISTS shards_origin ON shards(origin)",
]


def create(path: Path) -> None:
    """A new catalog file with every table, written in one transaction."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        added = ";".join(_ADDED_IN_2)
        conn.executescript(
            f"BEGIN; {_TABLES} {added}; INSERT INTO meta VALUES ('schema', '{VERSION}'); COMMIT;"
        )
    finally:
        conn.close()


def migrate(conn: sqlite3.Connection) -> None:
    """Brings an older catalog up to VERSION, in one transaction (a writer does it on open)."""
    found = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if found is not None and int(found[0]) >= VERSION:
        return
    columns = {r[1] for r in conn.execute("PRAGMA table_info(images)")}
    shard_columns = {r[1] for r in conn.execute("PRAGMA table_info(shards)")}
    conn.execute("BEGIN IMMEDIATE")
    try:
        for name, kind in FACTS:
            if name not in columns:
                conn.execute(f"ALTER TABLE images ADD COLUMN {name} {kind}")
        if "origin" not in shard_columns:
            conn.execute("ALTER TABLE shards ADD COLUMN origin TEXT")
        for statement in _ADDED_IN_2:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO meta VALUES ('schema', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(VERSION),),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
