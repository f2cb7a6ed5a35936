"""Views beside the flow: created on first show, wired to the run panel, shut down on close."""

from __future__ import annotations

import numpy as np

from kdgui.gui.main_window import FLOW_KEYS, PANEL_KEYS


def test_models_view_is_created_lazily_and_highlights_heatmap_rows(window, qtbot) -> None:
    assert "models" in PANEL_KEYS and "models" not in FLOW_KEYS
    assert "models" not in window.views
    heatmap = window.run_panel.heatmap
    heatmap.add(["layers.0", "layers.4", "layers.8"], np.array([0.0, 0.5, 0.9]))
    window.show_panel("models")
    assert window.current_panel() == "models"
    view = window.views["models"]
    assert window.stack.currentWidget() is view
    view.layerSelected.emit("layers.4")
    assert heatmap.highlighted == "layers.4"
    view.layerSelected.emit("no.such.layer")
    assert heatmap.highlighted is None
    window.show_panel("run")
    assert window.current_panel() == "run"


def test_every_extra_view_opens(window, qtbot) -> None:
    from kdgui.gui.main_window import EXTRA_VIEWS

    for key, _, _ in EXTRA_VIEWS:
        window.show_panel(key)
        assert window.current_panel() == key
        assert window.stack.currentWidget() is window.views[key]
    window.presentation_action.trigger()
    assert window.presentation_action.isChecked()
    window.presentation_action.trigger()


def test_first_run_hint_is_dismissed_once_and_can_come_back(make_window, settings) -> None:
    first = make_window()
    assert first.hint.isVisible()
    from PySide6.QtWidgets import QPushButton

    first.hint.findChild(QPushButton).click()  # "Got it"
    assert not first.hint.isVisible()
    second = make_window()
    assert not second.hint.isVisible()
    from kdgui.gui.main_window import show_what_to_try

    show_what_to_try(second)
    assert second.hint.isVisible()


def test_sensitivity_view_draws_the_teachers_heatmap(window, qtbot) -> None:
    window.show_panel("sensitivity")
    view = window.views["sensitivity"]
    view.model_box.setCurrentIndex(1)  # the teacher: no run needed
    view.ratios_edit.setText("0.5, 0.95")
    view.analyze()
    qtbot.waitUntil(lambda: view.result is not None, timeout=60000)
    result = view.result
    assert result["ratios"] == [0.5, 0.95] and len(result["layers"]) >= 4
    assert view.image.image.shape == (len(result["layers"]), 2)
    assert "baseline accuracy" in view.status.text()
    view.ratios_edit.setText("0.5, 1.2")
    view.analyze()
    assert "[0, 1)" in view.status.text()


def test_compare_curves_draw_one_validation_curve_per_run(qtbot) -> None:
    from kdgui.core.events import EpochEvent
    from kdgui.gui.qt_compare_plot import QtCompareCurves

    def epochs(values):
        return [EpochEvent(epoch=i + 1, step=i, train_loss=0.1, train_accuracy=v,
                           val_accuracy=v, teacher_accuracy=0.99, agreement=v, layer_names=[],
                           sparsity=np.zeros(0), duration_s=1.0) for i, v in enumerate(values)]

    plot = QtCompareCurves()
    qtbot.addWidget(plot)
    plot.set_runs([("T=1", epochs([0.8, 0.9])), ("T=4", epochs([0.85, 0.93, 0.95]))])
    plot.flush()
    assert len(plot._curves) == 2
    xs, ys = plot._curves[1].getData()
    assert list(xs) == [1, 2, 3] and ys[-1] == 95.0
    plot.set_runs([])
    plot.flush()
    assert plot._curves == []


def test_switching_to_every_view_at_once_after_launch_is_safe(make_window, qtbot) -> None:
    """Issue 12.1: Ctrl+8 within a second of launch crashed the window, and Models opened while
    the Teacher panel's automatic inspect was loading failed with "circular import ...
    torch._dynamo". Torch is imported once, by the warm-up worker; every view waits for it."""
    import sys

    from PySide6.QtGui import QKeySequence

    from kdgui.gui.main_window import PANEL_KEYS

    window = make_window(run_fn=None)  # the real engine: views and probes import torch
    by_key = {action.shortcut().toString(): action for action in window.actions()}
    for i, key in enumerate(PANEL_KEYS):  # as fast as a person pressing Ctrl+1 … Ctrl+9
        if i < 9:
            by_key[QKeySequence(f"Ctrl+{i + 1}").toString()].trigger()
        else:
            window.show_panel(key)
        assert window.current_panel() == key
    for key in PANEL_KEYS:
        window.show_panel(key)
    qtbot.waitUntil(lambda: window.engine_warm_up is not None, timeout=5000)
    qtbot.waitUntil(lambda: not window.engine_warm_up.running, timeout=120000)
    teacher = window.panels["teacher"]
    qtbot.waitUntil(lambda: teacher._task is not None and not teacher._task.running,
                    timeout=120000)
    assert window.engine_warm_up.error is None
    assert window.engine_warm_up.result["torch"] == sys.modules["torch"].__version__
    assert "parameters" in teacher.summary.headline.text()  # the demo teacher was inspected
    assert window.errors == []
    explorer = window.views["explorer"]
    qtbot.waitUntil(lambda: explorer._data is not None or "Cannot" in explorer.readout.text(),
                    timeout=120000)
    assert "Cannot" not in explorer.readout.text() and len(explorer._data.labels) > 0
    models = window.views["models"]
    assert "circular import" not in models.notice.text()
    assert "Error" not in models.notice.text()


_IMPORT_PROBE = r"""
import json, sys, threading, traceback
first = {}

class Spy:
    '''Notes who imports torch and torch._dynamo first (and whether warm_up is doing it).'''
    def find_spec(self, name, path=None, target=None):
        if name in ("torch", "torch._dynamo") and name not in first:
            stack = [f.name for f in traceback.extract_stack()]
            first[name] = {"thread": threading.current_thread().name,
                           "in_warm_up": "warm_up" in stack}
        return None

sys.meta_path.insert(0, Spy())
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
app = QApplication([])
from kdgui.gui.main_window import PANEL_KEYS, QtMainWindow
from kdgui.gui.qt_worker import wait_for_workers
settings = QSettings(sys.argv[2], QSettings.Format.IniFormat)
w = QtMainWindow(runs_root=sys.argv[1], settings=settings)
w.show()
for key in PANEL_KEYS:  # every view at once, right after launch
    w.show_panel(key)
import time
end = time.monotonic() + 240
while time.monotonic() < end and (w.engine_warm_up is None or w.engine_warm_up.running
                                  or w.panels["teacher"]._task is None
                                  or w.panels["teacher"]._task.running):
    app.processEvents()
    time.sleep(0.02)
wait_for_workers(60000)
print(json.dumps({"first": first, "errors": w.errors,
                  "teacher": w.panels["teacher"].summary.headline.text()}))
"""


def test_torch_is_first_imported_by_the_engine_warm_up_only(tmp_path) -> None:
    """The invariant behind issue 12.1, checked in a fresh process (this one has torch already):
    torch and torch._dynamo are imported first inside ``warm_up`` (under its lock), never by a
    view or a probe racing another thread."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, str(tmp_path / "runs"),
                          str(tmp_path / "settings.ini")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(report["first"]) == {"torch", "torch._dynamo"}, report
    for name, who in report["first"].items():
        assert who["in_warm_up"], f"{name} was first imported outside warm_up: {who}"
        assert who["thread"] != "MainThread", f"{name} was imported on the UI thread"
    assert report["errors"] == []
    assert "parameters" in report["teacher"]
