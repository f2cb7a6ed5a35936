"""The run folder, owned in one place: its layout, names, and reading and writing its plain files.

Every run — from the window, ``kdgui run``, ``kdgui demo``, a sweep or the Python API — writes
one folder (docs/run-folder.md)::

    RUN/
      config.yaml                  the exact config of the run (re-validated on resume)
      metrics.jsonl                one JSON line per event, appended as the run goes
      checkpoints/last.pt          training state after the last epoch (written by the engine)
      student/student.safetensors  the distilled student, architecture in its metadata
      stages/<i>_<name>/           each compression stage: its model and metrics.json
      export/model.<suffix>        the exported files (suffixes from the export format table)
      summary.json                 written last and atomically: its presence means "completed"
      tags.json, lesson.json       tags and note (history), a classroom lesson's text

The CLI, the window, the history, the Netron view, the reports and the engine read these names
here, so the layout changes in one place. Torch-free (core): :class:`RunFolder` creates a folder
and writes the event log and summary; ``kdgui.engine.rundir.RunDir`` adds the checkpoint (torch).
A new folder's name comes from the run's ``name``, typed by a user: it is made safe (no
separators, no ``..``, at most :data:`MAX_NAME_CHARS` characters) and checked to lie inside the
runs root, so a name like ``x/../../ESCAPED`` cannot write anywhere else.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kdgui.core.config_io import atomic_write_text, dump_config
from kdgui.core.errors import ConfigError
from kdgui.core.events import Event, RunFinished, event_from_dict

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
TAGS_FILE = "tags.json"
LESSON_FILE = "lesson.json"
CHECKPOINT_FILE = "checkpoints/last.pt"
PREVIOUS_CHECKPOINT_FILE = "checkpoints/prev.pt"  # the one before last.pt (damaged-resume fallback)
STUDENT_FILE = "student/student.safetensors"
STAGES_DIR = "stages"
STAGE_METRICS_FILE = "metrics.json"
EXPORT_DIR = "export"
SWEEP_FILE = "sweep.json"  # marks a sweep folder (its runs are run folders inside it)
#: Longest folder name made from a run's name (file systems allow 255 bytes; the stamp and a
#: numeric suffix come on top, and a 50 MB name must never be copied into a path).
MAX_NAME_CHARS = 80

_UNSAFE = re.compile(r"[^\w.+=-]+")


# ------------------------------------------------------------------------------------ the layout


def config_path(run: str | os.PathLike[str]) -> Path:
    return Path(run) / CONFIG_FILE


def metrics_path(run: str | os.PathLike[str]) -> Path:
    return Path(run) / METRICS_FILE


def summary_path(run: str | os.PathLike[str]) -> Path:
    return Path(run) / SUMMARY_FILE


def checkpoint_path(run: str | os.PathLike[str]) -> Path:
    return Path(run) / CHECKPOINT_FILE


def student_path(run: str | os.PathLike[str]) -> Path:
    """``RUN/student/student.safetensors``: the distilled student (absent for an int8 student)."""
    return Path(run) / STUDENT_FILE


def stages_dir(run: str | os.PathLike[str]) -> Path:
    return Path(run) / STAGES_DIR


def export_path(run: str | os.PathLike[str], fmt: str) -> Path:
    """``RUN/export/model<suffix>`` for an export format (its suffix from the format table)."""
    from kdgui.core.components.export import export_format

    return Path(run) / EXPORT_DIR / f"model{export_format(fmt).suffix}"


def safe_name(text: str, fallback: str = "run") -> str:
    """``text`` as one safe folder-name component: separators and other symbols become ``-``,
    no leading dots (so never ``.`` or ``..``), at most :data:`MAX_NAME_CHARS` characters."""
    head = str(text)[: MAX_NAME_CHARS * 4]  # never run a regex over a huge name
    cleaned = _UNSAFE.sub("-", head).strip("-.")[:MAX_NAME_CHARS].rstrip("-.")
    return cleaned or fallback


def stage_folder_name(index: int, name: str) -> str:
    """``2_quantize-fake``: a stage's folder, numbered in pipeline order."""
    return f"{index}_{safe_name(name, 'stage')}"


def stage_index(folder: Path) -> int:
    """The pipeline position in a stage folder's name (unnumbered folders sort last)."""
    match = re.match(r"(\d+)_", folder.name)
    return int(match.group(1)) if match else 1 << 30


def stage_dirs(run: str | os.PathLike[str]) -> list[Path]:
    """Completed stage folders in order (a folder being written starts with a dot)."""
    stages = stages_dir(run)
    if not stages.is_dir():
        return []
    found = [p for p in stages.iterdir()
             if p.is_dir() and not p.name.startswith(".") and (p / STAGE_METRICS_FILE).is_file()]
    return sorted(found, key=stage_index)


# ------------------------------------------------------------------------- finding run folders


def is_run_folder(path: str | os.PathLike[str]) -> bool:
    """A folder written by a run: ``config.yaml`` plus ``metrics.jsonl`` or ``summary.json``."""
    p = Path(path)
    return config_path(p).is_file() and (metrics_path(p).is_file() or summary_path(p).is_file())


def holds_models(path: str | os.PathLike[str]) -> bool:
    """A folder with models to draw: a run folder's ``student/`` or ``stages/``, which
    ``kdgui compress`` output folders (no config.yaml) have too."""
    p = Path(path)
    return p.is_dir() and (stages_dir(p).is_dir() or student_path(p).parent.is_dir())


def find_runs(root: str | os.PathLike[str], *, models: bool = False) -> list[Path]:
    """Run folders directly under ``root`` (or ``root`` itself when it is one), newest first.

    With ``models`` the test is :func:`holds_models` instead of :func:`is_run_folder`.
    """
    test = holds_models if models else is_run_folder
    base = Path(root).expanduser()
    if test(base):
        return [base]
    if not base.is_dir():
        return []
    runs = [p for p in base.iterdir() if p.is_dir() and test(p)]
    return sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)


def find_run_folders(root: str | os.PathLike[str]) -> Iterator[Path]:
    """Every run folder anywhere under ``root`` (a run folder's own subfolders are not searched;
    hidden folders are skipped)."""
    base = Path(root)
    if not base.is_dir():
        return
    if is_run_folder(base):
        yield base
        return
    for dirpath, dirnames, _ in os.walk(base):
        subs = [Path(dirpath) / n for n in sorted(dirnames) if not n.startswith(".")]
        runs = [p for p in subs if is_run_folder(p)]
        yield from runs
        dirnames[:] = [p.name for p in subs if p not in runs]  # a run's subfolders: not runs


def file_stamps(run: str | os.PathLike[str]) -> list[float]:
    """Modification times of the files that say what a run is (to notice a changed run)."""
    p = Path(run)
    files = (config_path(p), metrics_path(p), summary_path(p), p / TAGS_FILE)
    return [f.stat().st_mtime for f in files if f.exists()]


# ----------------------------------------------------------------------------- new run folders


def ensure_inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """``path`` resolved, or a ConfigError when it lies outside ``root`` (links followed)."""
    base = Path(root).expanduser().resolve()
    target = Path(path).expanduser().resolve()
    if target != base and base not in target.parents:
        raise ConfigError(f"the run folder '{target}' would lie outside the runs folder '{base}'",
                          "Give the run a plain name (letters, digits, - and _), or use --out.")
    return target


def new_run_dir(root: str | os.PathLike[str], name: str) -> Path:
    """A new, unused ``ROOT/YYYYmmdd-HHMMSS-NAME`` (``-2``, ``-3``... when taken), inside ROOT.

    ``name`` is made safe with :func:`safe_name`; the folder is not created here.
    """
    base_root = Path(root).expanduser()
    base = base_root / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe_name(name)}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    ensure_inside(base_root, path)
    return path


# ------------------------------------------------------------------------ reading the plain files


def read_json(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when missing, damaged or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def read_summary(run: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``summary.json`` of a run (None: not finished, or the file is damaged)."""
    return read_json(summary_path(run))


def read_config_dict(run: str | os.PathLike[str]) -> dict[str, Any]:
    """``config.yaml`` as plain data, unvalidated ({} when missing or unreadable): for listings
    of old runs whose config a newer schema might refuse."""
    import yaml

    try:
        data = yaml.safe_load(config_path(run).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError, yaml.YAMLError):  # not UTF-8, nested too deep
        return {}
    return data if isinstance(data, dict) else {}


def read_event_dicts(run: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], int]:
    """The lines of ``metrics.jsonl`` as dicts, and how many lines could not be read (a line
    cut by a crash is skipped, not fatal)."""
    events: list[dict[str, Any]] = []
    bad = 0
    try:
        with open(metrics_path(run), encoding="utf-8", errors="replace") as fh:
            for line in filter(str.strip, fh):
                try:
                    data = json.loads(line)
                except (ValueError, RecursionError):
                    data = None
                if isinstance(data, dict):
                    events.append(data)
                else:
                    bad += 1
    except OSError:
        pass
    return events, bad


def last_event(run: str | os.PathLike[str]) -> str | None:
    """The ``event`` of the last complete line of ``metrics.jsonl`` (reads only the end)."""
    try:
        with open(metrics_path(run), "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 65536))
            tail = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(tail):
        try:
            data = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(data, dict):
            return data.get("event")
    return None


def run_status(run: str | os.PathLike[str], summary: dict[str, Any] | None = None) -> str:
    """``completed``, ``stopped``, ``failed`` (last event) or ``incomplete`` (running, killed)."""
    summary = read_summary(run) if summary is None else summary
    if summary:
        return "stopped" if summary.get("stopped") else "completed"
    return "failed" if last_event(run) == "failed" else "incomplete"


@dataclass
class RunContents:
    """A run folder read back: its summary and its events (as the window replays them)."""

    path: Path
    summary: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    bad_lines: int = 0

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def completed(self) -> bool:
        return bool(self.summary) and not self.summary.get("stopped", False)

    @property
    def status(self) -> str:
        """As :func:`run_status`: ``completed``, ``stopped``, ``failed`` or ``incomplete``."""
        if self.summary:
            return "stopped" if self.summary.get("stopped") else "completed"
        return "failed" if self.events and self.events[-1].kind == "failed" else "incomplete"


def read_run(path: str | os.PathLike[str]) -> RunContents:
    """Read a run folder's summary and events; unreadable event lines are counted, not fatal.

    Without ``summary.json`` the summary of the last ``finished`` event is used (a run whose
    summary write was interrupted still shows its numbers).
    """
    p = Path(path)
    if not p.is_dir() or not is_run_folder(p):
        raise ConfigError(f"'{p}' is not a run folder (it needs {CONFIG_FILE} and {METRICS_FILE} "
                          f"or {SUMMARY_FILE})",
                          "Choose the folder of an earlier run, e.g. runs/…-demo.")
    record = RunContents(p)
    target = summary_path(p)
    if target.is_file():
        try:
            record.summary = json.loads(target.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise ConfigError(f"cannot read '{target}': {exc}",
                              f"The file is damaged; the run's {METRICS_FILE} may still open.") \
                from None
    dicts, record.bad_lines = read_event_dicts(p)
    for data in dicts:
        try:
            record.events.append(event_from_dict(data))
        except (ValueError, KeyError, TypeError):
            record.bad_lines += 1
    if not record.summary:
        finished = [e for e in record.events if isinstance(e, RunFinished)]
        if finished:
            record.summary = finished[-1].summary
    return record


# ------------------------------------------------------------------------ writing the plain files


class RunFolder:
    """Writes one run folder: creates it with its config, appends events, writes the summary."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._log: IO[str] | None = None

    @classmethod
    def create(cls, path: str | os.PathLike[str], config: Any) -> RunFolder:
        """Make a new run folder holding ``config`` (an ExperimentConfig); refuses a folder that
        already holds a run."""
        p = Path(path)
        if metrics_path(p).exists() or summary_path(p).exists():
            raise ConfigError(f"'{p}' already holds a run",
                              "Choose another --out folder, or pass --resume to continue that run.")
        try:
            p.mkdir(parents=True, exist_ok=True)
            probe = p / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"cannot write to run folder '{p}': {exc.strerror or exc}",
                              "Choose a folder you can write to with --out.") from None
        atomic_write_text(config_path(p), dump_config(config))
        return cls(p)

    @classmethod
    def open_existing(cls, path: str | os.PathLike[str]) -> RunFolder:
        p = Path(path)
        if not config_path(p).is_file():
            raise ConfigError(f"'{p}' is not a run folder (no {CONFIG_FILE})",
                              "Pass the folder of an earlier run.")
        return cls(p)

    def log_event(self, event: Event) -> None:
        """Append one event to ``metrics.jsonl`` (flushed, so a crash loses at most this line)."""
        if self._log is None:
            self._log = open(metrics_path(self.path), "a", encoding="utf-8")  # noqa: SIM115
        self._log.write(json.dumps(event.to_dict(), allow_nan=True) + "\n")
        self._log.flush()

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """Write ``summary.json`` atomically: its presence means the run completed."""
        target = summary_path(self.path)
        atomic_write_text(target, json.dumps(summary, indent=2, default=_json_default))
        return target


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)
