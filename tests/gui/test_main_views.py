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
