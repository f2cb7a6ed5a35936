"""Runs the engine's event generator in a QThread and hands each event to the window.

The design follows superqt's generator workers: the engine is a generator of plain events; the
worker iterates it on its own thread and emits :attr:`QtRunWorker.event` for each one. Pause and
stop go through a :class:`kdgui.core.events.RunControl` shared with the engine, which checks it
between batches — so they take effect within one batch, not at the next event — and the worker
closes a generator that keeps yielding long after a stop request.
Any exception becomes :attr:`QtRunWorker.errored` with the same ``what``/``fix`` dict as a
:class:`kdgui.core.events.RunFailed` event; the window never sees a traceback it did not ask for.

The worker runs on a deep copy of the config: editing the form during a run changes nothing in it.

Events do not cross threads one signal at a time: the worker appends them to a deque and the UI
thread drains it on a 30 Hz timer (:class:`QtRunner`), re-emitting each as :attr:`QtRunner.event`.
A fast engine can yield thousands of events a second; with a signal each, the UI thread would wake
for every one and compete with the engine for the GIL. Drained per frame, the UI's cost is bounded
by the frame rate, and an event is at most one frame (33 ms) late.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from kdgui.core.config import ExperimentConfig
from kdgui.core.errors import UserError
from kdgui.core.events import Event, RunControl, RunFailed, RunFinished

RunFn = Callable[..., Iterator[Event]]

#: After a stop request, a generator that keeps yielding for this long is closed by force.
STOP_GRACE_S = 5.0
#: How often the UI thread takes the events the worker has queued (ms; ≤ 30 Hz).
DRAIN_MS = 100


def engine_run_fn() -> RunFn:
    """The engine's ``run`` generator, imported only now (torch loads on first use)."""
    from kdgui.engine.session import run

    return run


def error_dict(exc: BaseException) -> dict[str, str]:
    """The ``what``/``fix``/``message`` dict of a RunFailed event for any exception."""
    if isinstance(exc, UserError):
        return exc.to_dict()
    return {
        "type": type(exc).__name__,
        "what": f"internal error: {type(exc).__name__}: {exc}",
        "fix": "This is a bug in KD Studio; please report it with the details below.",
        "message": "".join(traceback.format_exception(exc)),
        "internal": "1",
    }


class QtRunWorker(QObject):
    """Iterates one run generator on a QThread; queues its events; signals errors and the end."""

    errored = Signal(dict)
    done = Signal()

    def __init__(
        self,
        run_fn: RunFn,
        config: ExperimentConfig,
        out_dir: str | Path | None = None,
        *,
        resume: bool = False,
    ) -> None:
        super().__init__()
        self._run_fn = run_fn
        self._config = config.model_copy(deep=True)
        self._out_dir = out_dir
        self._resume = resume
        self.control = RunControl()
        #: Events waiting for the UI thread (deque appends and pops are thread-safe).
        self.queue: deque[Event] = deque()

    @Slot()
    def run(self) -> None:
        stop_seen: float | None = None
        ended = False
        gen: Iterator[Event] | None = None
        try:
            gen = self._run_fn(
                self._config, self._out_dir, control=self.control, resume=self._resume
            )
            for ev in gen:
                self.queue.append(ev)
                if isinstance(ev, (RunFinished, RunFailed)):
                    ended = True
                # Pause is the engine's to honour (it blocks between batches and reports it);
                # a generator that ignores a stop request is given up on after a grace period.
                if self.control.stop_requested:
                    stop_seen = stop_seen or time.monotonic()
                    if time.monotonic() - stop_seen > STOP_GRACE_S:
                        break
            if not ended and self.control.stop_requested:
                self.queue.append(RunFinished(run_dir=str(self._out_dir or ""), summary={},
                                            stopped=True))
        except Exception as exc:
            self.errored.emit(error_dict(exc))
        finally:
            close = getattr(gen, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
            self.done.emit()


class QtRunner(QObject):
    """Owns at most one running worker and its thread; the window talks only to this."""

    event = Signal(object)
    errored = Signal(dict)
    started = Signal()
    finished = Signal()
    paused_changed = Signal(bool)

    def __init__(self, run_fn: RunFn | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._run_fn = run_fn
        self._thread: QThread | None = None
        self._worker: QtRunWorker | None = None
        self._pending_error: dict[str, str] | None = None
        self._drain_timer = QTimer(self)
        self._drain_timer.setInterval(DRAIN_MS)
        self._drain_timer.timeout.connect(self.drain)

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def paused(self) -> bool:
        return self._worker is not None and self._worker.control.paused

    def start(
        self, config: ExperimentConfig, out_dir: str | Path | None = None, *, resume: bool = False
    ) -> None:
        if self.running:
            raise RuntimeError("a run is already in progress")
        run_fn = self._run_fn or engine_run_fn
        thread = QThread()
        thread.setObjectName("kdgui-run")
        worker = QtRunWorker(_LazyRun(run_fn) if run_fn is engine_run_fn else run_fn, config,
                             out_dir, resume=resume)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.errored.connect(self._on_error)
        worker.done.connect(thread.quit)
        thread.finished.connect(self._on_thread_finished)
        self._thread, self._worker = thread, worker
        self._pending_error = None
        thread.start()
        self._drain_timer.start()
        self.started.emit()

    def drain(self) -> int:
        """Hand every queued event to :attr:`event`, in order; returns how many."""
        worker = self._worker
        if worker is None:
            return 0
        n = 0
        queue = worker.queue
        while queue:
            self.event.emit(queue.popleft())
            n += 1
        return n

    def _on_error(self, error: dict[str, str]) -> None:
        # Reported after the events that came before it (drained when the thread ends).
        self._pending_error = error

    def pause(self) -> None:
        if self._worker is not None and not self._worker.control.stop_requested:
            self._worker.control.pause()
            self.paused_changed.emit(True)

    def resume(self) -> None:
        if self._worker is not None:
            self._worker.control.resume()
            self.paused_changed.emit(False)

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.control.stop()
            self.paused_changed.emit(False)

    def wait(self, timeout_ms: int = 10000) -> bool:
        """Block until the thread ends (used when the application quits)."""
        thread = self._thread
        return True if thread is None else thread.wait(timeout_ms)

    def _on_thread_finished(self) -> None:
        self._drain_timer.stop()
        self.drain()
        error, self._pending_error = self._pending_error, None
        thread, worker = self._thread, self._worker
        self._thread, self._worker = None, None
        if error is not None:
            self.errored.emit(error)
        if worker is not None:
            worker.deleteLater()
        if thread is not None:
            thread.deleteLater()
        self.finished.emit()


class _LazyRun:
    """Calls :func:`engine_run_fn` on the worker thread, so importing torch never blocks the UI."""

    def __init__(self, factory: Callable[[], RunFn]) -> None:
        self._factory = factory

    def __call__(self, *args: Any, **kwargs: Any) -> Iterator[Event]:
        return self._factory()(*args, **kwargs)


__all__ = ["QtRunWorker", "QtRunner", "engine_run_fn", "error_dict"]
