"""The window on the real engine: the embedded demo, inspection, preview, export, unattended run.

These use the bundled demo teacher and scikit-learn digits (offline, seconds on 2 CPU cores).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from kdgui.gui.qt_worker import engine_run_fn
from tests.gui.fake_engine import assert_control_honoured, logged_events

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def real_window(make_window):
    return make_window(run_fn=None)  # None: the worker imports kdgui.engine.session lazily


def test_the_demo_runs_with_one_click_and_plots_real_data(real_window, qtbot) -> None:
    window = real_window
    window.state.set(("training", "epochs"), 2)
    with qtbot.waitSignal(window.run_ended, timeout=120000) as ended:
        window.run_panel.start_button.click()
    assert ended.args == [True], window.errors
    panel = window.run_panel
    assert {"total", "hard", "soft"} <= set(panel.loss_plot.curves)
    logged = logged_events(panel.run_dir)
    per_epoch = logged[0].steps_per_epoch  # the started event
    sent = [e.step for e in logged if e.kind == "step"]
    # every log_every = 10 steps, and each epoch's first step (the plot's point at once)
    assert sent == [s for s in range(1, 2 * per_epoch + 1) if s % 10 == 0 or (s - 1) % per_epoch == 0]
    assert list(panel.loss_plot.curves["total"].getData()[0]) == sent  # each one plotted
    assert len(panel.accuracy_plot.val) == 2 and panel.accuracy_plot.teacher_accuracy > 90
    rows, cols = panel.heatmap.matrix().shape
    assert rows >= 2 and len(panel.heatmap.layer_names) == rows
    steps = panel.loss_plot.steps["total"].view()
    assert panel.heatmap.unit == "step" and cols == len(steps)  # a column per logged step
    assert {"teacher", "student"} <= set(panel.bars.stages)
    assert panel.bars.stages["student"]["params"] < panel.bars.stages["teacher"]["params"]
    assert Path(panel.run_dir, "summary.json").is_file()
    # export the run's student with verification, through the dialog
    window.results_panel.open_run(panel.run_dir)
    window.export_run(window.results_panel.selected()[0])
    dialog = window.export_dialog
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("onnx"))
    dialog.export_button.click()
    qtbot.waitUntil(lambda: bool(dialog.result_data or dialog.error_data), timeout=120000)
    assert dialog.error_data is None, dialog.error_data
    assert dialog.result_data["verified"] is True
    assert "✓ verified" in dialog.result_label.text()
    assert Path(dialog.result_data["path"]).is_file()


def test_pause_resume_stop_on_the_real_engine(real_window, qtbot) -> None:
    window = real_window
    window.state.set(("training", "epochs"), 200)
    window.state.set(("training", "log_every"), 1)
    window.start_run()
    qtbot.waitUntil(lambda: window.run_panel.last_step is not None, timeout=120000)
    paused_at = time.time()
    window.runner.pause()
    qtbot.waitUntil(lambda: "run paused" in window.run_panel.log.toPlainText(), timeout=10000)
    frozen = window.run_panel.last_step.step
    qtbot.wait(300)
    assert window.run_panel.last_step.step == frozen
    window.runner.resume()
    qtbot.waitUntil(lambda: window.run_panel.last_step.step > frozen, timeout=10000)
    stopped_at = time.time()
    with qtbot.waitSignal(window.run_ended, timeout=60000) as ended:
        window.stop_run()
    assert ended.args == [False]
    assert "run stopped" in window.run_panel.log.toPlainText()
    assert window.run_panel.summary.get("stopped") is True
    # the same checks as on the fake engine (tests/gui/test_run.py), from the run's event log
    assert_control_honoured(logged_events(window.run_panel.run_dir), paused_at, stopped_at)


def test_a_missing_dataset_shows_the_engines_message(real_window, qtbot, tmp_path) -> None:
    window = real_window
    window.panels["data"].spec_combo.setEditText(f"mnist:{tmp_path / 'none'}")
    window.panels["data"]._spec_edited()
    with qtbot.waitSignal(window.run_ended, timeout=60000):
        window.start_run()
    assert window.errors and window.errors[-1]["fix"]
    assert window.error_box.isVisible()
    assert window.run_panel.start_button.isEnabled()


def test_teacher_inspection_and_data_preview(real_window, qtbot) -> None:
    window = real_window
    teacher = window.panels["teacher"]
    teacher.inspect()
    qtbot.waitUntil(lambda: "parameters" in teacher.summary.headline.text(), timeout=60000)
    assert teacher.summary.table.rowCount() > 3
    data = window.panels["data"]
    data.preview()
    qtbot.waitUntil(lambda: len(data.samples.tiles) == 32, timeout=60000)  # 16 images + labels
    assert "10 classes" in data.info.text()


def test_pickled_teacher_needs_consent(real_window, qtbot, tmp_path) -> None:
    import torch

    path = tmp_path / "teacher.pt"
    torch.save(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), path)
    window = real_window
    teacher = window.panels["teacher"]
    asked: list[str] = []
    teacher.confirm_trust = lambda _parent, p: asked.append(p) or False
    teacher.set_path(str(path))
    teacher.inspect()
    qtbot.waitUntil(lambda: bool(window.errors), timeout=60000)
    assert asked == [str(path)] and window.errors[-1]["type"] == "TrustRequired"
    assert window.state.config.teacher.trust is False
    teacher.confirm_trust = lambda _parent, _p: True
    qtbot.waitUntil(teacher.inspect_button.isEnabled, timeout=10000)  # the first load ended
    teacher.inspect()
    qtbot.waitUntil(lambda: "parameters" in teacher.summary.headline.text() or
                    len(window.errors) > 1, timeout=60000)
    assert len(window.errors) == 1, window.errors
    assert window.state.config.teacher.trust is True and teacher.trust_box.isChecked()


def _gui_env() -> dict[str, str]:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}


def test_unattended_screenshot_run(tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [sys.executable, "-m", "kdgui.gui.app", "--demo", "--autorun", "--screenshot", str(shot),
         "--exit-when-done", "--panel", "run", "--runs-root", str(tmp_path / "runs"),
         "--set", "training.epochs=2"],
        capture_output=True, text=True, env=_gui_env(), timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    image = QImage(str(shot))
    assert (image.width(), image.height()) == (1280, 800)
    colors = {image.pixel(x, y) for x in range(0, 1280, 16) for y in range(0, 800, 16)}
    assert len(colors) > 20  # plots with data, not a blank or black window


def test_the_window_paints_before_torch_is_imported() -> None:
    code = (
        "import sys\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from kdgui.gui.main_window import QtMainWindow\n"
        "w = QtMainWindow(runs_root='runs-none'); w.show(); app.processEvents()\n"
        "w.grab()\n"
        "print('torch' in sys.modules, 'kdgui.engine' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_gui_env(), timeout=120)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_engine_entry_point_is_importable() -> None:
    assert callable(engine_run_fn())
