"""Presentation mode (1.5× the font) on a 1024×640 projector cuts nothing off (issue 12.6).

Each test shows a panel after a demo run (the fake engine), switches presentation mode on and
checks what the lead saw cut off in the screenshots: a plot wider than its widget (bar groups and
curves hidden on the right, the title cut), a status line cut at the window's edge, a table header
cut. Presentation mode changes the application font, so it is always switched off again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from kdgui.gui.main_window import QtMainWindow


@contextmanager
def presenting(window: QtMainWindow, qtbot, size: tuple[int, int]) -> Iterator[None]:
    window.resize(*size)
    window.presentation_action.trigger()
    try:
        qtbot.wait(50)  # the layout after the font change
        yield
    finally:
        if window.presentation_action.isChecked():
            window.presentation_action.trigger()
        else:
            from kdgui.gui.presentation import set_presentation_mode

            set_presentation_mode(window, False)


def _run_demo(window: QtMainWindow, qtbot) -> None:
    window.state.set(("training", "epochs"), 3)
    with qtbot.waitSignal(window.run_ended, timeout=20000):
        assert window.start_run()


def _plots_fit(page) -> None:
    shown = [p for p in page.findChildren(pg.PlotWidget) if p.isVisible()]
    assert shown
    for plot in shown:
        item = plot.getPlotItem()
        title = item.titleLabel.text
        assert item.geometry().width() <= plot.viewport().width() + 1, title
        assert item.titleLabel.geometry().width() <= plot.viewport().width(), title


def test_results_and_run_plots_fit_their_widgets_at_1024x640(window, qtbot) -> None:
    """The bar chart showed 3½ of its 5 groups and the compared curves half their epochs: a
    title's minimum width (its unelided text) made each plot wider than its widget."""
    _run_demo(window, qtbot)
    with presenting(window, qtbot, (1024, 640)):
        for key in ("results", "run"):
            window.show_panel(key)
            qtbot.wait(50)
            assert window.width() <= 1024
            _plots_fit(window.stack.currentWidget())


def test_run_status_line_is_elided_not_cut_at_1024x640(window, qtbot) -> None:
    """"Finished: student 95.00% vs teacher 97.00% with 5.0× fewer parameters · <run>" was
    cut at the window's edge mid-word; it now ends in "…", its text and tooltip whole."""
    _run_demo(window, qtbot)
    with presenting(window, qtbot, (1024, 640)):
        window.show_panel("run")
        qtbot.wait(50)
        label = window.run_panel.status_label
        full = label.text()
        assert full.startswith("Finished") and label.toolTip() == full
        metrics = label.fontMetrics()
        assert metrics.horizontalAdvance(full) > label.contentsRect().width()  # it cannot fit
        shown = window.run_panel.status_label.grab()  # paints: the elided text is drawn
        assert not shown.isNull()
        elided = metrics.elidedText(full, Qt.TextElideMode.ElideRight,
                                    label.contentsRect().width())
        assert elided.endswith("…")
        assert label.contentsRect().right() <= window.run_panel.scroll.viewport().width()
        assert type(label).paintEvent is not QLabel.paintEvent  # it draws the elided text
