"""The events a run emits, and the control object its front end uses to pause or stop it.

Events are plain dataclasses holding numbers, strings, dicts and numpy arrays — never tensors or
live modules — so the CLI can print them, the window can plot them from another thread, and
``metrics.jsonl`` can store them, without any of them touching torch.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np


def _plain(value: Any) -> Any:
    """Convert numpy values (recursively) into JSON-able Python values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass
class Event:
    """Base of every run event; ``kind`` names it in ``metrics.jsonl``."""

    kind: ClassVar[str] = "event"
    time: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        out = {"event": self.kind}
        out.update({f.name: _plain(getattr(self, f.name)) for f in fields(self)})
        return out


@dataclass
class RunStarted(Event):
    kind: ClassVar[str] = "started"
    run_dir: str
    config: dict[str, Any]
    data: dict[str, Any]
    teacher: dict[str, Any]
    student: dict[str, Any]
    pairs: dict[str, list[list[str]]]
    epochs: int
    steps_per_epoch: int
    device: str
    teacher_cached: bool
    resumed_from_epoch: int = 0
    #: How teacher and student run (precision, layout, compiled) and the timings the choice was
    #: made on: ``{"teacher": {...}, "student": {...}}`` (see kdgui.engine.fast_path).
    fast_path: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepEvent(Event):
    """Training progress every ``log_every`` steps: each loss term, lr, throughput, and the
    per-layer sparsity (so a heatmap follows gradual pruning within an epoch)."""

    kind: ClassVar[str] = "step"
    step: int
    epoch: int
    losses: dict[str, float]
    lr: float
    samples_per_s: float
    progress: float  # 0..1 over the whole run (or over the current stage's fine-tuning)
    eta_s: float
    layer_names: list[str] = field(default_factory=list)
    sparsity: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    stage: str = "distill"


@dataclass
class EpochEvent(Event):
    """End of an epoch: accuracies and per-layer statistics (the sparsity heatmap's column)."""

    kind: ClassVar[str] = "epoch"
    epoch: int
    step: int
    train_loss: float
    train_accuracy: float
    val_accuracy: float
    teacher_accuracy: float | None
    agreement: float
    layer_names: list[str]
    sparsity: np.ndarray
    duration_s: float
    stage: str = "distill"


@dataclass
class StageEvent(Event):
    """A model measured at a stage (teacher, student, each compression step)."""

    kind: ClassVar[str] = "stage"
    name: str
    metrics: dict[str, Any]
    layers: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ArtifactEvent(Event):
    kind: ClassVar[str] = "artifact"
    what: str
    path: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class StateEvent(Event):
    """The run changed state: 'paused', 'resumed', 'stopping'."""

    kind: ClassVar[str] = "state"
    state: str


@dataclass
class LogEvent(Event):
    kind: ClassVar[str] = "log"
    level: str
    message: str


@dataclass
class RunFinished(Event):
    kind: ClassVar[str] = "finished"
    run_dir: str
    summary: dict[str, Any]
    stopped: bool = False


@dataclass
class RunFailed(Event):
    """The run ended with an error; ``error`` holds what, fix and message (see UserError)."""

    kind: ClassVar[str] = "failed"
    run_dir: str
    error: dict[str, str]
    step: int | None = None
    internal: bool = False

    @classmethod
    def from_exception(
        cls, exc: BaseException, run_dir: str, *, step: int | None = None,
        report: str = "the command that caused it",
    ) -> RunFailed:
        """The event for an error caught while a run or job goes: a user error's what/fix, or
        an internal one (a bug) with its traceback kept apart from the message. Call it inside
        the ``except`` block (the traceback is the one being handled)."""
        import traceback

        from kdgui.core.errors import UserError

        if isinstance(exc, UserError):
            return cls(run_dir=run_dir, error=exc.to_dict(), step=step)
        return cls(
            run_dir=run_dir,
            error={
                "type": type(exc).__name__,
                "what": f"internal error: {exc}",
                "fix": f"Please report this with {report}.",
                "source": "",
                "message": f"internal error: {type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            },
            step=step,
            internal=True,
        )

    def to_exception(self) -> Exception:
        """The error to raise where a run is consumed as a function call (CLI, Python API):
        a :class:`UserError` with the same what/fix, or an ``InternalError`` (message and
        traceback apart) for an internal error."""
        from kdgui.core.errors import InternalError, UserError

        err = self.error
        if self.internal:
            return InternalError(err.get("message", "internal error"), err.get("traceback", ""))
        return UserError(err.get("what", "the run failed"), err.get("fix", ""),
                         source=err.get("source") or None)


@dataclass
class JobProgress(Event):
    """How far a job that is not a training run has got (sensitivity cells, export formats),
    so a front end can show a progress bar without knowing the job."""

    kind: ClassVar[str] = "progress"
    job: str
    done: int
    total: int
    message: str = ""


@dataclass
class JobFinished(Event):
    """A job other than a run or a sweep ended (``compress``, ``sensitivity``, ``export_run``).

    ``result`` is the job's plain-data result: compress's ``summary.json`` content, the
    sensitivity table, or the files export_run wrote and from which stage. Its own event (not
    :class:`RunFinished`) because its summary has none of a distillation run's fields.
    """

    kind: ClassVar[str] = "job_finished"
    job: str
    out_dir: str
    result: dict[str, Any]
    stopped: bool = False


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (RunStarted, StepEvent, EpochEvent, StageEvent, ArtifactEvent, StateEvent,
                LogEvent, RunFinished, RunFailed, JobProgress, JobFinished)
}


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from a ``metrics.jsonl`` line (sparsity comes back as an array)."""
    data = dict(data)
    cls = EVENT_TYPES[data.pop("event")]
    if cls in (EpochEvent, StepEvent) and "sparsity" in data:
        data["sparsity"] = np.asarray(data.get("sparsity", []), dtype=np.float32)
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


class RunControl:
    """Thread-safe pause / resume / stop requests, checked by the engine between batches.

    The front end (another thread, or the same one between events) calls :meth:`pause`,
    :meth:`resume` or :meth:`stop`; the engine calls :meth:`checkpoint` after every batch, which
    blocks while paused and raises nothing itself — the engine reads :attr:`stop_requested`.
    """

    def __init__(self) -> None:
        self._running = threading.Event()
        self._running.set()
        self._stop = threading.Event()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def wait_while_paused(self, poll_s: float = 0.05) -> None:
        """Block while paused; returns at once on resume or stop."""
        while not self._running.wait(poll_s):
            if self._stop.is_set():
                return

    def apply(self, command: str | None) -> None:
        """Apply a command sent into the run generator: 'pause', 'resume' or 'stop'."""
        if command is None:
            return
        actions = {"pause": self.pause, "resume": self.resume, "stop": self.stop}
        if command not in actions:
            raise ValueError(f"unknown run command {command!r}; use pause, resume or stop")
        actions[command]()


__all__ = [
    "EVENT_TYPES",
    "ArtifactEvent",
    "EpochEvent",
    "Event",
    "JobFinished",
    "JobProgress",
    "LogEvent",
    "RunControl",
    "RunFailed",
    "RunFinished",
    "RunStarted",
    "StageEvent",
    "StateEvent",
    "StepEvent",
    "asdict",
    "event_from_dict",
]
