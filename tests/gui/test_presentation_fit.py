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


def _headers_whole(table) -> None:
    """Each header's text fits its column, with the header's margins on both sides."""
    from PySide6.QtWidgets import QStyle

    header = table.horizontalHeader()
    pad = 2 * header.style().pixelMetric(QStyle.PixelMetric.PM_HeaderMargin, None, header)
    for col in range(table.columnCount()):
        text = table.horizontalHeaderItem(col).text()
        assert header.sectionSize(col) >= header.fontMetrics().horizontalAdvance(text) + pad, text


def test_bar_groups_keep_a_whole_label_each_at_1024x640_and_1280x800(window, qtbot) -> None:
    """The five group labels under the before/after bars overlapped in the 1.5× font and
    pyqtgraph dropped "params" and "accuracy" (wider than their group, they stuck out of the
    axis); the line's bottom was cut. Every group now has its label, side by side, whole."""
    from PySide6.QtGui import QImage, QPainter

    from kdgui.gui.qt_bars import QtBars

    _run_demo(window, qtbot)
    window.show_panel("results")
    for size in ((1024, 640), (1280, 800)):
        with presenting(window, qtbot, size):
            bars = window.stack.currentWidget().findChild(QtBars)
            bars.flush()
            qtbot.wait(50)
            axis = bars.plot.getAxis("bottom")
            image = QImage(8, 8, QImage.Format.Format_ARGB32)
            painter = QPainter(image)
            try:
                painter.setFont(axis.style["tickFont"])
                _axis, _ticks, texts = axis.generateDrawSpecs(painter)  # as axis.paint draws
                need = [painter.boundingRect(rect, flags, text) for rect, flags, text in texts]
            finally:
                painter.end()
            assert len(texts) == 5, [t for *_r, t in texts]
            rights = [r.right() for r in need]
            assert all(right < left for right, left in zip(rights, [r.left() for r in need][1:],
                                                          strict=False))  # none overlap
            assert max(r.bottom() for r in need) <= axis.geometry().height() + 1  # not cut
            assert axis.style["tickFont"].pointSizeF() >= 7
            assert bars.hover_text(4, 50).startswith("accuracy")  # the full name, if shortened


def test_sweep_plots_titles_and_headers_fit_in_presentation_mode(window, qtbot) -> None:
    """The sweep panel's three plots were ≈490 px wide in 261 px widgets, titles cut at both
    ends, and "Pareto latency" read "areto latenc". The panel is shown first and presentation
    mode switched on after, as a user does (the font then changes under a built view)."""
    window.show_panel("sweeps")
    qtbot.wait(50)
    page = window.stack.currentWidget()
    from kdgui.gui.qt_sweep_panel import QtSweepPanel

    panel = page if isinstance(page, QtSweepPanel) else page.findChild(QtSweepPanel)
    for size in ((1024, 640), (1280, 800)):
        with presenting(window, qtbot, size):
            qtbot.wait(50)
            _plots_fit(panel)
            shown = panel.fit_title()
            assert any(t.endswith("…") for t in shown)  # the 1.5× titles cannot all fit
            _headers_whole(panel.table)
        assert panel.curve_plot.backgroundBrush().color().lightness() > 128  # the light palette


def test_history_headers_are_whole_in_presentation_mode(window, qtbot) -> None:
    """"compression" (114 px in the 1.5× font) was cut to "ompressio" in a 100 px column; the
    table may scroll sideways, but no header loses letters."""
    window.show_panel("history")
    qtbot.wait(50)
    from kdgui.gui.qt_history_panel import QtHistoryPanel

    page = window.stack.currentWidget()
    panel = page if isinstance(page, QtHistoryPanel) else page.findChild(QtHistoryPanel)
    with presenting(window, qtbot, (1024, 640)):
        qtbot.wait(50)
        _headers_whole(panel.table)
    _headers_whole(panel.table)


def test_the_models_view_fits_1024_px_with_whole_summary_headers(window, qtbot) -> None:
    """The Models view's bar (two combos of 24 characters and five buttons) widened the window to
    1666 px in presentation mode, and its summaries read "inal stage": the bar's buttons now
    overflow into a tool bar's "»", and the summaries keep their headers whole."""
    window.show_panel("models")
    qtbot.wait(50)
    models = window.view("models")
    with presenting(window, qtbot, (1024, 640)):
        qtbot.wait(100)
        assert window.width() <= 1024
        _headers_whole(models.summary_table)
    _headers_whole(models.summary_table)
