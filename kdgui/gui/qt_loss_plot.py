"""Each loss term (hard, soft, feature, attention, total) against the training step."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from kdgui.gui.qt_plot_base import SERIES_COLORS, GrowingBuffer, QtLivePlot

#: Fixed colours per known term, so a term keeps its colour across runs.
TERM_ORDER = ("total", "hard", "soft", "feature", "attention")


class QtLossPlot(QtLivePlot):
    """One curve per loss term, created when the term first appears, then only ``setData``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Loss terms vs step", parent)
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setClipToView(True)
        self.plot.setDownsampling(auto=True, mode="peak")
        self.legend = self.add_legend((-10, 10))
        self.steps: dict[str, GrowingBuffer] = {}
        self.values: dict[str, GrowingBuffer] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}

    def add(self, step: int, losses: dict[str, float]) -> None:
        for term, value in losses.items():
            if value is None:
                continue
            if term not in self.curves and value == 0 and term != "total":
                continue  # a term with weight 0 (e.g. attention off) would be a flat line
            if term not in self.curves:
                self._new_curve(term)
            self.steps[term].append(step)
            self.values[term].append(float(value))
        self.mark_dirty()

    def _new_curve(self, term: str) -> None:
        index = TERM_ORDER.index(term) if term in TERM_ORDER else len(TERM_ORDER) + len(self.curves)
        color = SERIES_COLORS[index % len(SERIES_COLORS)]
        width = 2.5 if term == "total" else 1.5
        curve = self.plot.plot(name=term, pen=pg.mkPen(color, width=width))
        self.curves[term] = curve
        self.steps[term] = GrowingBuffer()
        self.values[term] = GrowingBuffer()

    def point_count(self) -> int:
        return sum(len(b) for b in self.values.values())

    def redraw(self) -> None:
        for term, curve in self.curves.items():
            curve.setData(self.steps[term].view(), self.values[term].view())

    def clear(self) -> None:
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        self.legend.clear()
        self.curves.clear()
        self.steps.clear()
        self.values.clear()
        self.mark_dirty()
