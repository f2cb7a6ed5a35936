"""Runs one slow function (load a model, read a dataset) off the UI thread.

The window uses it for anything that imports torch or touches the disk at length; the result or
a ``what``/``fix`` error dict comes back as a signal on the UI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from kdgui.gui.qt_worker import error_dict


class _TaskWorker(QObject):
    done = Signal(object)
    errored = Signal(dict)
    ended = Signal()

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__()
        self._fn = fn

    @Slot()
    def run(self) -> None:
        try:
            self.done.emit(self._fn())
        except Exception as exc:
            self.errored.emit(error_dict(exc))
        finally:
            self.ended.emit()


#: Threads of tasks still running, held here so that closing the widget that started a task
#: never destroys a running QThread (Qt aborts the process when that happens).
_RUNNING: set[QThread] = set()


def wait_for_tasks(timeout_ms: int = 10000) -> bool:
    """Wait for every running task's thread (the window calls this when it closes)."""
    return all(thread.wait(timeout_ms) for thread in list(_RUNNING))


class QtTask(QObject):
    """``QtTask(fn)`` then connect :attr:`done` / :attr:`errored`, then :meth:`start`."""

    done = Signal(object)
    errored = Signal(dict)
    finished = Signal()

    def __init__(self, fn: Callable[[], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._worker = _TaskWorker(fn)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.done.connect(self.done)
        self._worker.errored.connect(self.errored)
        self._worker.ended.connect(self._thread.quit)
        self._thread.finished.connect(self._on_finished)
        self.running = False

    def start(self) -> None:
        self.running = True
        _RUNNING.add(self._thread)  # released in _on_finished, on the UI thread
        self._thread.start()

    def wait(self, timeout_ms: int = 10000) -> bool:
        return self._thread.wait(timeout_ms)

    def _on_finished(self) -> None:
        self._thread.wait(2000)  # "finished" comes just before the thread really ends
        _RUNNING.discard(self._thread)
        self.running = False
        self.finished.emit()


def off_main_thread(fn: Callable[[], Any]) -> Any:
    """Run a *short* torch computation on a throw-away thread and wait for it.

    Why: torch's CPU thread pool (OpenMP) belongs to the thread that first runs an op and lives
    as long as that thread. If the UI thread ever ran one, its idle pool competes with the run
    worker's pool on a small machine, and training in the window became 2–3× slower (measured
    with 2 cores). A pool made here dies with the thread.
    """
    import threading

    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # re-raised on the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=work, name="kdgui-torch-probe")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")
