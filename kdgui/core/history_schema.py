"""The history database itself: its schema, opening checks, setting a damaged file aside, writes.

Split from :mod:`kdgui.core.history` so the class there reads as "what you can ask the history",
while this module holds "how the index is stored". The run folders are the truth and this
database only an index of them (see :mod:`kdgui.core.history`), which is why a failed
:func:`check_db` is answered by setting the file aside and rebuilding, never by repairing it.

Python's ``sqlite3`` only; no torch (this module is core).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

#: 2: run IDs are derived from the run folder (:func:`stable_run_id`), not numbered in scan order.
SCHEMA_VERSION = 2
#: Run IDs are drawn from this range: 9 digits, so collisions (resolved by probing) are rare
#: even with thousands of runs, and an ID is still short enough to type.
ID_MIN, ID_SPAN = 100_000_000, 900_000_000
DB_NAME = "history.sqlite"
PATHS_NAME = "history-paths.txt"
#: A run deleted from the index but kept on disk carries this tag, so scans skip it.
HIDDEN_TAG = "hidden"

SCHEMA_SQL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    path TEXT UNIQUE NOT NULL,
    name TEXT, status TEXT, created REAL, mtime REAL,
    dataset TEXT, teacher TEXT, student TEXT,
    temperature REAL, alpha REAL, epochs INTEGER, compression TEXT, sweep TEXT,
    accuracy REAL, student_accuracy REAL, teacher_accuracy REAL,
    params INTEGER, nonzero_params INTEGER, size_bytes INTEGER, zip_size_bytes INTEGER,
    macs INTEGER, latency_ms REAL, compression_ratio REAL,
    note TEXT DEFAULT '',
    config_json TEXT, summary_json TEXT
);
CREATE TABLE tags (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (run_id, tag)
);
CREATE INDEX runs_created ON runs(created);
"""


def stable_run_id(path: str | os.PathLike[str], root: Path) -> int:
    """A run's ID, derived from its folder (relative to the runs root when inside it).

    Derived, not numbered: rebuilding the index (after damage, or on another machine with the
    same runs folder) gives every run the ID it had, so an ID written in a note or a script keeps
    pointing at the same run.
    """
    p = Path(path)
    try:
        key = p.relative_to(root).as_posix()
    except ValueError:
        key = p.as_posix()
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return ID_MIN + int.from_bytes(digest, "big") % ID_SPAN


def connect(db_path: Path) -> sqlite3.Connection:
    """A connection the window's thread and a worker may share (the caller holds a lock)."""
    conn = sqlite3.connect(str(db_path), check_same_thread=False, timeout=10)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def check_db(conn: sqlite3.Connection) -> str | None:
    """Why this database cannot be used as it is, or None when it is healthy."""
    result = conn.execute("PRAGMA integrity_check").fetchone()
    if result is None or result[0] != "ok":
        return f"integrity check failed: {result[0] if result else 'no answer'}"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return "empty database"
    if not {"meta", "runs", "tags"} <= tables:
        return "not a KD Studio history database"
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None or row[0] != str(SCHEMA_VERSION):
        return f"schema version {row[0] if row else 'missing'} (expected {SCHEMA_VERSION})"
    return None


def create_db(db_path: Path) -> sqlite3.Connection:
    """A new, empty index at ``db_path`` (the caller removed or set aside any old file)."""
    conn = connect(db_path)
    conn.executescript(SCHEMA_SQL)
    conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    conn.commit()
    return conn


def set_aside_db(db_path: Path) -> Path:
    """Move a damaged database (and its journal) out of the way, keeping it for inspection."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = db_path.with_name(f"{db_path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = db_path.with_name(f"{db_path.name}.corrupt-{stamp}-{n}")
    os.replace(db_path, target)
    for suffix in ("-journal", "-wal", "-shm"):
        side = Path(str(db_path) + suffix)
        if side.exists():
            os.replace(side, Path(str(target) + suffix))
    return target


def remove_db(db_path: Path) -> None:
    """Delete the database and its side files (a rebuild asked for by the user)."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)


def free_id(conn: sqlite3.Connection, path: str, root: Path) -> int:
    """The run's stable ID, or the next free one after it if another run holds it."""
    run_id = stable_run_id(path, root)
    while conn.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone():
        run_id = ID_MIN + (run_id - ID_MIN + 1) % ID_SPAN
    return run_id


def upsert(conn: sqlite3.Connection, info: dict[str, Any], root: Path) -> int:
    """Insert or update one run (``info`` from ``describe_folder``) and its tags; returns its ID.

    An existing row keeps its ID, so a run's ID never changes while its folder stays put.
    """
    info = dict(info)
    tags = info.pop("tags", [])
    row = conn.execute("SELECT id FROM runs WHERE path=?", (info["path"],)).fetchone()
    if row is None:
        info = {"id": free_id(conn, info["path"], root), **info}
    columns = list(info)
    conn.execute(
        f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT(path) DO UPDATE SET "
        + ", ".join(f"{c}=excluded.{c}" for c in columns if c not in ("path", "id")),
        [info[c] for c in columns],
    )
    run_id = conn.execute("SELECT id FROM runs WHERE path=?", (info["path"],)).fetchone()[0]
    conn.execute("DELETE FROM tags WHERE run_id=?", (run_id,))
    conn.executemany("INSERT INTO tags VALUES (?, ?)", [(run_id, t) for t in tags])
    return int(run_id)
