"""The window's one background worker: values, results, errors, pause and stop between yields."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from kdgui.core.errors import DataError
from kdgui.core.events import RunControl, RunFailed
from kdgui.gui.qt_worker import QtWorker, error_dict, run_off_ui_thread


def _collect(worker: QtWorker) -> dict[str, list]:
    seen: dict[str, list] = {"yielded": [], "returned": [], "errored": [], "finished": []}
    worker.yielded.connect(seen["yielded"].append)
    worker.returned.connect(seen["returned"].append)
    worker.errored.connect(seen["errored"].append)
    worker.finished.connect(lambda: seen["finished"].append(True))
    return seen


def test_a_generator_yields_in_order_then_returns_its_value(qtbot) -> None:
    def gen() -> Iterator[int]:
        for i in range(5):
            yield i * i
        return "done"  # a generator's return value is what `returned` carries

    worker = QtWorker(gen, needs_engine=False)
    seen = _collect(worker)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    assert seen == {"yielded": [0, 1, 4, 9, 16], "returned": ["done"], "errored": [],
                    "finished": [True]}
    assert not worker.running and worker.result == "done"


def test_a_plain_function_returns_and_a_user_error_becomes_its_what_fix_dict(qtbot) -> None:
    ok = QtWorker(lambda: {"answer": 42}, needs_engine=False)
    seen = _collect(ok)
    with qtbot.waitSignal(ok.finished, timeout=5000):
        ok.start()
    assert seen["returned"] == [{"answer": 42}] and seen["errored"] == []

    def bad() -> None:
        raise DataError("dataset 'x' not found", "Check the path.")

    failing = QtWorker(bad, needs_engine=False)
    seen = _collect(failing)
    with qtbot.waitSignal(failing.finished, timeout=5000):
        failing.start()
    assert seen["returned"] == []
    (error,) = seen["errored"]
    assert (error["what"], error["fix"], error["type"]) == (
        "dataset 'x' not found", "Check the path.", "DataError")


def test_a_bug_is_an_internal_error_with_its_traceback(qtbot) -> None:
    def buggy() -> Iterator[int]:
        yield 1
        raise ZeroDivisionError("division by zero")

    worker = QtWorker(buggy, needs_engine=False)
    seen = _collect(worker)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    assert seen["yielded"] == [1]
    (error,) = seen["errored"]
    assert error["internal"] == "1" and "ZeroDivisionError" in error["what"]
    assert "Traceback" in error["message"] and "buggy" in error["message"]
    assert "bug" in error["fix"]


def test_a_job_that_fails_with_a_runfailed_event_reports_the_same_error_shape(qtbot) -> None:
    failure = DataError("no images", "Pick a folder with images.").to_dict()

    def job() -> Iterator[object]:
        yield "progress"
        yield RunFailed(run_dir="", error=failure)

    worker = QtWorker(job, needs_engine=False)
    seen = _collect(worker)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    assert [type(v).__name__ for v in seen["yielded"]] == ["str", "RunFailed"]
    assert seen["errored"] == [failure] and seen["returned"] == []
    assert error_dict(DataError("no images", "Pick a folder with images.")) == failure


def test_pause_and_stop_act_between_yields_of_a_generator_that_ignores_them(qtbot) -> None:
    produced: list[int] = []
    gate = threading.Event()

    def gen() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i
            if i == 2:
                gate.wait(5)  # hold here until the test has asked to pause

    worker = QtWorker(gen, needs_engine=False)
    seen = _collect(worker)
    worker.start()
    qtbot.waitUntil(lambda: len(produced) == 3, timeout=5000)
    worker.pause()
    gate.set()
    qtbot.wait(300)
    assert worker.paused and len(produced) == 4  # value 3 was made, the next one waits
    worker.stop()
    qtbot.waitUntil(lambda: not worker.running, timeout=5000)
    assert worker.aborted and len(produced) == 4
    assert seen["yielded"] == [0, 1, 2, 3] and seen["finished"] == [True]


def test_a_cooperative_generator_is_never_cut_off_after_stop(qtbot) -> None:
    """The flaw of issue 12.4: stop must let the engine finish writing, however long it takes."""
    control = RunControl()
    wrote: list[str] = []

    def run() -> Iterator[str]:
        while not control.stop_requested:
            yield "step"
            threading.Event().wait(0.01)
        for part in ("measure", "student", "summary"):  # slow saving after the stop request
            threading.Event().wait(0.2)
            wrote.append(part)
            yield part
        return "saved"

    worker = QtWorker(run, control=control, needs_engine=False)
    seen = _collect(worker)
    worker.start()
    qtbot.waitUntil(lambda: len(seen["yielded"]) >= 3, timeout=5000)
    worker.stop()
    qtbot.waitUntil(lambda: not worker.running, timeout=10000)
    assert wrote == ["measure", "student", "summary"]
    assert seen["yielded"][-3:] == ["measure", "student", "summary"]
    assert seen["returned"] == ["saved"] and not worker.aborted


def test_a_worker_that_needs_the_engine_waits_for_the_warm_up(qtbot) -> None:
    import sys

    worker = QtWorker(lambda: "torch" in sys.modules and "torch._dynamo" in sys.modules)
    with qtbot.waitSignal(worker.returned, timeout=120000) as got:
        worker.start()
    assert got.args == [True]
    qtbot.waitUntil(lambda: not worker.running, timeout=5000)


def test_run_off_ui_thread_returns_the_value_or_raises_the_error() -> None:
    assert run_off_ui_thread(lambda: threading.current_thread().name,
                             needs_engine=False) == "kdgui-torch-probe"
    with pytest.raises(DataError, match="nothing here"):
        run_off_ui_thread(lambda: (_ for _ in ()).throw(DataError("nothing here")),
                          needs_engine=False)


def test_a_worker_whose_owner_was_deleted_delivers_nothing_but_still_ends(qtbot) -> None:
    """A panel closed while its probe loads: the thread runs to its end, no slot is called on
    the deleted widget (that raised "Internal C++ object already deleted")."""
    from PySide6.QtWidgets import QLabel

    label = QLabel("loading")
    gate = threading.Event()
    worker = QtWorker(lambda: gate.wait(5) and "loaded", needs_engine=False, owner=label)
    worker.returned.connect(label.setText)
    got: list[object] = []
    worker.returned.connect(got.append)
    worker.start()
    label.deleteLater()
    qtbot.waitUntil(lambda: worker._orphaned, timeout=5000)
    gate.set()
    assert worker.wait(5000)
    assert got == [] and not worker.running
