"""The window's run: one :class:`QtWorker` iterating the engine's ``run`` job at a time.

The worker gets its own deep copy of the config (editing the form during a run changes nothing
in it) and the run's :class:`RunControl`, which the engine checks between batches: pause takes
effect within one batch, and stop lets the engine measure and save what it has before it ends
(the run folder always holds its summary and student). Nothing here kills a run on a timer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from kdgui.core.config import ExperimentConfig
from kdgui.core.events import Event, RunControl, RunFailed, RunFinished, StepEvent
from kdgui.gui.qt_worker import QtWorker, engine_run_fn

RunFn = Callable[..., Iterator[Event]]


class QtRunner(QObject):
    """Owns at most one running run worker; the window talks only to this.

    ``run_fn`` replaces the engine (the tests' fake engine, which needs no torch warm-up).
    """

    event = Signal(object)
    errored = Signal(dict)
    started = Signal()
    finished = Signal()
    paused_changed = Signal(bool)

    def __init__(self, run_fn: RunFn | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._run_fn = run_fn
        self._worker: QtWorker | None = None
        self._ended = False
        self._out_dir: str = ""

    @property
    def running(self) -> bool:
        return self._worker is not None

    @property
    def paused(self) -> bool:
        return self._worker is not None and self._worker.paused

    @property
    def worker(self) -> QtWorker | None:
        return self._worker

    def start(self, config: ExperimentConfig, out_dir: str | Path | None = None, *,
              resume: bool = False) -> None:
        if self.running:
            raise RuntimeError("a run is already in progress")
        injected = self._run_fn
        config = config.model_copy(deep=True)
        control = RunControl()

        def run() -> Iterator[Event]:
            if injected is not None:
                return injected(config, out_dir, control=control, resume=resume)
            return engine_run_fn()(config, out_dir, control=control, resume=resume)

        worker = QtWorker(run, control=control, needs_engine=injected is None, name="kdgui-run",
                          owner=self)
        worker.yielded.connect(self._on_event)
        worker.errored.connect(self.errored)
        worker.finished.connect(self._on_finished)
        self._worker, self._ended, self._out_dir = worker, False, str(out_dir or "")
        worker.start()
        self.started.emit()

    def drain(self) -> int:
        """Hand every queued event to :attr:`event` now; returns how many."""
        return self._worker.drain() if self._worker is not None else 0

    def _on_event(self, ev: Any) -> None:
        if isinstance(ev, (RunFinished, RunFailed)):
            self._ended = True
        elif isinstance(ev, StepEvent) and self._worker is not None:
            self._worker.steady()  # the first live point is out: events every 100 ms suffice
        self.event.emit(ev)

    def pause(self) -> None:
        if self._worker is not None and not self._worker.control.stop_requested:
            self._worker.pause()
            self.paused_changed.emit(True)

    def resume(self) -> None:
        if self._worker is not None:
            self._worker.resume()
            self.paused_changed.emit(False)

    def stop(self) -> None:
        """Ask the engine to stop after the current batch; it still saves the run."""
        if self._worker is not None:
            self._worker.stop()
            self.paused_changed.emit(False)

    def wait(self, timeout_ms: int = 10000) -> bool:
        """Block until the run's thread ends (used when the application quits)."""
        worker = self._worker
        return True if worker is None else worker.wait(timeout_ms)

    def _on_finished(self) -> None:
        worker, self._worker = self._worker, None
        if (worker is not None and not self._ended and worker.error is None
                and worker.control.stop_requested):
            # A generator that returned on stop without saying so still ends as "stopped".
            self.event.emit(RunFinished(run_dir=self._out_dir, summary={}, stopped=True))
        if worker is not None:
            worker.deleteLater()
        self.finished.emit()


__all__ = ["QtRunner", "RunFn"]
