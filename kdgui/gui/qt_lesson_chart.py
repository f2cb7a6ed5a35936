"""Grouped bars for a finished lesson (:class:`kdgui.gui.lesson_results.Chart`).

One group per category (a digit, a model, a swept value, a stage), one bar per series; the
legend is a line of text below the plot, so it never hides a bar, and with few bars each
carries its value.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics, QResizeEvent
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from kdgui.gui.lesson_results import Chart
from kdgui.gui.qt_plot_base import SERIES_COLORS

#: Above this many bars, values are not written on them (they would overlap).
MAX_LABELLED_BARS = 12
MUTED = "#9a9a9a"


class QtLessonChart(QWidget):
    """Bars of a :class:`Chart` with its legend below; :meth:`show_chart` replaces them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        self.plot.setBackground(None)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        self.plot.setLabel("left", "accuracy (%)")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.setMinimumWidth(200)  # with the table beside it, 1024 px in presentation mode
        self.plot.getPlotItem().titleLabel.setMinimumWidth(0)  # a long title must not widen it
        self.legend = QLabel(wordWrap=True)
        self.legend.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder = QLabel("The lesson's chart appears here when it has run.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)  # a wide label would widen the window (presentation)
        self.placeholder.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.placeholder, 1)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.legend)
        self.chart: Chart | None = None
        self.bars: dict[str, pg.BarGraphItem] = {}
        self.clear_chart()

    def clear_chart(self) -> None:
        self.plot.clear()
        self.bars = {}
        self.chart = None
        self.legend.clear()
        self.plot.setVisible(False)
        self.legend.setVisible(False)
        self.placeholder.setVisible(True)

    def show_chart(self, chart: Chart) -> None:
        self.clear_chart()
        self.chart = chart
        self.placeholder.setVisible(False)
        self.plot.setVisible(True)
        self._fit_title()
        n = max(len(chart.series), 1)
        width = 0.8 / n
        labelled = len(chart.categories) * n <= MAX_LABELLED_BARS
        colors = iter(SERIES_COLORS)
        keys = []
        for i, (name, values) in enumerate(chart.series.items()):
            color = MUTED if name in chart.muted else next(colors)
            xs = np.arange(len(values)) + (i - (n - 1) / 2) * width
            heights = np.array([0.0 if math.isnan(v) else v for v in values])
            if n == 1:  # one series: each category its own colour (the teacher grey)
                palette = iter(SERIES_COLORS[1:])
                brush = {"brushes": [MUTED if c in chart.muted else next(palette)
                                     for c in chart.categories[:len(values)]]}
            else:
                brush = {"brush": color}
            item = pg.BarGraphItem(x=xs, height=heights, width=width * 0.95,
                                   pen=pg.mkPen(None), name=name, **brush)
            self.plot.addItem(item)
            self.bars[name] = item
            keys.append(f'<span style="color:{color}">■</span>&nbsp;{html.escape(name)}')
            if labelled:
                for x, v in zip(xs, values, strict=True):
                    if not math.isnan(v):
                        text = pg.TextItem(f"{v:.1f}%", anchor=(0.5, 1.0), color=self._fg())
                        text.setPos(float(x), float(v))
                        self.plot.addItem(text)
        if n > 1:
            self.legend.setText(" &nbsp; ".join(keys))
            self.legend.setVisible(True)
        bottom = self.plot.getAxis("bottom")
        bottom.setTicks([list(enumerate(chart.categories))])
        lines = max((c.count("\n") + 1 for c in chart.categories), default=1)
        bottom.setHeight(10 + 16 * lines)  # room for two-line labels (value and its name)
        self.plot.setXRange(-0.6, max(len(chart.categories), 1) - 0.4, padding=0)
        self.plot.setYRange(0, 108 if labelled else 102, padding=0)

    def _fit_title(self) -> str:
        """The chart's title elided ("…") to the plot's width: a title wider than the plot made
        the plot wider than its widget, which then showed only its left part (digits 0–6 of 10
        in presentation mode at 1024×640)."""
        full = self.chart.title if self.chart is not None else ""
        font = self.plot.getPlotItem().titleLabel.item.font()
        text = QFontMetrics(font).elidedText(full, Qt.TextElideMode.ElideRight,
                                             max(40, self.plot.width() - 72))
        self.plot.setTitle(text)
        return text

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self.chart is not None:
            self._fit_title()

    def _fg(self) -> str:
        return self.palette().windowText().color().name()

    def heights(self, series: str) -> list[float]:
        """The drawn heights of one series (for tests)."""
        return [float(h) for h in self.bars[series].opts["height"]]


__all__ = ["MAX_LABELLED_BARS", "QtLessonChart"]
