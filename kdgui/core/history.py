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
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdgui.core.config_io import atomic_write_text
from kdgui.core.errors import ConfigError, UserError
from kdgui.core.run_folders import (
    SWEEP_FILE,
    TAGS_FILE,
    config_path,
    file_stamps,
    find_run_folders,
    is_run_folder,
    read_config_dict,
    read_json,
    read_summary,
    run_status,
)

#: 2: run IDs are derived from the run folder (:func:`stable_run_id`), not numbered in scan order.
SCHEMA_VERSION = 2
#: Run IDs are drawn from this range: 9 digits, so collisions (resolved by probing) are rare
#: even with thousands of runs, and an ID is still short enough to type.
ID_MIN, ID_SPAN = 100_000_000, 900_000_000
DB_NAME = "history.sqlite"
PATHS_NAME = "history-paths.txt"
#: A run deleted from the index but kept on disk carries this tag, so scans skip it.
HIDDEN_TAG = "hidden"

_SCHEMA = """
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

#: Columns a listing can sort by.
SORT_KEYS = ("created", "name", "accuracy", "size_bytes", "zip_size_bytes", "latency_ms",
             "params", "status")
#: Metrics compared side by side by :meth:`History.compare`.
COMPARE_METRICS = ("status", "accuracy", "student_accuracy", "teacher_accuracy", "params",
                   "nonzero_params", "size_bytes", "zip_size_bytes", "macs", "latency_ms",
                   "compression_ratio")


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


class HistoryError(UserError):
    """The history database or a run folder in it cannot be used as asked."""


@dataclass
class RunRecord:
    """One indexed run, as the listing shows it."""

    id: int
    path: str
    name: str
    status: str
    created: float
    dataset: str = ""
    teacher: str = ""
    student: str = ""
    temperature: float | None = None
    alpha: float | None = None
    epochs: int | None = None
    compression: str = ""
    sweep: str = ""
    accuracy: float | None = None
    student_accuracy: float | None = None
    teacher_accuracy: float | None = None
    params: int | None = None
    nonzero_params: int | None = None
    size_bytes: int | None = None
    zip_size_bytes: int | None = None
    macs: int | None = None
    latency_ms: float | None = None
    compression_ratio: float | None = None
    note: str = ""
    tags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --------------------------------------------------------------------------- reading run folders


def _tags_of(folder: Path) -> tuple[list[str], str]:
    data = read_json(folder / TAGS_FILE) or {}
    tags = data.get("tags") if isinstance(data.get("tags"), list) else []
    return sorted({str(t) for t in tags}), str(data.get("note") or "")


def _final(summary: dict[str, Any]) -> dict[str, Any]:
    stages = summary.get("stages") or []
    return stages[-1] if stages and isinstance(stages[-1], dict) else (summary.get("student") or {})


def describe_folder(folder: Path) -> dict[str, Any]:
    """Everything the index stores about one run folder, read from its files."""
    folder = folder.resolve()
    config = read_config_dict(folder)
    summary = read_summary(folder)
    status = run_status(folder, summary or {})
    stamps = file_stamps(folder)
    cfg_file = config_path(folder)
    created = cfg_file.stat().st_mtime if cfg_file.exists() else time.time()
    summary = summary or {}
    final = _final(summary)
    teacher = summary.get("teacher") or {}
    student = summary.get("student") or {}
    data, distill = config.get("data") or {}, config.get("distill") or {}
    tcfg, scfg = config.get("teacher") or {}, config.get("student") or {}
    steps = (config.get("compression") or {}).get("steps") or []
    sweep = folder.parent if (folder.parent / SWEEP_FILE).is_file() else None
    tags, note = _tags_of(folder)
    size = final.get("size_bytes")
    return {
        "path": str(folder),
        "name": str(config.get("name") or summary.get("name") or folder.name),
        "status": status,
        "created": created,
        "mtime": max(stamps) if stamps else 0.0,
        "dataset": str(data.get("spec") or ""),
        "teacher": str(tcfg.get("path") or tcfg.get("arch") or ""),
        "student": str(scfg.get("preset") or ("spec" if scfg.get("spec") else "")
                       or ((scfg.get("model") or {}).get("path") or "")),
        "temperature": distill.get("temperature"),
        "alpha": distill.get("alpha"),
        "epochs": (config.get("training") or {}).get("epochs"),
        "compression": " → ".join(
            f"{s.get('kind')}:{s.get('method')}" for s in steps if isinstance(s, dict)),
        "sweep": str(sweep) if sweep else "",
        "accuracy": final.get("accuracy"),
        "student_accuracy": student.get("accuracy"),
        "teacher_accuracy": teacher.get("accuracy"),
        "params": final.get("params"),
        "nonzero_params": final.get("nonzero_params"),
        "size_bytes": size,
        "zip_size_bytes": final.get("zip_size_bytes"),
        "macs": final.get("macs"),
        "latency_ms": final.get("latency_ms"),
        "compression_ratio": (teacher.get("size_bytes") / size)
        if size and teacher.get("size_bytes") else None,
        "note": note,
        "config_json": json.dumps(config, default=str),
        "summary_json": json.dumps(summary, default=str),
        "tags": tags,
    }


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        out = {}
        for i, v in enumerate(data):
            out.update(_flatten(v, f"{prefix}.{i}"))
        return out
    return {prefix: data}


# ------------------------------------------------------------------------------------ the index


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
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.db_path), check_same_thread=False, timeout=10)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _check(self, conn: sqlite3.Connection) -> str | None:
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

    def _open(self) -> sqlite3.Connection:
        existed = self.db_path.exists() and self.db_path.stat().st_size > 0
        problem: str | None = None if existed else "missing"
        conn: sqlite3.Connection | None = None
        if existed:
            try:
                conn = self._connect()
                problem = self._check(conn)
            except sqlite3.DatabaseError as exc:  # "file is not a database", malformed
                problem = f"unreadable ({exc})"
        if problem is None and conn is not None:
            return conn
        if conn is not None:
            conn.close()
        if existed:
            self.set_aside = self._set_aside()
        elif self.db_path.exists():
            self.db_path.unlink()
        conn = self._connect()
        conn.executescript(_SCHEMA)
        conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.commit()
        self._conn = conn
        self.rebuilt_from = problem
        self._scan_all(conn)
        return conn

    def _set_aside(self) -> Path:
        """Move a damaged database (and its journal) out of the way, keeping it for inspection."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.db_path.with_name(f"{self.db_path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.db_path.with_name(f"{self.db_path.name}.corrupt-{stamp}-{n}")
        os.replace(self.db_path, target)
        for suffix in ("-journal", "-wal", "-shm"):
            side = Path(str(self.db_path) + suffix)
            if side.exists():
                os.replace(side, Path(str(target) + suffix))
        return target

    def rebuild(self) -> int:
        """Throw the index away and rebuild it from the run folders; returns the runs found."""
        with self._lock:
            self._conn.close()
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(str(self.db_path) + suffix).unlink(missing_ok=True)
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
        tags = info.pop("tags", [])
        row = conn.execute("SELECT id FROM runs WHERE path=?", (info["path"],)).fetchone()
        if row is None:
            info = {"id": self._free_id(conn, info["path"]), **info}
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

    def _free_id(self, conn: sqlite3.Connection, path: str) -> int:
        """The run's stable ID, or the next free one after it if another run holds it."""
        run_id = stable_run_id(path, self.root)
        while conn.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone():
            run_id = ID_MIN + (run_id - ID_MIN + 1) % ID_SPAN
        return run_id

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
            tags, note = _tags_of(f)
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
                    if HIDDEN_TAG in _tags_of(folder)[0]:
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
        out = []
        names = set(RunRecord.__dataclass_fields__)
        for row in rows:
            data = {k: row[k] for k in row.keys() if k in names}  # noqa: SIM118
            tags = [r[0] for r in self._conn.execute(
                "SELECT tag FROM tags WHERE run_id=? ORDER BY tag", (row["id"],))]
            out.append(RunRecord(**data, tags=tags))
        return out

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
        if sort not in SORT_KEYS:
            raise HistoryError(f"cannot sort by '{sort}'", f"Sort by one of {', '.join(SORT_KEYS)}.")
        where, args = [], []
        if text:
            like = f"%{text.lower()}%"
            where.append(
                "(lower(name) LIKE ? OR lower(path) LIKE ? OR lower(dataset) LIKE ? OR "
                "lower(student) LIKE ? OR lower(teacher) LIKE ? OR lower(compression) LIKE ? OR "
                "lower(note) LIKE ? OR id IN (SELECT run_id FROM tags WHERE lower(tag) LIKE ?))")
            args += [like] * 8
        if tag:
            where.append("id IN (SELECT run_id FROM tags WHERE tag = ?)")
            args.append(tag)
        if status:
            where.append("status = ?")
            args.append(status)
        if dataset:
            where.append("dataset = ?")
            args.append(dataset)
        if min_accuracy is not None:
            where.append("accuracy >= ?")
            args.append(float(min_accuracy))
        if max_size_bytes is not None:
            where.append("size_bytes <= ?")
            args.append(int(max_size_bytes))
        if sweep:
            where.append("sweep = ?")
            args.append(str(Path(sweep).resolve()))
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += f" ORDER BY {sort} IS NULL, {sort} {'DESC' if descending else 'ASC'}, id"
        if limit:
            sql += f" LIMIT {int(limit)}"
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
        flat = [_flatten(c) for c in configs]
        keys = sorted(set().union(*flat))
        diff = {k: [f.get(k) for f in flat] for k in keys
                if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flat}) > 1
                and k != "name"}
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
    "SCHEMA_VERSION",
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
