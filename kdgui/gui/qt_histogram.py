"""Weight histogram of one chosen layer, from the per-layer records of each measured stage.

The engine may attach a histogram to each layer record of a :class:`StageEvent`
(``{"name", "hist": {"counts": [...], "edges": [...]}}``); the window only draws it, so no
weights ever cross into the GUI thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QLabel, QVBoxLayout, QWidget

from kdgui.gui.qt_plot_base import SERIES_COLORS, QtLivePlot


def layer_histogram(layer: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(counts, edges) from one layer record, or None when it carries no histogram."""
    hist = layer.get("hist") or layer.get("histogram")
    if isinstance(hist, dict):
        counts, edges = hist.get("counts"), hist.get("edges")
    else:
        counts, edges = layer.get("hist_counts"), layer.get("hist_edges")
    if counts is None or edges is None or len(edges) != len(counts) + 1:
        return None
    return np.asarray(counts, dtype=float), np.asarray(edges, dtype=float)


class QtHistogram(QtLivePlot):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Weight histogram", parent)
        self.plot.setLabel("bottom", "weight value")
        self.plot.setLabel("left", "count")
        self.legend = self.add_legend((-10, 10))
        self.layer_box = QComboBox()
        self.layer_box.setToolTip("The layer whose weights are shown, for every measured stage.")
        self.layer_box.currentTextChanged.connect(lambda _t: self.mark_dirty())
        self.note = QLabel("")
        self.note.setWordWrap(True)
        layout = self.layout()
        assert isinstance(layout, QVBoxLayout)
        layout.insertWidget(0, self.layer_box)
        layout.addWidget(self.note)
        self.stages: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        self._items: list[Any] = []
        self._show_note()

    def set_stage(self, name: str, layers: list[dict[str, Any]]) -> None:
        hists = {}
        for layer in layers:
            h = layer_histogram(layer)
            if h is not None:
                hists[str(layer.get("name", "?"))] = h
        if not hists:
            return
        self.stages[name] = hists
        known = {self.layer_box.itemText(i) for i in range(self.layer_box.count())}
        for layer_name in hists:
            if layer_name not in known:
                self.layer_box.addItem(layer_name)
        self._show_note()
        self.mark_dirty()

    def _show_note(self) -> None:
        self.note.setText("" if self.stages else
                          "No weight histograms in this run yet: they appear with each measured "
                          "stage when the engine reports them.")
        self.note.setVisible(not self.stages)

    def redraw(self) -> None:
        for item in self._items:
            self.plot.removeItem(item)
        self._items.clear()
        self.legend.clear()
        layer = self.layer_box.currentText()
        for i, (stage, hists) in enumerate(self.stages.items()):
            if layer not in hists:
                continue
            counts, edges = hists[layer]
            color = SERIES_COLORS[i % len(SERIES_COLORS)]
            curve = pg.PlotDataItem(edges, counts, stepMode="center", fillLevel=0,
                                    pen=pg.mkPen(color, width=1.5), brush=pg.mkBrush(color + "40"),
                                    name=stage)
            self.plot.addItem(curve)
            self._items.append(curve)

    def clear(self) -> None:
        self.stages.clear()
        self.layer_box.clear()
        self._show_note()
        self.mark_dirty()
