"""Runs in the window: live plots, pause/resume/stop, errors, closing, reopening, files."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from kdgui.core.events import StepEvent
from kdgui.gui.qt_results_panel import read_run
from tests.gui.fake_engine import (
    assert_control_honoured,
    failing_run,
    fake_run,
    logged_events,
    raising_run,
)

slow_fake = functools.partial(fake_run, step_s=0.01, steps_per_epoch=30)


def test_demo_run_plots_live_data_and_finishes(window, qtbot) -> None:
    window.state.set(("training", "epochs"), 3)
    with qtbot.waitSignal(window.run_ended, timeout=20000) as ended:
        assert window.start_run()
        assert not window.run_panel.start_button.isEnabled()
        assert window.run_panel.stop_button.isEnabled()
    assert ended.args == [True]
    panel = window.run_panel
    panel.flush()
    assert set(panel.loss_plot.curves) == {"total", "hard", "soft"}
    x, _y = panel.loss_plot.curves["total"].getData()
    # 3 epochs × 20 batches: an event every log_every = 10, and at each epoch's first batch
    steps = [1, 10, 20, 21, 30, 40, 41, 50, 60]
    assert list(x) == list(panel.loss_plot.steps["total"].view()) == steps
    assert list(panel.accuracy_plot.val.view()) == pytest.approx([80.0, 82.0, 84.0])
    assert panel.accuracy_plot.teacher_line.isVisible()
    assert panel.accuracy_plot.teacher_accuracy == pytest.approx(97.0)
    # the engine sends sparsity with every step event: one heatmap column per step event
    assert panel.heatmap.matrix().shape == (4, len(steps))  # layers × step events
    assert panel.heatmap.xs == steps
    assert panel.heatmap.matrix()[:, -1] == pytest.approx([0.0, 0.1, 0.2, 0.3])  # the last step
    assert panel.heatmap.image.image.shape == (4, len(steps))
    assert list(panel.heatmap.image.levels) == [0.0, 1.0]
    assert set(panel.bars.stages) == {"teacher", "student"}
    assert panel.progress.value() == 1000
    assert window.run_panel.start_button.isEnabled()
    # the finished run is listed under Results, with its numbers
    assert window.results_panel.run_list.count() == 1
    assert window.results_panel.compare.item(1, 0).text() == "95.0%"


def test_redraws_are_coalesced(window, qtbot) -> None:
    plot = window.run_panel.loss_plot
    for step in range(1, 501):
        window.run_panel.handle(StepEvent(step=step, epoch=1, losses={"total": 1.0 / step},
                                          lr=0.1, samples_per_s=1.0, progress=step / 500,
                                          eta_s=1.0))
    assert plot.redraw_count == 0  # nothing drawn yet: 500 events, one pending frame
    qtbot.waitUntil(lambda: plot.redraw_count == 1, timeout=2000)
    assert plot.curves["total"].getData()[0].size == 500


def test_pause_resume_and_stop_take_effect_at_the_next_batch(make_window, qtbot) -> None:
    window = make_window(run_fn=slow_fake)
    window.state.set(("training", "epochs"), 50)
    window.state.set(("training", "log_every"), 1)  # a step event per batch: batches counted
    window.start_run()
    qtbot.waitUntil(lambda: window.run_panel.last_step is not None, timeout=10000)
    paused_at = time.time()
    window.run_panel.pause_button.click()
    assert window.run_panel.pause_button.text().endswith("Resume")
    qtbot.waitUntil(lambda: "run paused" in window.run_panel.log.toPlainText(), timeout=10000)
    frozen = window.run_panel.last_step.step
    qtbot.wait(300)  # while paused, no step may arrive
    assert window.run_panel.last_step.step == frozen
    window.run_panel.pause_button.click()  # resume
    qtbot.waitUntil(lambda: window.run_panel.last_step.step > frozen, timeout=10000)
    stopped_at = time.time()
    with qtbot.waitSignal(window.run_ended, timeout=10000) as ended:
        window.run_panel.stop_button.click()
    assert ended.args == [False]  # stopped, not completed
    assert_control_honoured(logged_events(window.run_panel.run_dir), paused_at, stopped_at)
    assert window.run_panel.status_label.text().startswith("Stopped")
    assert not window.runner.running


def test_engine_failure_shows_a_message_and_the_window_stays_usable(make_window, qtbot) -> None:
    window = make_window(run_fn=failing_run)
    with qtbot.waitSignal(window.run_ended, timeout=5000) as ended:
        window.start_run()
    assert ended.args == [False]
    assert window.errors[-1]["what"].startswith("dataset 'mnist:/nowhere' not found")
    box = window.error_box
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert "'download' in 2 · Data" in box.informativeText()  # the window's words, not --download
    box.close()
    # usable: edit and run again, this time with a working engine
    window.runner._run_fn = fake_run
    window.state.set(("training", "epochs"), 1)
    with qtbot.waitSignal(window.run_ended, timeout=10000) as ended:
        assert window.start_run()
    assert ended.args == [True]


def test_exception_in_the_worker_becomes_a_message(make_window, qtbot) -> None:
    window = make_window(run_fn=raising_run)
    with qtbot.waitSignal(window.run_ended, timeout=5000):
        window.start_run()
    error = window.errors[-1]
    assert "boom inside the engine" in error["what"] and "bug" in error["fix"]
    assert "Traceback" in window.error_box.detailedText()
    assert window.run_panel.start_button.isEnabled()


def test_closing_during_a_run_stops_it_cleanly(make_window, qtbot) -> None:
    window = make_window(run_fn=slow_fake)
    window.state.set(("training", "epochs"), 100)
    window.start_run()
    qtbot.waitUntil(lambda: window.run_panel.last_step is not None, timeout=10000)
    window.close()
    assert window.isVisible()  # waits for the worker instead of killing it
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=3000)
    assert not window.runner.running
    summary = read_run(window.run_panel.run_dir).summary
    assert summary["stopped"] is True


def test_reopen_a_run_folder_and_replay_its_curves(make_window, qtbot, tmp_path: Path) -> None:
    first = make_window()
    first.state.set(("training", "epochs"), 2)
    with qtbot.waitSignal(first.run_ended, timeout=10000):
        first.start_run()
    run_dir = first.run_panel.run_dir
    second = make_window()  # a fresh window, as after a restart
    record = second.open_run(run_dir)
    assert record is not None and record.completed and record.bad_lines == 0
    assert second.current_panel() == "results"
    results = second.results_panel
    assert results.compare.columnCount() == 1
    assert results.compare.item(0, 0).text() == "97.0%"  # teacher accuracy
    assert set(results.bars.stages) == {"teacher", "student"}
    assert "features.0" in [results.histogram.layer_box.itemText(i)
                            for i in range(results.histogram.layer_box.count())]
    results.curves_button.click()
    assert second.current_panel() == "run"
    assert list(second.run_panel.accuracy_plot.val.view()) == pytest.approx([80.0, 82.0])
    replayed = second.run_panel.loss_plot
    # 2 epochs × 20: every 10, and each epoch's first step
    assert list(replayed.steps["total"].view()) == [1, 10, 20, 21, 30, 40]
    assert replayed.point_count() == 6 * 3  # total, hard, soft (the zero terms are not drawn)
    # a folder that is not a run gives a message, not a crash
    assert second.open_run(tmp_path) is None
    assert "not a run folder" in second.errors[-1]["what"]


def test_a_crashed_runs_partial_last_line_is_skipped(window, tmp_path: Path) -> None:
    run = tmp_path / "crashed"
    run.mkdir()
    (run / "config.yaml").write_text("name: crashed\n", encoding="utf-8")
    (run / "metrics.jsonl").write_text(
        '{"event": "log", "level": "info", "message": "hi", "time": 1}\n{"event": "st',
        encoding="utf-8")
    record = window.open_run(run)
    assert record is not None and record.bad_lines == 1 and not record.completed


def test_plots_save_to_png_and_svg(window, qtbot, tmp_path: Path) -> None:
    window.state.set(("training", "epochs"), 1)
    with qtbot.waitSignal(window.run_ended, timeout=10000):
        window.start_run()
    pngs = window.save_plots(str(tmp_path), "png")
    svgs = window.save_plots(str(tmp_path), "svg")
    assert [p.name for p in pngs] == ["loss.png", "accuracy.png", "sparsity.png", "bars.png"]
    assert all(p.stat().st_size > 1000 for p in pngs)
    assert all(p.read_text(encoding="utf-8").lstrip().startswith("<?xml") for p in svgs)


def test_config_files_recent_list_and_settings(make_window, tmp_path: Path, settings) -> None:
    window = make_window()
    window.panels["distill"].form.fields["temperature"].spin.setValue(6.0)
    path = tmp_path / "exp.yaml"
    assert window.save_config(path)
    assert "temperature: 6.0" in path.read_text(encoding="utf-8")
    window.set_config({"name": "other"})
    assert window.state.config.distill.temperature == 4.0
    assert window.panels["distill"].form.fields["temperature"].spin.value() == 4.0
    assert window.open_config(path)
    assert window.panels["distill"].form.fields["temperature"].spin.value() == 6.0
    assert window.recent_files()[0] == str(path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("distill: {alpha: 3}\n", encoding="utf-8")
    assert not window.open_config(bad)
    assert "distill.alpha" in window.errors[-1]["what"]
    window.resize(700, 500)  # within the offscreen screen, which restoreGeometry clamps to
    window.close()
    again = make_window()
    assert again.recent_files()[0] == str(path)
    assert (again.width(), again.height()) == (700, 500)
    assert again.restore_last_config()
    assert again.state.config.distill.temperature == 6.0


@pytest.mark.slow
def test_stop_on_the_real_engine_leaves_a_complete_run_folder(make_window, qtbot) -> None:
    """Issue 12.4: Stop must always leave summary.json, the student and what was measured.

    The window used to give a stopping engine 5 s and then abandon it mid-measure; now the
    engine is never cut off. Real engine, embedded demo, stopped two steps into training."""
    import json

    from kdgui.core.run_folders import student_path, summary_path

    window = make_window(run_fn=None)
    window.state.set(("training", "epochs"), 60)  # far longer than the test waits
    window.state.set(("training", "log_every"), 1)
    with qtbot.waitSignal(window.run_ended, timeout=300000) as ended:
        assert window.start_run()
        qtbot.waitUntil(lambda: window.run_panel.last_step is not None, timeout=180000)
        qtbot.waitUntil(lambda: window.run_panel.last_step.step >= 2, timeout=60000)
        window.run_panel.stop_button.click()
    assert ended.args == [False]  # stopped, not completed
    run_dir = Path(window.run_panel.run_dir)
    summary = json.loads(summary_path(run_dir).read_text(encoding="utf-8"))
    assert summary["stopped"] is True
    assert student_path(run_dir).is_file()
    assert summary["student"]["accuracy"] is not None  # the stopped student was measured
    assert window.errors == []
    assert window.results_panel.run_list.count() == 1
