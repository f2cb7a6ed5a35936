"""The window's one background worker: runs, sweeps, probes and loading all go through it.

:class:`QtWorker` follows superqt's ``GeneratorWorker``: it runs a function on its own QThread;
when the function returns a generator, the worker iterates it and reports each value as
:attr:`QtWorker.yielded`, checking for pause and stop between two yields. The end comes as
:attr:`~QtWorker.returned` (the function's or generator's return value), or as
:attr:`~QtWorker.errored` with the ``what``/``fix`` dict of :mod:`kdgui.core.errors` (never an
exception object and never a traceback on stderr), then always :attr:`~QtWorker.finished`.
Engine jobs report a failure as a final :class:`~kdgui.core.events.RunFailed` event rather than
an exception; the worker passes that event on *and* emits its error as ``errored``, so a caller
handles every failure in one slot.

Why one worker: the window had three QThread classes with three error shapes; a sweep's
internal error lost its traceback and a probe's could not be told from a user error.

Pause and stop. A generator that is handed the worker's :class:`RunControl` (``control=``)
honours it itself: the engine checks it between batches, so pause takes effect within one batch,
and stop lets the engine finish the run folder (summary, student, what was measured) before the
generator returns. The worker never abandons such a generator: a stopped run that is cut off
mid-write is a lost run (issue 12.4). A generator that knows nothing of the control is paused
and closed by the worker between yields, as superqt does.

Values do not cross threads one signal at a time: the thread appends them to a deque and the UI
thread drains it every :data:`DRAIN_MS`. A run yields thousands of events a second; with a
queued signal each, the UI thread would wake for every one and compete for the GIL.

Torch. Every worker that needs the engine (the default) first waits for
:func:`kdgui.engine.jobs.warm_up`, which imports torch and its lazily loaded parts once, under a
lock. Two threads importing torch at once crashed the window or left ``torch._dynamo``
half-imported ("circular import", issue 12.1); the window starts the warm-up at launch.
"""

from __future__ import annotations

import atexit
import threading
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal

from kdgui.core.errors import UserError
from kdgui.core.events import RunControl, RunFailed

#: How often the UI thread takes the values a worker has queued (ms): every frame until its
#: owner calls :meth:`QtWorker.steady` (the run does at its first step: the first live point
#: waits at most a frame), then :data:`STEADY_DRAIN_MS` (each wake-up takes the GIL from the
#: training thread, and the plots redraw only a few times a second anyway).
DRAIN_MS = 33
STEADY_DRAIN_MS = 100

#: Workers whose thread is still running. Held here (not by a Qt parent) so that closing the
#: widget that started one never destroys a running QThread, which aborts the process.
_RUNNING: set[QtWorker] = set()


def error_dict(exc: BaseException) -> dict[str, str]:
    """The one error shape of the window: ``what``/``fix`` (+ ``message``, ``type``).

    A :class:`UserError` is shown as its author wrote it; anything else is a bug, shown as such
    with the traceback under ``message`` (the message box's details) and ``internal`` set.
    """
    if isinstance(exc, UserError):
        return exc.to_dict()
    return {
        "type": type(exc).__name__,
        "what": f"internal error: {type(exc).__name__}: {exc}",
        "fix": "This is a bug in KD Studio; please report it with the details below.",
        "message": "".join(traceback.format_exception(exc)),
        "internal": "1",
    }


def engine_run_fn() -> Callable[..., Any]:
    """The engine's ``run`` job, resolved lazily (importing the facade imports no torch)."""
    from kdgui.engine import jobs

    return jobs.run


def ensure_engine() -> None:
    """Block until the engine (torch) is imported; import it here if nobody has yet."""
    from kdgui.engine import jobs

    jobs.warm_up()


def wait_for_workers(timeout_ms: int = 10000, *, deliver: bool = True) -> bool:
    """Wait for every running worker's thread (the window calls this when it closes).

    ``deliver``: also emit what they queued (on this, the UI thread); off at interpreter exit,
    when the widgets their signals reach may be gone.
    """
    if not deliver:
        return all(worker._thread.wait(timeout_ms) for worker in list(_RUNNING))
    return all(worker.wait(timeout_ms) for worker in list(_RUNNING))


# A QThread destroyed while running aborts the process ("QThread: Destroyed while thread is
# still running"): at exit, let the workers that are still busy (a torch import) end first.
atexit.register(wait_for_workers, 30000, deliver=False)


class WorkerRequest:
    """One job a view asked of its worker, ``key`` saying what, that a newer request supersedes.

    ``cancelled`` once a newer one supersedes it: read on the worker thread before the work
    starts (one superseded while it waited for the engine warm-up does nothing) and by the slots
    that would show its result (a late result is dropped); ``started`` once the work began. The
    Models view's prepares and the Compare view's comparisons use it: the user's latest pick
    wins, and a pick made while an earlier one waits costs no work for the earlier one.
    """

    def __init__(self, key: Any) -> None:
        self.key, self.cancelled, self.started = key, False, False


class _Thread(QThread):
    """Runs :meth:`QtWorker._work`; a QThread subclass so no object has to change threads."""

    def __init__(self, work: Callable[[], None], name: str) -> None:
        super().__init__()
        self.setObjectName(name)
        self._work = work

    def run(self) -> None:
        self._work()


class QtWorker(QObject):
    """``QtWorker(fn)``, connect its signals, then :meth:`start`; ``fn`` takes no arguments.

    ``control``: a :class:`RunControl` that ``fn``'s generator honours itself (see the module
    docstring); without one, the worker pauses and stops the generator between yields.
    ``needs_engine``: wait for the engine warm-up before calling ``fn`` (off only for functions
    that never touch torch, such as the tests' fake engine and the warm-up itself).
    ``owner``: the widget the results are for; once it is destroyed the worker still runs to its
    end (a QThread must not be destroyed while running) but delivers nothing more, so no slot
    touches a deleted widget.
    """

    started = Signal()
    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(dict)
    finished = Signal()

    def __init__(
        self,
        fn: Callable[[], Any],
        *,
        control: RunControl | None = None,
        needs_engine: bool = True,
        name: str = "kdgui-worker",
        owner: QObject | None = None,
    ) -> None:
        super().__init__()
        self._orphaned = False
        if owner is not None:
            owner.destroyed.connect(self._orphan)
        self._fn = fn
        self._cooperative = control is not None
        self.control = control if control is not None else RunControl()
        self._needs_engine = needs_engine
        #: ("yielded" | "returned" | "errored", value), appended by the thread, drained here.
        self._queue: deque[tuple[str, Any]] = deque()
        self._thread = _Thread(self._work, name)
        self._thread.finished.connect(self._on_thread_finished)
        self._timer = QTimer(self)
        self._timer.setInterval(DRAIN_MS)
        self._timer.timeout.connect(self.drain)
        self.running = False
        self.aborted = False
        self.result: Any = None
        self.error: dict[str, str] | None = None
        self._failure: dict[str, str] | None = None

    # -- control (UI thread) ------------------------------------------------------------------
    def start(self) -> QtWorker:
        if self.running:
            raise RuntimeError("this worker is already running")
        self.running = True
        _RUNNING.add(self)
        self._thread.start()
        self._timer.start()
        self.started.emit()
        return self

    def pause(self) -> None:
        if not self.control.stop_requested:
            self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def stop(self) -> None:
        """Ask to stop: a cooperative generator finishes its work, any other is closed."""
        self.control.stop()

    @property
    def paused(self) -> bool:
        return self.control.paused

    def wait(self, timeout_ms: int = 10000) -> bool:
        """Block until the thread has ended (the values it queued are then drained)."""
        if not self._thread.wait(timeout_ms):
            return False
        if self.running:
            self._on_thread_finished()
        return True

    def steady(self) -> None:
        """From now on drain every :data:`STEADY_DRAIN_MS` instead of every frame."""
        self._timer.setInterval(STEADY_DRAIN_MS)

    def _orphan(self) -> None:
        self._orphaned = True

    def drain(self) -> int:
        """Emit every queued value on this (the UI) thread, in order; returns how many."""
        n = 0
        queue = self._queue
        while queue and not self._orphaned:
            kind, value = queue.popleft()
            n += 1
            if kind == "yielded":
                self.yielded.emit(value)
            elif kind == "returned":
                self.result = value
                self.returned.emit(value)
            else:
                self.error = value
                self.errored.emit(value)
        return n

    def _on_thread_finished(self) -> None:
        if not self.running:
            return
        self._thread.wait(2000)  # "finished" is emitted just before the thread really ends
        self._timer.stop()
        self.drain()
        self.running = False
        _RUNNING.discard(self)
        if not self._orphaned:
            self.finished.emit()

    # -- the thread ---------------------------------------------------------------------------
    def _work(self) -> None:
        put = self._queue.append
        try:
            if self._needs_engine:
                ensure_engine()
            result = self._fn()
            if _is_generator(result):
                result = self._iterate(result)
            if self._failure is None:
                put(("returned", result))
        except Exception as exc:
            put(("errored", error_dict(exc)))

    def _iterate(self, gen: Any) -> Any:
        put = self._queue.append
        control = self.control
        try:
            while True:
                try:
                    value = next(gen)
                except StopIteration as end:
                    return end.value
                put(("yielded", value))
                if isinstance(value, RunFailed) and self._failure is None:
                    # A job reports failure as its last event: the same error shape.
                    self._failure = dict(value.error)
                    put(("errored", self._failure))
                if self._cooperative:
                    continue  # the generator pauses and stops itself; never cut it off
                control.wait_while_paused()
                if control.stop_requested:
                    self.aborted = True
                    return None
        finally:
            gen.close()


def _is_generator(value: Any) -> bool:
    return hasattr(value, "__next__") and hasattr(value, "close") and hasattr(value, "send")


def run_off_ui_thread(fn: Callable[[], Any], *, needs_engine: bool = True) -> Any:
    """Run a *short* torch computation on a throw-away thread and wait for its result.

    For the few synchronous probes the UI needs at once (the pairing view's shapes). Why a
    thread: torch's CPU thread pool belongs to the thread that first runs an op and lives as
    long as it; owned by the UI thread, its idle pool competed with the run's and training in
    the window became 2-3× slower on two cores. The engine warm-up is awaited first.
    """
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            if needs_engine:
                ensure_engine()
            result["value"] = fn()
        except BaseException as exc:  # re-raised on the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=work, name="kdgui-torch-probe")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


__all__ = ["DRAIN_MS", "STEADY_DRAIN_MS", "QtWorker", "WorkerRequest", "engine_run_fn", "ensure_engine", "error_dict", "run_off_ui_thread",
           "wait_for_workers"]
