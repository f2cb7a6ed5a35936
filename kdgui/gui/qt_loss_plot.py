"""Each loss term of the run (its ``distill.terms``, or the shorthand's hard/soft/feature/
attention) and the total, against the training step.

The curves follow the run's term list: the engine sends each step's losses in the list's order,
so the first step event fixes each term's colour and legend position (total first), whatever
the terms are called; the shorthand's four terms keep the colours they always had.

Like TensorBoard's scalars, the plot has a smoothing slider (an exponential moving average,
debiased so the first points are not pulled towards zero) and a visible log-scale toggle: loss
curves span decades, and a noisy curve hides its trend without smoothing.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSlider, QWidget

from kdgui.gui.qt_plot_base import SERIES_COLORS, GrowingBuffer, QtLivePlot


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: a debiased exponential moving average with ``weight`` in [0, 1)."""
    if weight <= 0 or len(values) == 0:
        return values
    out = np.empty(len(values), dtype=np.float64)
    last, debias = 0.0, 0.0
    for i, v in enumerate(values):
        last = weight * last + (1 - weight) * float(v)
        debias = weight * debias + (1 - weight)
        out[i] = last / debias
    return out


class QtLossPlot(QtLivePlot):
    """One curve per loss term, created when the term first appears, then only ``setData``."""

    steady_range = True

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
        #: The run's terms in its list's order (total first), from the first step event.
        self.order: list[str] = []
        controls = QHBoxLayout()
        controls.setContentsMargins(4, 0, 4, 0)
        self.log_box = QCheckBox("log scale")
        self.log_box.setToolTip("Logarithmic loss axis: see small losses late in training")
        self.log_box.toggled.connect(self.set_log)
        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, 99)
        self.smoothing.setToolTip("Exponential moving average of each curve, as in TensorBoard")
        self.smoothing.valueChanged.connect(self._smoothing_changed)
        self.smoothing_label = QLabel("smoothing 0.00")
        controls.addWidget(self.log_box)
        controls.addStretch(1)
        controls.addWidget(self.smoothing_label)
        controls.addWidget(self.smoothing, 1)
        self.layout().insertLayout(0, controls)

    @property
    def smoothing_weight(self) -> float:
        return self.smoothing.value() / 100.0

    def set_log(self, on: bool) -> None:
        self.log_box.setChecked(on)
        self.plot.setLogMode(y=on)
        self.plot.enableAutoRange()

    def _smoothing_changed(self, value: int) -> None:
        self.smoothing_label.setText(f"smoothing {value / 100:.2f}")
        self.mark_dirty()

    def add(self, step: int, losses: dict[str, float]) -> None:
        if not self.order:
            self.order = ["total", *(k for k in losses if k != "total")]
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
        if term not in self.order:  # a stage with other terms (fine-tuning): after the list's
            self.order.append(term)
        index = self.order.index(term)
        color = SERIES_COLORS[index % len(SERIES_COLORS)]
        width = 2.5 if term == "total" else 1.5
        curve = self.plot.plot(name=term, pen=pg.mkPen(color, width=width))
        self.curves[term] = curve
        self.steps[term] = GrowingBuffer()
        self.values[term] = GrowingBuffer()

    def point_count(self) -> int:
        return sum(len(b) for b in self.values.values())

    def shown_values(self, term: str) -> np.ndarray:
        """The values drawn for ``term`` (smoothed when the slider is above 0)."""
        return smooth(self.values[term].view(), self.smoothing_weight)

    def hover_text(self, x: float, y: float) -> str | None:
        """Each term's (shown) loss at the logged step nearest to the mouse."""
        rows, at = [], None
        for term in self.curves:
            steps = self.steps[term].view()
            if len(steps) == 0:
                continue
            i = int(np.argmin(np.abs(steps - x)))
            at = int(steps[i]) if at is None else at
            rows.append(f"{term}: {self.shown_values(term)[i]:.4g}")
        return None if at is None else f"step {at}\n" + "\n".join(rows)

    def redraw(self) -> None:
        for term, curve in self.curves.items():
            ys = self.shown_values(term)
            if self.log_box.isChecked():
                ys = np.maximum(ys, 1e-12)  # log of a zero loss is not drawable
            curve.setData(self.steps[term].view(), ys)

    def clear(self) -> None:
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        self.legend.clear()
        self.curves.clear()
        self.order.clear()
        self.steps.clear()
        self.values.clear()
        self.mark_dirty()
