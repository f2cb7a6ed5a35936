"""The session's side of a distributed run: one run folder (rank 0's), silent other ranks, and
one way of running teacher and student on every rank.

:func:`open_run_dir` is called by every rank where a plain run creates or reopens its folder:
rank 0 does exactly what a plain run does and tells the others the folder's path (or its
error); the others get a :class:`ReadOnlyRunDir` on that path, which reads the checkpoint
(resume) and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from kdgui.core.config import ExperimentConfig
from kdgui.core.errors import UserError
from kdgui.core.events import Event, LogEvent
from kdgui.engine.distributed.world import World
from kdgui.engine.rundir import RunDir


class ReadOnlyRunDir(RunDir):
    """Rank > 0's view of rank 0's run folder: reads the checkpoint, never writes."""

    def log_event(self, event: Event) -> None:
        return None

    def save_checkpoint(self, state: dict[str, Any]) -> Path:
        return self.checkpoint_path

    def write_summary(self, summary: dict[str, Any]) -> Path:  # pragma: no cover - rank 0 only
        return self.path / "summary.json"

    def close(self) -> None:
        return None


def open_run_dir(world: World, make: Callable[[], RunDir]) -> RunDir:
    """Rank 0 runs ``make`` (create, or resume, the run folder) and the others learn its path;
    a :class:`UserError` on rank 0 is raised on every rank (as the same one-line error)."""
    if world.is_main:
        try:
            run_dir = make()
        except UserError as exc:
            world.broadcast(("error", exc.what, exc.fix))
            raise
        world.broadcast(("ok", str(run_dir.path), ""))
        return run_dir
    status, value, fix = world.broadcast(None)
    if status == "error":
        raise UserError(value, fix)
    return ReadOnlyRunDir(value)


def same_on_every_rank(config: ExperimentConfig) -> ExperimentConfig:
    """The config every rank runs: the fast path's measured choices ("auto") fixed to plain
    fp32, contiguous, eager, so that no rank picks differently from its own timings (DDP needs
    the student's layout to be the same on every rank). Explicit settings are kept."""
    tcfg = config.training
    update = {k: v for k, v, auto in (("teacher_precision", "fp32", tcfg.teacher_precision),
                                      ("channels_last", "off", tcfg.channels_last),
                                      ("compile", "off", tcfg.compile)) if auto == "auto"}
    if not update:
        return config
    return config.model_copy(update={"training": tcfg.model_copy(update=update)})


def describe(world: World, global_batch: int) -> LogEvent:
    per = world.per_rank_batch(global_batch)
    return LogEvent(level="info", message=(
        f"distributed: {world.size} processes ({world.backend}), {per} samples per process in "
        f"each batch (global batch {per * world.size}); the fast path's automatic choices are "
        "fixed to fp32, contiguous, eager so every process runs alike"))


def quietly(events: Generator[Event, None, Any]) -> Any:
    """Run a rank > 0's story without sending its events (rank 0 reports); returns its value."""
    try:
        while True:
            next(events)
    except StopIteration as stop:
        return stop.value


__all__ = ["ReadOnlyRunDir", "describe", "open_run_dir", "quietly", "same_on_every_rank"]
