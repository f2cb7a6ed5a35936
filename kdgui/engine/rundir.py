"""The run folder's torch part: the training checkpoint, written so a crash never corrupts it.

The layout, the names and the plain files (config, event log, summary) belong to
:mod:`kdgui.core.run_folders` (docs/run-folder.md); :class:`RunDir` adds
``checkpoints/last.pt`` — student, adapters, optimizer and scheduler state after the last epoch —
which needs torch to write and read, and ``checkpoints/prev.pt``, the one before it.

Resuming (:meth:`RunDir.resume`) makes the folder look as if the run had stopped right after its
last checkpoint: half-written ``*.tmp`` files of the killed process are removed, the event log
loses the events after that checkpoint (the aborted epoch's steps), and the resumed run's
``started`` event takes the place of the first one, so a resumed run's ``metrics.jsonl`` has the
same lines as an uninterrupted run's. A damaged checkpoint is reported as such, naming the intact
previous one when there is one; it is never loaded with unsafe unpickling.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from kdgui.core.config_io import atomic_write_text
from kdgui.core.errors import CheckpointDamaged
from kdgui.core.events import Event, LogEvent, RunStarted
from kdgui.core.run_folders import (
    PREVIOUS_CHECKPOINT_FILE,
    RunFolder,
    checkpoint_path,
    metrics_path,
)

#: Keys every training checkpoint holds (written by the session's epoch loop).
CHECKPOINT_KEYS = ("distiller", "optimizer", "epoch", "step", "batch_rng", "torch_rng")


class RunDir(RunFolder):
    """One run folder as a run writes it: the core's plain files plus the checkpoint."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self._replace_started = False  # set by resume(): the next RunStarted replaces line 1
        self._preamble: list[Event] | None = None  # the resumed run's started + log events

    @property
    def checkpoint_path(self) -> Path:
        return checkpoint_path(self.path)

    @property
    def previous_checkpoint_path(self) -> Path:
        return self.path / PREVIOUS_CHECKPOINT_FILE

    # -- writing ------------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> Path:
        """Atomically save tensors-only state (loadable with weights_only=True).

        The checkpoint it replaces becomes ``prev.pt`` first (through a hard link, or a copy
        where links are not possible), so at every instant ``last.pt`` is a complete checkpoint
        and a damaged ``last.pt`` still leaves the epoch before it.
        """
        target = self.checkpoint_path
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".last.", suffix=".tmp")
        os.close(fd)
        try:
            torch.save(state, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            if target.is_file():
                self._keep_previous(target)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def _keep_previous(self, current: Path) -> None:
        fd, tmp = tempfile.mkstemp(dir=current.parent, prefix=".prev.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
        try:
            try:
                os.link(current, tmp)
            except OSError:
                shutil.copyfile(current, tmp)
            os.replace(tmp, self.previous_checkpoint_path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    # -- reading ------------------------------------------------------------------------------
    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint, None when the run has none yet, or :class:`CheckpointDamaged`."""
        path = self.checkpoint_path
        if not path.is_file():
            if self.previous_checkpoint_path.is_file():
                raise self._damaged(path, "is missing")
            return None
        problem = _checkpoint_problem(path)
        if isinstance(problem, str):
            raise self._damaged(path, problem)
        return problem

    def _damaged(self, path: Path, problem: str) -> CheckpointDamaged:
        prev = self.previous_checkpoint_path
        state = _checkpoint_problem(prev) if prev.is_file() else "missing"
        name, prev_name = _relative(path, self.path), _relative(prev, self.path)
        if isinstance(state, dict):
            fix = (f"The previous checkpoint {prev_name} (after epoch {int(state['epoch']) + 1}) "
                   f"is intact: move it onto {name} and resume again, or start afresh with "
                   "--out NEW_DIR")
        else:
            fix = "No intact earlier checkpoint is left: start the run afresh with --out NEW_DIR"
        return CheckpointDamaged(f"the checkpoint {name} {problem}", fix, source=str(self.path))

    # -- resuming -----------------------------------------------------------------------------
    @classmethod
    def resume(cls, path: str | os.PathLike[str]) -> RunDir:
        """Open a run folder to continue it: check its checkpoint, remove the killed process's
        temporary files and drop the events after the checkpoint from ``metrics.jsonl``.

        Raises :class:`CheckpointDamaged` (a user error) before anything is changed when the
        checkpoint cannot be read.
        """
        run = cls.open_existing(path)
        assert isinstance(run, RunDir)
        state = run.load_checkpoint()
        remove_temporary_files(run.path)
        truncate_events(run.path, None if state is None else int(state["epoch"]))
        run._replace_started = True
        return run

    def log_event(self, event: Event) -> None:
        # A resumed run's opening (its started event and the log lines right after it) takes
        # the place of the first run's opening, so the log reads as one run.
        if self._replace_started and isinstance(event, RunStarted):
            self._replace_started = False
            self._preamble = [event]
            return
        if self._preamble is not None:
            if isinstance(event, LogEvent):
                self._preamble.append(event)
                return
            self._flush_preamble()
        super().log_event(event)

    def _flush_preamble(self) -> None:
        if self._preamble is not None:
            _replace_preamble(self.path, self._preamble)
            self._preamble = None

    def close(self) -> None:
        self._flush_preamble()
        super().close()


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def _checkpoint_problem(path: Path) -> dict[str, Any] | str:
    """The checkpoint at ``path`` as a dict, or what is wrong with it (a phrase).

    ``weights_only=True`` always: a file that is not plain tensors is damaged or foreign, and
    torch's own message (which suggests unsafe loading) is never shown.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if size == 0:
        return "is empty (0 bytes): the run was killed while writing it"
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception:  # any failure to read: truncated zip, random bytes, foreign pickle
        return "is damaged (truncated, or not a KD Studio checkpoint)"
    if not isinstance(state, dict) or any(k not in state for k in CHECKPOINT_KEYS):
        return "is not a KD Studio training checkpoint (keys are missing)"
    if not isinstance(state["epoch"], int) or not isinstance(state["step"], int):
        return "is damaged (its epoch counter is not a number)"
    return state


def remove_temporary_files(run: Path) -> list[Path]:
    """Remove the ``*.tmp`` files and folders a killed run left (atomic writes never finished).

    Only names this project writes are touched: hidden ``.NAME.tmp`` entries anywhere in the
    run folder and any ``*.tmp`` under ``checkpoints/``.
    """
    removed: list[Path] = []
    for item in sorted(run.rglob("*.tmp"), key=lambda p: len(p.parts), reverse=True):
        if not (item.name.startswith(".") or item.parent == checkpoint_path(run).parent):
            continue
        try:
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item)
            else:
                item.unlink()
        except FileNotFoundError:
            continue
        removed.append(item)
    return removed


def _read_lines(path: Path) -> list[tuple[str, dict[str, Any] | None]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    out: list[tuple[str, dict[str, Any] | None]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except (ValueError, RecursionError):  # a line cut by the kill, or garbage
            data = None
        out.append((line, data if isinstance(data, dict) else None))
    return out


def truncate_events(run: Path, epoch: int | None) -> int:
    """Keep the events of ``metrics.jsonl`` up to the end of checkpoint epoch ``epoch`` (0-based,
    as the checkpoint stores it; None: no epoch finished, keep nothing); returns lines dropped.

    The events after it (the aborted epoch's steps, a line cut by the kill) would otherwise be
    followed by the same epoch again, and the log would hold more lines than the run has.
    """
    path = metrics_path(run)
    lines = _read_lines(path)
    keep = 0
    if epoch is not None:
        for i, (_, data) in enumerate(lines):
            if (data is not None and data.get("event") == "epoch"
                    and data.get("stage", "distill") == "distill"
                    and isinstance(data.get("epoch"), int) and data["epoch"] <= epoch + 1):
                keep = i + 1
    dropped = len(lines) - keep
    if path.exists() and (dropped or not path.read_bytes().endswith(b"\n")):
        atomic_write_text(path, "".join(line + "\n" for line, _ in lines[:keep]))
    return dropped


def _replace_preamble(run: Path, events: list[Event]) -> None:
    """Write ``events`` (a started event and its log lines) in place of the log's opening:
    its first ``started`` line and the ``log`` lines right after it."""
    path = metrics_path(run)
    parsed = _read_lines(path)
    end = 0
    if parsed and parsed[0][1] is not None and parsed[0][1].get("event") == "started":
        end = 1
        while end < len(parsed) and (parsed[end][1] or {}).get("event") == "log":
            end += 1
    new = [json.dumps(e.to_dict(), allow_nan=True) for e in events]
    lines = new + [line for line, _ in parsed[end:]]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
