"""The Classroom view: pick a lesson, read it, run it in the background, see what it measured.

Every classroom lesson (:data:`kdgui.engine.jobs.LESSONS`) is listed. Selecting one shows what a
teacher reads out: the explanation, the formula, what to look at and the published figure it is
measured against. **Run lesson** starts the engine's ``run_lesson`` job on the window's one
background worker (:class:`~kdgui.gui.qt_worker.QtWorker`), so the window stays responsive; a
progress bar and a log follow the job's events, and **Stop** asks the job to stop (a sweep or a
run finishes its current batch and keeps what completed; a lesson with its own experiment ends
without a result). At the end the view shows a headline, the published figure beside the
measured one, and the lesson's chart (:mod:`kdgui.gui.lesson_results` chooses what to draw).

Torch is never imported here: the lessons' list and text come from the facade without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from kdgui.core.errors import UserError
from kdgui.core.events import (
    EpochEvent,
    JobFinished,
    JobProgress,
    LogEvent,
    RunControl,
    RunFinished,
    StageEvent,
)
from kdgui.core.run_folders import new_run_dir
from kdgui.gui import lesson_results
from kdgui.gui.qt_lesson_chart import QtLessonChart
from kdgui.gui.qt_lesson_table import QtLessonTable
from kdgui.gui.qt_worker import QtWorker

#: ``lesson_fn(name, out_dir, control=..., data=...)`` -> the job's events (jobs.run_lesson).
LessonFn = Callable[..., Iterator[Any]]


def _default_lesson_fn() -> LessonFn:
    from kdgui.engine import jobs

    return jobs.run_lesson


class QtClassroomView(QWidget):
    """The lessons, one at a time: text, run/stop, progress, published vs measured, chart."""

    lesson_finished = Signal(object)  # the lesson_results.Outcome shown

    def __init__(self, parent: QWidget | None = None, *, lessons_root: str | Path = "runs/lessons",
                 lesson_fn: LessonFn | None = None) -> None:
        super().__init__(parent)
        from kdgui.engine.jobs import LESSONS

        self.lessons = {lesson.name: lesson for lesson in LESSONS}
        self.lessons_root = Path(lessons_root)
        self._lesson_fn = lesson_fn
        self._worker: QtWorker | None = None
        self._end: tuple[str, Any] | None = None
        self.outcome: lesson_results.Outcome | None = None
        self.out_dir: Path | None = None
        self.last_error: dict[str, Any] | None = None

        self.list = QListWidget()
        self.list.setWordWrap(True)
        # No item spacing: with it, a wrapped title is sized for three lines but painted in two
        # with '…' and a blank line ("Deep Compression, all three stages …" at 180 px).
        self.list.setSpacing(0)
        for lesson in LESSONS:
            item = QListWidgetItem(lesson.title)
            item.setData(Qt.ItemDataRole.UserRole, lesson.name)
            item.setToolTip(f"{lesson.title} ({lesson.name})")
            self.list.addItem(item)
        self.list.currentItemChanged.connect(lambda *_: self._show_lesson())
        self._fit_list()
        self.text = QTextBrowser()
        self.text.setOpenExternalLinks(False)
        self.data = QLineEdit()
        self.data.setPlaceholderText("automatic: MNIST when found, else the embedded 8×8 digits")
        self.data.setToolTip("mnist:ROOT (ROOT holds MNIST/raw; the t10k files are enough) or "
                             "digits. Searched: $KDGUI_MNIST_ROOT, ./data, the shared data "
                             "folder.")
        self.data_label = QLabel("data")
        self.run_button = QPushButton("Run lesson")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        for button in (self.run_button, self.stop_button):
            button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.run_button.clicked.connect(lambda: self.start())
        self.stop_button.clicked.connect(self.stop)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("Pick a lesson, read it, then run it.")
        self.status.setWordWrap(True)
        self.headline = QLabel()
        self.headline.setWordWrap(True)
        self.headline.setStyleSheet("font-weight: bold")
        self.compare = QtLessonTable()
        self.chart = QtLessonChart()
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setMaximumBlockCount(500)
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.log.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log.setPlaceholderText("the lesson's log")

        controls = QHBoxLayout()
        controls.addWidget(self.data_label)
        controls.addWidget(self.data, 1)
        controls.addWidget(self.run_button)
        controls.addWidget(self.stop_button)
        controls.addStretch(0)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.text, 1)
        top_layout.addLayout(controls)
        top_layout.addWidget(self.progress)
        top_layout.addWidget(self.status)
        results = QWidget()
        res_layout = QVBoxLayout(results)
        res_layout.setContentsMargins(0, 0, 0, 0)
        res_layout.addWidget(self.headline)
        row = QSplitter(Qt.Orientation.Horizontal)
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.compare)
        left.addWidget(self.log)
        left.setSizes([300, 120])
        row.addWidget(left)
        row.addWidget(self.chart)
        row.setSizes([540, 460])
        res_layout.addWidget(row, 1)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(top)
        right.addWidget(results)
        right.setSizes([330, 420])
        outer = QSplitter(Qt.Orientation.Horizontal)
        outer.addWidget(self.list)
        outer.addWidget(right)
        outer.setSizes([190, 900])
        layout = QVBoxLayout(self)
        layout.addWidget(outer)
        # Reopen on the lesson run last (its result shows), else on the first one.
        last = next((f.name.split("-", 2)[-1] for f in self._folders()
                     if f.name.split("-", 2)[-1] in self.lessons), None)
        self.list.setCurrentRow(list(self.lessons).index(last) if last else 0)

    def _fit_list(self) -> int:
        """The lesson list is at least as wide as the longest word of a title in the current
        font, so wrapping never cuts a word ("What distillat", "How far can w" in presentation
        mode at 1024×640); returns that width."""
        metrics = self.list.fontMetrics()
        longest = max(metrics.horizontalAdvance(word) for lesson in self.lessons.values()
                      for word in lesson.title.split())
        width = (longest + self.list.verticalScrollBar().sizeHint().width()
                 + 2 * self.list.frameWidth() + metrics.height())
        self.list.setMinimumWidth(width)
        return width

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:  # presentation mode: 1.5× the font
            self._fit_list()

    # -- choosing -------------------------------------------------------------------------------
    @property
    def lesson(self) -> Any:
        item = self.list.currentItem()
        return self.lessons[item.data(Qt.ItemDataRole.UserRole)] if item else None

    def select(self, name: str) -> None:
        """Show the lesson ``name`` (its text; the last result is cleared)."""
        names = list(self.lessons)
        if name not in names:
            raise ValueError(f"no lesson '{name}'; use one of: {', '.join(names)}")
        self.list.setCurrentRow(names.index(name))

    def _show_lesson(self) -> None:
        lesson = self.lesson
        if lesson is None:
            return
        self.text.setHtml(lesson_results.lesson_html(lesson))
        takes_data = bool(lesson.runner)
        self.data.setVisible(takes_data)
        self.data_label.setVisible(takes_data)
        if not self.running:
            self._clear_result()
            self.status.setText(self._what_runs(lesson))
            self.show_last_result()

    def _folders(self, name: str | None = None) -> list[Path]:
        """This view's lesson folders (of one lesson), newest first (names start with a time)."""
        if not self.lessons_root.is_dir():
            return []
        pattern = f"*-{name}" if name else "*"
        return sorted((p for p in self.lessons_root.glob(pattern) if p.is_dir()), reverse=True)

    def show_last_result(self) -> bool:
        """Show the newest finished result of the selected lesson, if one is on disk (lessons
        run before the class stay on screen without being run again)."""
        lesson = self.lesson
        for folder in self._folders(lesson.name) if lesson is not None else []:
            outcome = lesson_results.outcome_from_folder(lesson, folder)
            if outcome is not None:
                self.show_outcome(outcome)
                self.status.setText(f"Last result, from {folder}. Run lesson measures again.")
                return True
        return False

    @staticmethod
    def _what_runs(lesson: Any) -> str:
        if lesson.runner:
            return ("Its own experiment, beside the paper: MNIST when its files are found (or "
                    "as given under data), else the embedded 8×8 digits — the log says which.")
        if lesson.vary:
            return (f"A sweep of {lesson.vary} over {', '.join(map(str, lesson.values))} on "
                    "the embedded digits with the demo teacher (under a minute on two cores).")
        return "One run on the embedded digits; its compression stages are the comparison."

    def _clear_result(self) -> None:
        self.outcome = None
        self.headline.clear()
        self.compare.setRowCount(0)
        self.chart.clear_chart()
        self.log.clear()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)

    # -- running --------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.running

    def start(self, out_dir: str | Path | None = None) -> bool:
        """Run the selected lesson in the background; False (with a message) if it cannot."""
        lesson = self.lesson
        if lesson is None or self.running:
            return False
        data = self.data.text().strip() or None if lesson.runner else None
        if data is not None:
            from kdgui.engine.jobs import check_lesson_data

            try:
                check_lesson_data(lesson, data)
            except UserError as exc:
                self._show_error(exc.to_dict())
                return False
        self._clear_result()
        self.last_error = None
        self._end = None
        self.out_dir = Path(out_dir) if out_dir else new_run_dir(self.lessons_root, lesson.name)
        fn = self._lesson_fn or _default_lesson_fn()
        control = RunControl()
        name, out = lesson.name, self.out_dir
        worker = QtWorker(lambda: fn(name, out, control=control, data=data), control=control,
                          name="kdgui-lesson", owner=self)
        worker.yielded.connect(self._on_event)
        worker.errored.connect(self._show_error)
        worker.finished.connect(self._on_done)
        self._worker = worker
        self.progress.setRange(0, 0)  # busy until the job says how far it is
        self.status.setText(f"Running {lesson.title}… (folder {out})")
        self.run_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.list.setEnabled(False)
        worker.start()
        return True

    def stop(self) -> None:
        if self._worker is not None and self.running:
            self._worker.stop()
            self.stop_button.setEnabled(False)
            self.status.setText("Stopping after the current batch…")

    def shutdown(self) -> None:
        """The window is closing: stop a lesson still running (its folder keeps what finished)."""
        if self._worker is not None and self.running:
            self._worker.stop()
            self._worker.wait(5000)

    def wait(self, ms: int = 60000) -> bool:
        return self._worker.wait(ms) if self._worker is not None else True

    def _log(self, text: str) -> None:
        self.log.appendPlainText(text)

    def _on_event(self, event: Any) -> None:
        from kdgui.engine import jobs

        if isinstance(event, JobProgress):
            self.progress.setRange(0, max(event.total, 1))
            self.progress.setValue(event.done)
            self.status.setText(f"step {event.done} of {event.total}: {event.message}")
        elif isinstance(event, LogEvent):
            self._log(event.message)
        elif isinstance(event, JobFinished):
            self._end = ("lesson", event.result)
        elif isinstance(event, jobs.SweepStarted):
            self.progress.setRange(0, max(event.total, 1))
            self.progress.setValue(0)
        elif isinstance(event, jobs.SweepRunEvent) and isinstance(event.event, EpochEvent):
            e = event.event
            self.status.setText(f"run {event.index + 1} of {event.total} ({event.value}): "
                                f"epoch {e.epoch} ({e.stage}), val {e.val_accuracy:.1%}")
        elif isinstance(event, jobs.SweepRunDone):
            self.progress.setValue(event.index + 1)
            acc = (event.row or {}).get("accuracy")
            self._log(f"{self.lesson.vary} = {event.value}: {event.status}"
                      + (f", accuracy {acc:.1%}" if isinstance(acc, float) else ""))
        elif isinstance(event, jobs.SweepFinished):
            self._end = ("sweep", event.rows)
        elif isinstance(event, EpochEvent):
            self.status.setText(f"epoch {event.epoch} ({event.stage}): val accuracy "
                                f"{event.val_accuracy:.1%}")
        elif isinstance(event, StageEvent):
            acc = event.metrics.get("accuracy")
            self._log(f"{event.name}" + (f": accuracy {acc:.1%}" if isinstance(acc, float)
                                         else ""))
        elif isinstance(event, RunFinished):
            self._end = ("run", event.summary)

    def _show_error(self, error: dict[str, Any]) -> None:
        self.last_error = error
        what = lesson_results.window_words(str(error.get("what", "failed")))
        fix = lesson_results.window_words(str(error.get("fix", "")))
        self.status.setText(f"{what}. {fix}".strip())

    def _on_done(self) -> None:
        self.run_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.list.setEnabled(True)
        stopped = self._worker is not None and self._worker.control.stop_requested
        if self.last_error is not None:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            return
        lesson, end = self.lesson, self._end
        if end is None or (end[0] == "lesson" and end[1].get("stopped")):
            self.progress.setRange(0, 1)
            self.progress.setValue(0)  # not full: nothing was measured
            self.status.setText("Stopped: nothing measured." if stopped else
                                "The lesson ended without a result.")
            return
        kind, data = end
        if kind == "lesson":
            outcome = lesson_results.from_lesson_result(data, lesson.published)
        elif kind == "sweep":
            outcome = lesson_results.from_sweep_rows(data, lesson.published,
                                                     lesson.value_names, lesson.vary)
        else:
            outcome = lesson_results.from_run_summary(data, lesson.published)
        self.show_outcome(outcome)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.status.setText(("Stopped; what completed: " if stopped else "Done: ")
                            + f"results in {self.out_dir}")
        self.lesson_finished.emit(outcome)

    def show_outcome(self, outcome: lesson_results.Outcome) -> None:
        self.outcome = outcome
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.headline.setText(outcome.headline)
        self.compare.set_rows(outcome.compare)
        if outcome.chart is not None:
            self.chart.show_chart(outcome.chart)


__all__ = ["QtClassroomView"]
