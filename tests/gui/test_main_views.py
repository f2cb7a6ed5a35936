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
