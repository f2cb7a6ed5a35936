"""Experiment history: a local SQLite index of run folders — search, filter, tag, compare, delete.

The run folders are the truth; the database is only an index of them, so it can always be thrown
away and rebuilt. That decides the design:

* Tags and notes are written into the run folder too (``RUN/tags.json``) as well as the index,
  so a rebuild restores them.
* Runs indexed from outside the history's root are remembered in a plain text file next to the
  database (``history-paths.txt``), so a rebuild finds them again.
* Opening checks the database (``PRAGMA integrity_check``, the schema version); a missing,
  corrupt or foreign file is moved aside (``history.sqlite.corrupt-<time>``) and the index is
  rebuilt by scanning the root and the remembered paths. No run is lost, because no run lives
  only in the database.

What a run folder is, where its files are and how they are read belongs to
:mod:`kdgui.core.run_folders` (docs/run-folder.md). A run's status: ``completed`` (summary.json,
not stopped), ``stopped``, ``failed`` (the last event in metrics.jsonl is ``failed``) or
``incomplete`` (running, or killed).

Python's ``sqlite3`` only; no torch (this module is core), so the window's history panel opens
instantly. One connection guarded by a lock: the window's thread and a worker may share it.

This module holds the :class:`History` class (what you can ask the index); how the index is
stored is :mod:`kdgui.core.history_schema`, what a run is in it :mod:`kdgui.core.history_records`,
and how questions become SQL :mod:`kdgui.core.history_queries`. Their public names are
re-exported here, so ``from kdgui.core.history import ...`` keeps working.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kdgui.core.config_io import atomic_write_text
from kdgui.core.errors import ConfigError
from kdgui.core.history_queries import COMPARE_METRICS, SORT_KEYS, config_diff, records, search_sql
from kdgui.core.history_records import HistoryError, RunRecord, describe_folder, read_tags
from kdgui.core.history_schema import (
    DB_NAME,
    HIDDEN_TAG,
    PATHS_NAME,
    SCHEMA_VERSION,
    check_db,
    connect,
    create_db,
    remove_db,
    set_aside_db,
    stable_run_id,
    upsert,
)
from kdgui.core.run_folders import TAGS_FILE, file_stamps, find_run_folders, is_run_folder


class History:
    """The index of the run folders under ``root`` (and of runs added from elsewhere).

    ``History(root)`` keeps its database at ``root/history.sqlite``; pass ``db_path`` to keep it
    elsewhere. Opening never loses a run: a damaged database is set aside and rebuilt.
    """

    def __init__(self, root: str | os.PathLike[str], db_path: str | os.PathLike[str] | None = None,
                 *, scan: bool = True) -> None:
        self.root = Path(root).expanduser().resolve()
        self.db_path = Path(db_path) if db_path is not None else self.root / DB_NAME
        self.paths_file = self.db_path.with_name(PATHS_NAME)
        self._lock = threading.RLock()
        self.rebuilt_from: str | None = None  # why the last open rebuilt the index, if it did
        self.set_aside: Path | None = None
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryError(f"cannot create the history folder '{self.db_path.parent}': "
                               f"{exc.strerror or exc}", "Choose a folder you can write to.") from None
        self._conn = self._open()
        if scan and self.rebuilt_from is None:
            self.sync()

    # -- opening and rebuilding -----------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        existed = self.db_path.exists() and self.db_path.stat().st_size > 0
        problem: str | None = None if existed else "missing"
        conn: sqlite3.Connection | None = None
        if existed:
            try:
                conn = connect(self.db_path)
                problem = check_db(conn)
            except sqlite3.DatabaseError as exc:  # "file is not a database", malformed
                problem = f"unreadable ({exc})"
        if problem is None and conn is not None:
            return conn
        if conn is not None:
            conn.close()
        if existed:
            self.set_aside = set_aside_db(self.db_path)
        elif self.db_path.exists():
            self.db_path.unlink()
        conn = create_db(self.db_path)
        self._conn = conn
        self.rebuilt_from = problem
        self._scan_all(conn)
        return conn

    def rebuild(self) -> int:
        """Throw the index away and rebuild it from the run folders; returns the runs found."""
        with self._lock:
            self._conn.close()
            remove_db(self.db_path)
            self._conn = self._open()
            self.rebuilt_from = "asked"
            return self.count()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- indexing -------------------------------------------------------------------------------
    def extra_paths(self) -> list[Path]:
        """Runs and folders added from outside the root (remembered outside the database)."""
        try:
            lines = self.paths_file.read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        return [Path(line) for line in dict.fromkeys(x.strip() for x in lines) if line]

    def _remember(self, path: Path) -> None:
        if path == self.root or self.root in path.parents:
            return
        known = self.extra_paths()
        if path not in known:
            atomic_write_text(self.paths_file, "\n".join(str(p) for p in [*known, path]) + "\n")

    def _scan_all(self, conn: sqlite3.Connection) -> list[str]:
        seen = []
        for base in [self.root, *self.extra_paths()]:
            for folder in find_run_folders(base):
                info = describe_folder(folder)
                if HIDDEN_TAG in info["tags"]:
                    continue
                self._upsert(conn, info)
                seen.append(info["path"])
        conn.commit()
        return seen

    def _upsert(self, conn: sqlite3.Connection, info: dict[str, Any]) -> int:
        return upsert(conn, info, self.root)

    def add(self, path: str | os.PathLike[str]) -> list[int]:
        """Index a run folder, or every run folder under a folder (a sweep, a runs root).

        Runs outside the root are remembered in ``history-paths.txt`` so a rebuild finds them.
        """
        folder = Path(path).expanduser().resolve()
        folders = list(find_run_folders(folder))
        if not folders:
            raise HistoryError(f"'{folder}' holds no run folder (no config.yaml with "
                               "metrics.jsonl or summary.json)",
                               "Pass the folder of a run, of a sweep, or of many runs.")
        for f in folders:  # adding a run by hand un-hides it
            tags, note = read_tags(f)
            if HIDDEN_TAG in tags:
                atomic_write_text(f / TAGS_FILE, json.dumps(
                    {"tags": [t for t in tags if t != HIDDEN_TAG], "note": note}, indent=2) + "\n")
        with self._lock:
            ids = [self._upsert(self._conn, describe_folder(f)) for f in folders]
            self._conn.commit()
        self._remember(folder)
        return ids

    def sync(self) -> tuple[int, int]:
        """Index new and changed run folders and drop entries whose folder is gone.

        Returns (indexed or updated, dropped). Cheap when nothing changed: a folder is re-read
        only when one of its files is newer than the index says.
        """
        with self._lock:
            known = {r["path"]: r["mtime"] for r in self._conn.execute(
                "SELECT path, mtime FROM runs")}
            changed = 0
            found = set()
            for base in [self.root, *self.extra_paths()]:
                for folder in find_run_folders(base):
                    key = str(folder.resolve())
                    found.add(key)
                    if HIDDEN_TAG in read_tags(folder)[0]:
                        continue
                    stamps = file_stamps(folder)
                    if key not in known or (stamps and max(stamps) > (known[key] or 0)):
                        self._upsert(self._conn, describe_folder(folder))
                        changed += 1
            gone = [p for p in known if p not in found]
            self._conn.executemany("DELETE FROM runs WHERE path=?", [(p,) for p in gone])
            self._conn.commit()
            return changed, len(gone)

    # -- querying -------------------------------------------------------------------------------
    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def _records(self, rows: Sequence[sqlite3.Row]) -> list[RunRecord]:
        return records(self._conn, rows)

    def search(
        self,
        text: str = "",
        *,
        tag: str | None = None,
        status: str | None = None,
        dataset: str | None = None,
        min_accuracy: float | None = None,
        max_size_bytes: int | None = None,
        sweep: str | None = None,
        sort: str = "created",
        descending: bool = True,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs matching every filter given; ``text`` matches name, path, data, student,
        teacher, compression, note and tags (case-insensitive substring)."""
        sql, args = search_sql(
            text, tag=tag, status=status, dataset=dataset, min_accuracy=min_accuracy,
            max_size_bytes=max_size_bytes, sweep=sweep, sort=sort, descending=descending,
            limit=limit)
        with self._lock:
            return self._records(self._conn.execute(sql, args).fetchall())

    def list(self, **filters: Any) -> list[RunRecord]:
        return self.search("", **filters)

    def get(self, ref: int | str) -> RunRecord:
        """A run by id, by path, or by a unique prefix of its folder name."""
        with self._lock:
            row = None
            if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
                row = self._conn.execute("SELECT * FROM runs WHERE id=?", (int(ref),)).fetchone()
            if row is None:
                path = str(Path(str(ref)).expanduser().resolve())
                row = self._conn.execute("SELECT * FROM runs WHERE path=?", (path,)).fetchone()
            if row is None:
                rows = [r for r in self._conn.execute("SELECT * FROM runs").fetchall()
                        if Path(r["path"]).name.startswith(str(ref))]
                if len(rows) > 1:
                    raise HistoryError(f"'{ref}' matches {len(rows)} runs",
                                       "Use the run's id (kdgui history list) or its full path.")
                row = rows[0] if rows else None
            if row is None:
                raise HistoryError(f"no run '{ref}' in the history",
                                   "List the runs with 'kdgui history list'.")
            return self._records([row])[0]

    def tags(self) -> list[tuple[str, int]]:
        with self._lock:
            return [(r[0], int(r[1])) for r in self._conn.execute(
                "SELECT tag, COUNT(*) FROM tags GROUP BY tag ORDER BY tag")]

    # -- changing -------------------------------------------------------------------------------
    def _write_tags(self, record: RunRecord, tags: list[str], note: str) -> None:
        folder = Path(record.path)
        if not folder.is_dir():
            raise HistoryError(f"the folder of run {record.id} is gone: '{folder}'",
                               "Run 'kdgui history rebuild' to drop it from the index.")
        try:
            atomic_write_text(folder / TAGS_FILE, json.dumps(
                {"tags": sorted(set(tags)), "note": note}, indent=2) + "\n")
        except OSError as exc:
            raise HistoryError(f"cannot write '{folder / TAGS_FILE}': {exc.strerror or exc}",
                               "Check the folder's permissions.") from None
        with self._lock:
            self._upsert(self._conn, describe_folder(folder))
            self._conn.commit()

    def tag(self, ref: int | str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> RunRecord:
        """Add and remove tags of a run; they are saved in the run folder's tags.json too."""
        bad = [t for t in add if not t.strip() or "," in t]
        if bad:
            raise HistoryError(f"tag {bad[0]!r} is empty or holds a comma",
                               "Use short words such as 'baseline' or 'lecture-3'.")
        record = self.get(ref)
        tags = (set(record.tags) | {t.strip() for t in add}) - set(remove)
        self._write_tags(record, sorted(tags), record.note)
        return self.get(record.id)

    def set_note(self, ref: int | str, note: str) -> RunRecord:
        record = self.get(ref)
        self._write_tags(record, record.tags, note)
        return self.get(record.id)

    def delete(self, ref: int | str, *, delete_files: bool = False) -> RunRecord:
        """Drop a run from the index; with ``delete_files`` also remove its folder from disk.

        Only a folder that is a run folder is removed (never a folder that merely holds one).
        Without ``delete_files`` the folder stays and gets the tag ``hidden`` in its tags.json,
        so later scans and rebuilds skip it; ``add`` brings it back.
        """
        record = self.get(ref)
        folder = Path(record.path)
        if delete_files:
            if folder.exists():
                if not is_run_folder(folder):
                    raise HistoryError(f"'{folder}' does not look like a run folder",
                                       "Delete it by hand if you are sure.")
                try:
                    shutil.rmtree(folder)
                except OSError as exc:
                    raise HistoryError(f"cannot delete '{folder}': {exc.strerror or exc}",
                                       "Close programs using it and try again.") from None
        elif folder.is_dir():
            self._write_tags(record, [*record.tags, HIDDEN_TAG], record.note)
        with self._lock:
            self._conn.execute("DELETE FROM runs WHERE id=?", (record.id,))
            self._conn.commit()
        return record

    # -- comparing ------------------------------------------------------------------------------
    def compare(self, refs: Sequence[int | str]) -> dict[str, Any]:
        """Runs side by side: their metrics, and the config keys whose values differ.

        Returns ``{"runs": [RunRecord...], "metrics": {metric: [value per run]},
        "config_diff": {key: [value per run]}}``.
        """
        if len(refs) < 2:
            raise HistoryError("comparing needs at least two runs", "Pass two or more run ids.")
        records = [self.get(r) for r in refs]
        with self._lock:
            configs = [json.loads(self._conn.execute(
                "SELECT config_json FROM runs WHERE id=?", (r.id,)).fetchone()[0] or "{}")
                for r in records]
        diff = config_diff(configs)
        return {
            "runs": records,
            "metrics": {m: [getattr(r, m) for r in records] for m in COMPARE_METRICS},
            "config_diff": diff,
        }

    def summary_of(self, ref: int | str) -> dict[str, Any]:
        record = self.get(ref)
        with self._lock:
            text = self._conn.execute("SELECT summary_json FROM runs WHERE id=?",
                                      (record.id,)).fetchone()[0]
        return json.loads(text or "{}")


def default_root() -> Path:
    """Where the window and ``kdgui history`` keep runs unless told: ``$KDGUI_RUNS`` or ./runs."""
    return Path(os.environ.get("KDGUI_RUNS", "runs"))


def open_history(root: str | os.PathLike[str] | None = None) -> History:
    """Open (creating or repairing as needed) the history of ``root``."""
    root_path = Path(root) if root is not None else default_root()
    if root_path.exists() and not root_path.is_dir():
        raise ConfigError(f"history root '{root_path}' is a file", "Pass a folder.")
    return History(root_path)


__all__ = [
    "COMPARE_METRICS",
    "DB_NAME",
    "HIDDEN_TAG",
    "PATHS_NAME",
    "SCHEMA_VERSION",
    "SORT_KEYS",
    "History",
    "HistoryError",
    "RunRecord",
    "default_root",
    "describe_folder",
    "find_run_folders",
    "is_run_folder",
    "open_history",
    "stable_run_id",
]
