"""Teacher, data and student checked together before Run, in the window's words.

Whenever the data, teacher or student section changes (and the config is otherwise valid), the
engine's ``check_setup`` job loads them as a run would, off the UI thread, a moment after the
last edit. What it finds becomes an issue of the config state: shown in red where it was chosen
(1 · Teacher, 2 · Data, 3 · Student) and in 6 · Run, and Run stays disabled until it is fixed.
While a run is in progress no check starts (:meth:`QtSetupCheck.hold`): the run loads the same
data and models itself, and a check loading them beside it slowed the run's start and its
measurements (Run pressed at once after launch); a run that starts is the check's answer for
its config (:meth:`QtSetupCheck.passed`). The engine's messages are written for the CLI ("--num-classes", "pass --arch"); the two common
mismatches are worded here from the job's numbers, and other messages have their flags replaced
by the place in the window where the same setting lives.
"""

from __future__ import annotations

import json
import re
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from kdgui.gui.qt_config_state import Issue, QtConfigState

#: Wait this long after the last edit before checking (typing a path edits it many times).
DEBOUNCE_MS = 400
SECTIONS = ("data", "teacher", "student")

#: CLI flags in engine messages, and where a window user sets the same thing.
FLAG_WORDS = (
    (r"\s*\(--num-classes\)", ""),
    (r"[Pp]ass --arch with", "Choose, under 'Architecture and options' in 1 · Teacher,"),
    (r"--arch", "the architecture (arch) in 1 · Teacher"),
    (r"--num-classes", "num_classes in 1 · Teacher"),
    (r"[Pp]ass --trust", "tick 'Trust this file' in 1 · Teacher"),
    (r"--trust", "'Trust this file' in 1 · Teacher"),
    (r"--download", "'download' in 2 · Data"),
    (r"--data", "the dataset in 2 · Data"),
    (r"--student", "the student in 3 · Student"),
)


def window_words(text: str) -> str:
    """``text`` with the CLI's flags replaced by where the window sets the same thing."""
    for pattern, words in FLAG_WORDS:
        text = re.sub(pattern, words, text)
    return text


def setup_issues(result: dict[str, Any]) -> list[Issue]:
    """The issues of one ``check_setup`` result (none when it passed)."""
    if result.get("ok"):
        return []
    error = result.get("error") or {}
    data_name = result.get("data_name") or "the data"
    part = result.get("part", "teacher")
    if "teacher_channels" in result:
        t, d = result["teacher_channels"], result["data_channels"]
        return [Issue(("teacher", "path"),
                      f"The teacher takes {t}-channel images but {data_name} has {d}-channel "
                      f"images",
                      f"Choose a teacher made for {d}-channel images in 1 · Teacher, or data "
                      f"with {t} channels in 2 · Data.")]
    if "teacher_classes" in result:
        t, d = result["teacher_classes"], result["data_classes"]
        return [Issue(("teacher", "path"),
                      f"The teacher predicts {t} classes but {data_name} has {d}",
                      f"Choose data with {t} classes in 2 · Data, or a teacher trained on "
                      f"these {d} classes in 1 · Teacher.")]
    where = {"data": ("data", "spec"), "student": ("student",)}.get(part, ("teacher", "path"))
    what = error.get("what") or "the setup does not work"
    prefix = {"data": "The data cannot be used", "student": "The student does not fit"}.get(
        part, "The teacher cannot be used")
    return [Issue(where, f"{prefix}: {window_words(what)}", window_words(error.get("fix", "")))]


class QtSetupCheck(QObject):
    """Re-runs ``check_setup`` on the window's worker when data, teacher or student change."""

    #: The last result (``check_setup``'s dict), after its issues were set.
    checked = Signal(dict)

    def __init__(self, state: QtConfigState, parent: QObject | None = None,
                 job: Any = None) -> None:
        super().__init__(parent)
        self.state = state
        self._job = job
        self._checked_key: str | None = None
        self._worker: Any = None
        self.result: dict[str, Any] | None = None
        self._held = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.check)
        state.changed.connect(self._changed)
        self._changed()

    @property
    def checking(self) -> bool:
        return self._worker is not None and self._worker.running

    def _key(self) -> str | None:
        config = self.state.config
        if config is None:
            return None
        data = config.model_dump(mode="json")
        return json.dumps({k: data.get(k) for k in SECTIONS}, sort_keys=True, default=str)

    def _changed(self) -> None:
        key = self._key()
        if key is not None and key != self._checked_key:
            self._timer.start()

    def hold(self, held: bool) -> None:
        """No check starts while held (a run is in progress); released, a pending one does."""
        self._held = held
        if not held:
            self._changed()

    def passed(self, config: Any) -> None:
        """A run of ``config`` got past its set-up: its data, teacher and student fit."""
        data = config.model_dump(mode="json")
        key = json.dumps({k: data.get(k) for k in SECTIONS}, sort_keys=True, default=str)
        if key == self._key() and not self.checking:
            self._checked_key = key
            self._timer.stop()
            self.state.set_external_issues("setup", [])

    def check(self) -> None:
        """Check the current setup now (later, if a check is still running or a run holds it)."""
        if self.checking or self._held:
            return  # _done (or hold(False)) looks again
        key, config = self._key(), self.state.config
        if key is None or config is None or key == self._checked_key:
            return
        from kdgui.gui.qt_worker import QtWorker

        job = self._job
        if job is None:
            from kdgui.engine import jobs

            job = jobs.check_setup
        self._checked_key = key
        worker = QtWorker(lambda: job(config), needs_engine=self._job is None,
                          name="kdgui-setup-check")
        worker.returned.connect(self._done)
        worker.errored.connect(self._failed)
        worker.finished.connect(self._changed)  # the config may have moved on meanwhile
        self._worker = worker
        worker.start()

    def _done(self, result: dict[str, Any]) -> None:
        if self._key() != self._checked_key:
            return  # a stale answer: the next check replaces it
        self.result = result
        self.state.set_external_issues("setup", setup_issues(result))
        self.checked.emit(result)

    def _failed(self, _error: dict[str, str]) -> None:
        """An internal error of the check itself never blocks Run (the run reports it)."""
        self.state.set_external_issues("setup", [])


__all__ = ["QtSetupCheck", "setup_issues", "window_words"]
