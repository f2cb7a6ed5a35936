"""The Data panel selects a folder of unlabelled images and says so (issue 17.2)."""

from __future__ import annotations

from kdgui.gui.qt_config_state import QtConfigState
from kdgui.gui.qt_data_panel import QtDataPanel
from tests.engine.test_unlabelled_folder import write_digits


def test_data_panel_previews_an_unlabelled_folder(qtbot, tmp_path) -> None:
    write_digits(tmp_path / "scans", 40, labelled=20)
    state = QtConfigState()
    panel = QtDataPanel(state)
    qtbot.addWidget(panel)
    panel.spec_combo.setEditText(f"folder:{tmp_path / 'scans'}")
    panel._spec_edited()
    assert state.get(("data", "spec")) == f"folder:{tmp_path / 'scans'}"
    panel.preview()
    qtbot.waitUntil(lambda: "unlabelled" in panel.info.text(), timeout=60000)
    assert "unlabelled: 40 images" in panel.info.text() and "16 labelled" in panel.info.text()


def test_data_panel_previews_a_folder_of_images_only(qtbot, tmp_path) -> None:
    write_digits(tmp_path / "scans", 30)
    panel = QtDataPanel(QtConfigState())
    qtbot.addWidget(panel)
    panel.spec_combo.setEditText(f"folder:{tmp_path / 'scans'}")
    panel._spec_edited()
    panel.preview()
    qtbot.waitUntil(lambda: "unlabelled" in panel.info.text(), timeout=60000)
    assert "unlabelled: 30 images" in panel.info.text() and "from the teacher" in panel.info.text()
    qtbot.waitUntil(lambda: len(panel.samples.tiles) > 0, timeout=10000)
    names = [t.text() for t in panel.samples.tiles if t.text()]
    assert names and set(names) == {"unlabelled"}


def test_accuracy_plot_leaves_out_unmeasured_accuracy(qtbot) -> None:
    """No labels: the engine reports NaN accuracy; the plot draws nothing for it, no error."""
    from kdgui.gui.qt_accuracy_plot import QtAccuracyPlot

    plot = QtAccuracyPlot()
    qtbot.addWidget(plot)
    plot.set_teacher(float("nan"))
    assert plot.teacher_accuracy is None and not plot.teacher_line.isVisible()
    plot.add(float("nan"), float("nan"))
    plot.add(0.5, float("nan"))
    plot.redraw()
    assert list(plot.train_curve.getData()[1]) == [50.0]
    assert plot.val_curve.getData()[0] is None or len(plot.val_curve.getData()[0]) == 0
