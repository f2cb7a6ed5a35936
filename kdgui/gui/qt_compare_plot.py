"""Validation accuracy (or total loss) of several runs on one plot, to compare experiments.

A class compares e.g. T = 1, 4 and 8: the table gives the final numbers, this plot shows how each
run got there (epochs counted across stages, like the Run panel's accuracy plot; loss against
the training step, like TensorBoard's overlaid scalars).
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from kdgui.core.events import EpochEvent, StepEvent
from kdgui.gui.qt_plot_base import SERIES_COLORS, QtLivePlot


def validation_curve(events: list[Any]) -> tuple[list[int], list[float]]:
    """(epoch index across stages, validation accuracy in %) of one run's epoch events."""
    values = [100.0 * e.val_accuracy for e in events if isinstance(e, EpochEvent)]
    return list(range(1, len(values) + 1)), values


def loss_curve(events: list[Any]) -> tuple[list[int], list[float]]:
    """(step, total loss) of one run's distillation steps; the epoch's mean loss stands in for
    a run shorter than ``log_every`` (which logs no step)."""
    xs, ys = [], []
    for e in events:
        if isinstance(e, StepEvent) and e.stage == "distill" and "total" in e.losses:
            xs.append(int(e.step))
            ys.append(float(e.losses["total"]))
    if not xs:
        for e in events:
            if isinstance(e, EpochEvent) and e.stage == "distill":
                xs.append(int(e.step))
                ys.append(float(e.train_loss))
    return xs, ys


class QtCompareCurves(QtLivePlot):
    """One curve per selected run: validation accuracy per epoch, or total loss per step."""

    def __init__(self, parent: QWidget | None = None, metric: str = "accuracy") -> None:
        title = ("Total loss of the selected runs" if metric == "loss"
                 else "Validation accuracy of the selected runs")
        super().__init__(title, parent)
        self.quantity = metric
        if metric == "loss":
            self.plot.setLabel("bottom", "step")
            self.plot.setLabel("left", "total loss")
        else:
            self.plot.setLabel("bottom", "epoch (all stages)")
            self.plot.setLabel("left", "accuracy", units="%")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.legend = self.add_legend((-10, 10) if metric == "loss" else (-10, -10))
        self.runs: list[tuple[str, list[int], list[float]]] = []
        self._curves: list[Any] = []

    def set_runs(self, runs: list[tuple[str, list[Any]]]) -> None:
        """``runs``: (name, events) for each selected run."""
        curve = loss_curve if self.quantity == "loss" else validation_curve
        self.runs = [(name, *curve(events)) for name, events in runs]
        self.mark_dirty()

    def redraw(self) -> None:
        for curve in self._curves:
            self.plot.removeItem(curve)
            self.legend.removeItem(curve)
        self._curves = []
        for i, (name, xs, ys) in enumerate(self.runs):
            color = SERIES_COLORS[i % len(SERIES_COLORS)]
            self._curves.append(self.plot.plot(xs, ys, name=name, pen=pg.mkPen(color, width=2),
                                               symbol="o", symbolSize=4, symbolBrush=color))

    def clear(self) -> None:
        self.runs = []
        self.mark_dirty()
