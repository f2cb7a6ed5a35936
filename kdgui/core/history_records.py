"""What the history stores about one run: :class:`RunRecord`, read from a run folder's files.

Split from :mod:`kdgui.core.history`: this module knows run folders (through
:mod:`kdgui.core.run_folders`, which owns their layout) and nothing of SQLite, so what a run
"is" in the index can be read and tested without a database.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdgui.core.errors import UserError
from kdgui.core.run_folders import (
    SWEEP_FILE,
    TAGS_FILE,
    config_path,
    file_stamps,
    read_config_dict,
    read_json,
    read_summary,
    run_status,
)


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


def read_tags(folder: Path) -> tuple[list[str], str]:
    """A run folder's tags and note from its tags.json (kept there so a rebuild restores them)."""
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
    tags, note = read_tags(folder)
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
