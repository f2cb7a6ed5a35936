"""The history's questions as SQL and plain data: search filters, record rows, config diffs.

Split from :mod:`kdgui.core.history` so building a query (which filter maps to which column,
what may be sorted on) sits in one place apart from the locking and the connection, which the
:class:`~kdgui.core.history.History` class keeps.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kdgui.core.history_records import HistoryError, RunRecord

#: Columns a listing can sort by.
SORT_KEYS = ("created", "name", "accuracy", "size_bytes", "zip_size_bytes", "latency_ms",
             "params", "status")
#: Metrics compared side by side by :meth:`History.compare`.
COMPARE_METRICS = ("status", "accuracy", "student_accuracy", "teacher_accuracy", "params",
                   "nonzero_params", "size_bytes", "zip_size_bytes", "macs", "latency_ms",
                   "compression_ratio")


def search_sql(
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
) -> tuple[str, list[Any]]:
    """The SELECT (and its arguments) for runs matching every filter given.

    ``sort`` is checked against :data:`SORT_KEYS` because it is written into the SQL text
    (a column name cannot be a parameter); every value is passed as a parameter.
    """
    if sort not in SORT_KEYS:
        raise HistoryError(f"cannot sort by '{sort}'", f"Sort by one of {', '.join(SORT_KEYS)}.")
    where: list[str] = []
    args: list[Any] = []
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
    return sql, args


def records(conn: sqlite3.Connection, rows: Sequence[sqlite3.Row]) -> list[RunRecord]:
    """Rows of ``runs`` as :class:`RunRecord` objects, each with its tags (sorted)."""
    out = []
    names = set(RunRecord.__dataclass_fields__)
    for row in rows:
        data = {k: row[k] for k in row.keys() if k in names}  # noqa: SIM118
        tags = [r[0] for r in conn.execute(
            "SELECT tag FROM tags WHERE run_id=? ORDER BY tag", (row["id"],))]
        out.append(RunRecord(**data, tags=tags))
    return out


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


def config_diff(configs: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """The dotted config keys whose values differ between runs, with each run's value.

    Lists of sections (compression steps) are flattened by index so one changed step shows
    as one key; the run's name always differs and is left out.
    """
    flat = [_flatten(c) for c in configs]
    keys = sorted(set().union(*flat))
    return {k: [f.get(k) for f in flat] for k in keys
            if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flat}) > 1
            and k != "name"}
