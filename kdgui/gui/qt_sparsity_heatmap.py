"""Per-layer sparsity over time: layers × epochs, on a fixed 0–1 colour scale.

An ``ImageItem`` with ``axisOrder='row-major'`` (row = layer, column = epoch) and fixed levels, so
a colour means the same sparsity in every frame and every run; layer names label the rows.

The x view covers the planned run (:meth:`QtSparsityHeatmap.plan_x`, from ``RunStarted``) and the
data's columns, and is set only when they leave it: each change lays the x axis out again
(several ms of UI thread holding the GIL the training needs), and a view fitted to the columns
changed at every new column. The image itself always spans the data's columns only.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from kdgui.gui.qt_plot_base import QtLivePlot, foreground
from kdgui.gui.qt_steady_view import REFIT_BELOW

#: Longest layer name shown on the axis; longer names keep their tail (the distinctive part).
NAME_CHARS = 18
#: Room beyond the needed x span on each side when the view is set, as a fraction of it: the
#: first columns' spacing settles (steps 1, 10, 20, …) without moving the view again.
X_MARGIN = 0.02


def short_name(name: str) -> str:
    return name if len(name) <= NAME_CHARS else "…" + name[-(NAME_CHARS - 1):]


class QtSparsityHeatmap(QtLivePlot):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Sparsity per layer (fraction of zeros)", parent)
        self.plot.setLabel("bottom", "epoch")
        self.plot.invertY(True)
        self.plot.setMouseEnabled(x=True, y=False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.cmap = pg.colormap.get("viridis")
        self.image.setColorMap(self.cmap)
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(
            values=(0, 1), colorMap=self.cmap, interactive=False, width=12, label="sparsity"
        )
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        self.colorbar.getAxis("right").setTextPen(foreground())
        self.layer_names: list[str] = []
        self.columns: list[np.ndarray] = []
        self.stages: list[str] = []
        self.xs: list[float] = []
        self.unit = "epoch"
        #: The planned run's last column per unit ("epoch", "step"), from :meth:`plan_x`.
        self.plans: dict[str, float] = {}
        self._x_view: tuple[float, float] | None = None
        self._ticks: list[tuple[float, str]] | None = None

    def plan_x(self, upper: float | None, unit: str = "epoch") -> None:
        """Columns in ``unit`` will reach at least ``upper`` (None: forget every unit's plan)."""
        if upper is not None and self.plans.get(unit) == float(upper):
            return
        if upper is None:
            self.plans.clear()
        else:
            self.plans[unit] = float(upper)
        self._x_view = None
        self.mark_dirty()

    def add(self, layer_names: list[str], sparsity: np.ndarray, stage: str = "",
            x: float | None = None, unit: str = "epoch") -> None:
        """One column: the sparsity of each layer at time ``x`` (an epoch or a step)."""
        values = np.asarray(sparsity, dtype=np.float32).reshape(-1)
        if list(layer_names) != self.layer_names:
            # A new set of layers (another model): remap old columns by name, NaN where missing.
            old = dict(zip(self.layer_names, np.array(self.columns).T, strict=False)) if self.columns else {}
            self.layer_names = list(layer_names)
            n_old = len(self.columns)
            self.columns = [
                np.array([old[n][j] if n in old else np.nan for n in self.layer_names])
                for j in range(n_old)
            ]
        self.columns.append(values[: len(self.layer_names)])
        self.stages.append(stage)
        self.xs.append(float(len(self.xs) + 1 if x is None else x))
        if unit != self.unit:
            self.unit = unit
            self._x_view = None
            self.plot.setLabel("bottom", unit)
        self.mark_dirty()

    def matrix(self) -> np.ndarray:
        """Rows = layers, columns = epochs (what the image shows)."""
        if not self.columns:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack(self.columns, axis=1).astype(np.float32)

    def redraw(self) -> None:
        data = self.matrix()
        if data.size == 0:
            self.image.clear()
            return
        self.image.setImage(np.nan_to_num(data, nan=0.0), levels=(0.0, 1.0), autoLevels=False)
        # Columns are evenly spaced in time (every epoch, or every log_every steps).
        n = data.shape[1]
        spacing = (self.xs[-1] - self.xs[0]) / (n - 1) if n > 1 else 1.0
        left = self.xs[0] - spacing / 2
        self.image.setRect(left, 0, spacing * n, data.shape[0])
        ticks = [(i + 0.5, short_name(n)) for i, n in enumerate(self.layer_names)]
        step = max(1, len(ticks) // 24)  # keep labels legible for deep models
        if ticks[::step] != self._ticks:  # setting them lays the axis out again
            self._ticks = ticks[::step]
            self.plot.getAxis("left").setTicks([self._ticks, []])
        self._fit_x(left, left + spacing * n, spacing)
        self.plot.setYRange(0, data.shape[0], padding=0)

    def _fit_x(self, left: float, right: float, spacing: float) -> None:
        """Show the data's columns and the planned run's (module docstring)."""
        plan = self.plans.get(self.unit)
        lo, hi = left, right if plan is None else max(right, plan + spacing / 2)
        held = self._x_view
        if held is not None and held[0] <= lo and hi <= held[1] and \
                hi - lo >= REFIT_BELOW * (held[1] - held[0]):
            return
        margin = X_MARGIN * (hi - lo)
        self._x_view = (lo - margin, hi + margin)
        self.plot.setXRange(*self._x_view, padding=0)

    def cell_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(layer row, column) of the cell under data point (x, y), None outside the image."""
        if not self.columns or not self.layer_names:
            return None
        n = len(self.columns)
        spacing = (self.xs[-1] - self.xs[0]) / (n - 1) if n > 1 else 1.0
        col = int(np.floor((x - (self.xs[0] - spacing / 2)) / spacing))
        row = int(np.floor(y))
        if not (0 <= col < n and 0 <= row < len(self.layer_names)):
            return None
        return row, col

    def hover_text(self, x: float, y: float) -> str | None:
        """The layer, the time and the sparsity of the cell under the mouse."""
        cell = self.cell_at(x, y)
        if cell is None:
            return None
        row, col = cell
        value = float(self.columns[col][row]) if row < len(self.columns[col]) else float("nan")
        stage = f" ({self.stages[col]})" if self.stages[col] else ""
        shown = "not measured" if value != value else f"{100 * value:.1f}% zeros"
        return (f"{self.layer_names[row]}\n{self.unit} {self.xs[col]:g}{stage}\n"
                f"sparsity {shown}")

    def highlight(self, name: str) -> bool:
        """Outline the row of layer ``name`` (as selected in the Models view's layer table)."""
        index = next((i for i, n in enumerate(self.layer_names) if n == name), None)
        if index is None:  # table names may carry a prefix the run's names lack, or vice versa
            index = next((i for i, n in enumerate(self.layer_names)
                          if n.endswith(name) or name.endswith(n)), None)
        if getattr(self, "_highlight", None) is None:
            self._highlight = pg.LinearRegionItem(
                orientation="horizontal", movable=False,
                brush=pg.mkBrush(255, 80, 80, 40), pen=pg.mkPen((255, 60, 60), width=2))
            self._highlight.setZValue(10)
            self.plot.addItem(self._highlight)
        self.highlighted = None if index is None else self.layer_names[index]
        if index is None:
            self._highlight.hide()
            return False
        self._highlight.setRegion((index, index + 1))
        self._highlight.show()
        return True

    def clear(self) -> None:
        self.layer_names = []
        self.columns = []
        self.stages = []
        self.xs = []
        self._x_view = self._ticks = None
        self.image.clear()
        self.plot.getAxis("left").setTicks(None)
        self.mark_dirty()
