"""The Classroom view: a lesson runs from the window to its result, and Stop works (fake jobs)."""

from __future__ import annotations

import functools
import threading

import pytest

from kdgui.core.events import JobFinished, JobProgress, LogEvent
from kdgui.engine.classroom import LESSONS, run_lesson
from kdgui.gui.qt_classroom_view import QtClassroomView
from tests.gui.test_teaching_panels import fake_run


def _missing_digit_result() -> dict:
    per = [0.99] * 10
    before, after = list(per), list(per)
    before[3], after[3] = 0.78, 0.94
    models = {"teacher": {"per_class": per, "accuracy": 0.96},
              "labels only": {"per_class": [*per[:3], 0.0, *per[4:]], "accuracy": 0.86},
              "distilled": {"per_class": before, "accuracy": 0.94},
              "distilled + bias": {"per_class": after, "accuracy": 0.95}}
    return {"lesson": "missing-digit", "models": models, "bias_shift": 2.05,
            "held_out": {"class": 3, "before": 0.78, "after": 0.94},
            "class_names": [str(c) for c in range(10)],
            "compare": [["accuracy on 3s, distilled", "86.8%", "78.0%"],
                        ["accuracy on 3s after the shift", "98.6%", "94.0%"]]}


def fake_lesson(gate: threading.Event | None = None):
    """A lesson job: two progress steps, a log line, then the result (or a stop)."""
    calls = []

    def run(name, out_dir, control=None, data=None):
        calls.append((name, data))
        yield JobProgress(job=f"lesson:{name}", done=1, total=2, message="teacher trained")
        yield LogEvent(level="info", message="teacher: val accuracy 96.2%")
        if gate is not None:
            while not control.stop_requested:
                gate.wait(0.02)
            yield JobFinished(job=f"lesson:{name}", out_dir=str(out_dir),
                              result={"stopped": True}, stopped=True)
            return
        yield JobProgress(job=f"lesson:{name}", done=2, total=2, message="results written")
        yield JobFinished(job=f"lesson:{name}", out_dir=str(out_dir),
                          result=_missing_digit_result())

    run.calls = calls
    return run


def test_every_lesson_is_listed_with_its_text_and_published_figure(qtbot, tmp_path) -> None:
    view = QtClassroomView(lessons_root=tmp_path)
    qtbot.addWidget(view)
    assert view.list.count() == len(LESSONS)
    for lesson in LESSONS:
        view.select(lesson.name)
        text = view.text.toPlainText()
        assert lesson.title in text and "What to look at" in text
        assert lesson.published and "Published" in text
        assert view.data.isHidden() != bool(lesson.runner)  # data only for the paper lessons
    with pytest.raises(ValueError, match="no lesson"):
        view.select("nope")


def test_a_lesson_runs_from_the_window_to_its_result(qtbot, tmp_path) -> None:
    job = fake_lesson()
    view = QtClassroomView(lessons_root=tmp_path, lesson_fn=job)
    qtbot.addWidget(view)
    view.select("missing-digit")
    view.data.setText("digits")
    with qtbot.waitSignal(view.lesson_finished, timeout=30000):
        assert view.start(tmp_path / "md")
        assert not view.run_button.isEnabled() and view.stop_button.isEnabled()
    assert job.calls == [("missing-digit", "digits")]
    assert "78.0% before the bias correction → 94.0% after" in view.headline.text()
    assert view.compare.rowCount() == 2 and view.compare.item(0, 1).text() == "86.8%"
    assert "teacher: val accuracy" in view.log.toPlainText()
    assert view.progress.value() == view.progress.maximum()
    after = view.chart.heights("distilled, after the correction")
    assert after[3] == pytest.approx(94.0) and view.chart.chart.categories[3] == "3"
    assert view.run_button.isEnabled() and not view.stop_button.isEnabled()


def test_stop_ends_a_lesson_without_a_result(qtbot, tmp_path) -> None:
    view = QtClassroomView(lessons_root=tmp_path, lesson_fn=fake_lesson(threading.Event()))
    qtbot.addWidget(view)
    view.select("unlabelled")
    assert view.start(tmp_path / "ul")
    qtbot.waitUntil(lambda: "teacher" in view.log.toPlainText(), timeout=30000)
    view.stop()
    qtbot.waitUntil(lambda: not view.running, timeout=10000)
    assert view.status.text().startswith("Stopped") and view.outcome is None
    assert view.chart.chart is None
    assert view.progress.value() < view.progress.maximum()  # the bar does not read 100%


def test_a_bad_data_spec_is_one_line_and_nothing_starts(qtbot, tmp_path) -> None:
    view = QtClassroomView(lessons_root=tmp_path, lesson_fn=fake_lesson())
    qtbot.addWidget(view)
    view.select("unlabelled")
    view.data.setText("cifar10:/nowhere")
    assert not view.start()
    assert not view.running and "needs MNIST or the digits" in view.status.text()
    assert "--data" not in view.status.text()  # the window's words, not the command's
    assert view.status.text().endswith("or digits under data.")


def test_lesson_text_speaks_of_the_data_field_not_the_command_option(qtbot, tmp_path) -> None:
    view = QtClassroomView(lessons_root=tmp_path)
    qtbot.addWidget(view)
    for name in ("missing-digit", "unlabelled"):
        view.select(name)
        text = view.text.toPlainText()
        assert "--" not in text and "mnist:ROOT under data" in text


def test_a_sweep_lesson_draws_accuracy_per_value(qtbot, tmp_path) -> None:
    view = QtClassroomView(lessons_root=tmp_path,
                           lesson_fn=functools.partial(run_lesson, run_fn=fake_run()))
    qtbot.addWidget(view)
    view.select("temperature")
    with qtbot.waitSignal(view.lesson_finished, timeout=30000):
        assert view.start(tmp_path / "t")
    assert view.chart.heights("student") == pytest.approx([55.0, 60.0, 70.0, 90.0, 130.0])
    assert view.compare.item(0, 1).text().startswith("Hinton et al. 2015")
    assert "16: 130.0%" in view.compare.item(0, 2).text()
    assert (tmp_path / "t" / "sweep.csv").is_file()


def test_the_view_reopens_on_the_last_lesson_with_its_result(qtbot, tmp_path) -> None:
    import json

    folder = tmp_path / "20260101-120000-missing-digit"
    folder.mkdir()
    (folder / "lesson.json").write_text(json.dumps(_missing_digit_result()))
    view = QtClassroomView(lessons_root=tmp_path)
    qtbot.addWidget(view)
    assert view.lesson.name == "missing-digit"
    assert view.status.text().startswith("Last result, from")
    assert "94.0% after" in view.headline.text() and view.compare.rowCount() == 2
    view.select("unlabelled")  # never run here: nothing to show
    assert view.outcome is None and view.chart.chart is None


def test_closing_the_window_stops_a_running_lesson(qtbot, tmp_path) -> None:
    view = QtClassroomView(lessons_root=tmp_path, lesson_fn=fake_lesson(threading.Event()))
    qtbot.addWidget(view)
    assert view.start(tmp_path / "ul")
    qtbot.waitUntil(lambda: "teacher" in view.log.toPlainText(), timeout=30000)
    view.shutdown()  # what the main window calls on close
    assert not view._worker._thread.isRunning()


def test_presentation_mode_at_1024x640_cuts_no_header_or_lesson_title(qtbot, tmp_path) -> None:
    """Issue 12.6: on a 1024×640 projector in presentation mode (1.5× the font) the table's
    headers read "ublished" / "asured h", the titles "What distillat" and the chart lost its
    right-hand bars: each column now shows its whole header, the list its longest word, the chart
    all its bars under an elided title, and the window still fits 1024 pixels."""
    from PySide6.QtWidgets import QMainWindow

    from kdgui.gui.presentation import set_presentation_mode

    view = QtClassroomView(lessons_root=tmp_path, lesson_fn=fake_lesson())
    window = QMainWindow()
    window.setCentralWidget(view)
    qtbot.addWidget(window)
    window.resize(1024, 640)
    window.show()
    qtbot.waitExposed(window)
    try:
        set_presentation_mode(window, True)
        view.select("missing-digit")
        with qtbot.waitSignal(view.lesson_finished, timeout=30000):
            assert view.start(tmp_path / "md")
        qtbot.wait(50)  # the layout after the font change and the rows
        assert window.width() <= 1024
        header = view.compare.horizontalHeader()
        metrics = header.fontMetrics()
        for col in (1, 2):
            text = view.compare.horizontalHeaderItem(col).text()
            assert header.sectionSize(col) >= metrics.horizontalAdvance(text), text
        assert header.length() <= view.compare.viewport().width() + 1  # nothing scrolled away
        words = [w for i in range(view.list.count()) for w in view.list.item(i).text().split()]
        longest = max(view.list.fontMetrics().horizontalAdvance(w) for w in words)
        assert view.list.viewport().width() >= longest
        # The chart's plot fits its widget (a wide title made it wider: digits 7-9 cut off).
        plot = view.chart.plot
        assert plot.getPlotItem().geometry().width() <= plot.viewport().width() + 1
        assert plot.getPlotItem().titleLabel.geometry().width() <= plot.viewport().width()
    finally:
        set_presentation_mode(window, False)
