"""Train and validation accuracy per epoch, with the teacher's accuracy as a reference line.

Epochs are counted across stages (distillation, then each fine-tune), so a compression stage's
fine-tuning continues the curve to the right; a vertical line marks where each stage begins.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from kdgui.gui.qt_plot_base import SERIES_COLORS, GrowingBuffer, QtLivePlot, foreground


def as_percent(value: float) -> float:
    """Accuracies come as fractions; show them as percent."""
    return 100.0 * value if value <= 1.0 else value


class QtAccuracyPlot(QtLivePlot):
    steady_range = True

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Accuracy vs epoch", parent)
        self.plot.setLabel("bottom", "epoch")
        self.plot.setLabel("left", "accuracy", units="%")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.legend = self.add_legend((-10, -10))
        self.x = GrowingBuffer()
        self.train = GrowingBuffer()
        self.val = GrowingBuffer()
        self.train_curve = self.plot.plot(
            name="train", pen=pg.mkPen(SERIES_COLORS[0], width=2), symbol="o", symbolSize=5,
            symbolBrush=SERIES_COLORS[0],
        )
        self.val_curve = self.plot.plot(
            name="validation", pen=pg.mkPen(SERIES_COLORS[1], width=2), symbol="s", symbolSize=5,
            symbolBrush=SERIES_COLORS[1],
        )
        teacher_pen = pg.mkPen(SERIES_COLORS[2], width=1.5, style=Qt.PenStyle.DashLine)
        self.teacher_line = pg.InfiniteLine(angle=0, movable=False, pen=teacher_pen)
        self.teacher_line.setVisible(False)
        self.plot.addItem(self.teacher_line)
        # The line is named in the legend (a label on it would hide the curves near 100 %).
        self._teacher_key = pg.PlotDataItem(pen=teacher_pen)
        self.teacher_accuracy: float | None = None
        self._stage: str | None = None
        self._stage_lines: list[pg.InfiniteLine] = []

    def set_teacher(self, accuracy: float | None) -> None:
        # NaN: not measured (no labelled validation image) — a NaN line breaks the view range.
        if accuracy is None or accuracy != accuracy or \
                as_percent(float(accuracy)) == self.teacher_accuracy:
            return  # every epoch event repeats it; rebuilding the legend each time is costly
        self.teacher_accuracy = as_percent(float(accuracy))
        self.teacher_line.setPos(self.teacher_accuracy)
        self.legend.removeItem(self._teacher_key)
        self.legend.addItem(self._teacher_key, f"teacher {self.teacher_accuracy:.1f}%")
        self.teacher_line.setVisible(True)

    def add(self, train_accuracy: float, val_accuracy: float, stage: str = "distill") -> None:
        x = len(self.x) + 1
        if stage != self._stage and self._stage is not None:
            line = pg.InfiniteLine(
                pos=x - 0.5, angle=90, movable=False,
                pen=pg.mkPen(foreground(), width=1, style=Qt.PenStyle.DotLine),
                label=stage, labelOpts={"position": 0.1, "color": foreground()},
            )
            self.plot.addItem(line)
            self._stage_lines.append(line)
        self._stage = stage
        self.x.append(x)
        self.train.append(as_percent(float(train_accuracy)))
        self.val.append(as_percent(float(val_accuracy)))
        self.mark_dirty()

    def redraw(self) -> None:
        x = self.x.view()
        for curve, buf in ((self.train_curve, self.train), (self.val_curve, self.val)):
            y = buf.view()
            shown = np.isfinite(y)  # unmeasured epochs (no labelled images) are left out
            curve.setData(x[shown], y[shown])

    def clear(self) -> None:
        for buf in (self.x, self.train, self.val):
            buf.clear()
        for line in self._stage_lines:
            self.plot.removeItem(line)
        self._stage_lines.clear()
        self._stage = None
        self.teacher_line.setVisible(False)
        self.legend.removeItem(self._teacher_key)
        self.teacher_accuracy = None
        self.mark_dirty()
