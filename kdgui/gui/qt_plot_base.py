"""What every live plot shares: growing buffers and redraws coalesced to at most 30 Hz.

Events can arrive hundreds of times a second from a fast run; replotting on each would starve the
event loop. A plot only *marks itself dirty* when data arrives; a single-shot timer then redraws
once per frame (33 ms), so the cost of drawing is bounded whatever the event rate (pyqtgraph's
``scrollingPlots`` habit: one curve object per line, ``setData`` on a timer).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QVBoxLayout, QWidget

#: Minimum milliseconds between two redraws of one plot (≤ 30 Hz).
FRAME_MS = 33
#: A plot waits this many times its own drawing cost before it draws again, so the plots together
#: take a bounded share of the UI thread — and of the GIL the training thread needs too.
#: Measured on 2 cores: four plots redrawing at 30 Hz cost ~7 ms each per frame and halved the
#: engine's throughput in the window; paced this way they update several times a second.
COST_FACTOR = 50
MAX_FRAME_MS = 500

#: Colours for series, readable on light and dark backgrounds.
SERIES_COLORS = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#7f7f7f",
]


class GrowingBuffer:
    """An append-only float array that doubles its capacity, so appends are O(1) amortised."""

    def __init__(self, capacity: int = 256) -> None:
        self._data = np.empty(capacity, dtype=np.float64)
        self._n = 0

    def append(self, value: float) -> None:
        if self._n == len(self._data):
            grown = np.empty(2 * len(self._data), dtype=np.float64)
            grown[: self._n] = self._data[: self._n]
            self._data = grown
        self._data[self._n] = value
        self._n += 1

    def view(self) -> np.ndarray:
        return self._data[: self._n]

    def __len__(self) -> int:
        return self._n

    def clear(self) -> None:
        self._n = 0


def foreground() -> str:
    """The palette's text colour, so plots follow the light or dark theme."""
    app = QApplication.instance()
    if app is None:
        return "#202020"
    return app.palette().color(QPalette.ColorRole.Text).name()  # type: ignore[attr-defined]


def background() -> str:
    app = QApplication.instance()
    if app is None:
        return "#ffffff"
    return app.palette().color(QPalette.ColorRole.Base).name()  # type: ignore[attr-defined]


class HoverReadout:
    """A crosshair and a small box with the values under the mouse (TensorBoard's hover)."""

    def __init__(self, owner: QtLivePlot) -> None:
        self.owner = owner
        plot = owner.plot
        pen = pg.mkPen(foreground(), width=1, style=Qt.PenStyle.DotLine)
        self.vline = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        self.label = pg.TextItem("", color=foreground(), fill=pg.mkBrush(background() + "e0"),
                                 border=pg.mkPen(foreground()))
        for item in (self.vline, self.label):
            item.setZValue(1000)
            item.hide()
            plot.addItem(item, ignoreBounds=True)
        self.text: str | None = None
        plot.scene().sigMouseMoved.connect(self.moved)

    def moved(self, scene_pos: QPointF) -> None:
        view = self.owner.plot.getViewBox()
        if not view.sceneBoundingRect().contains(scene_pos):
            self.hide()
            return
        point = view.mapSceneToView(scene_pos)
        self.show_at(point.x(), point.y())

    def show_at(self, x: float, y: float) -> str | None:
        """Show the readout at data point (x, y); returns the text shown (None: nothing)."""
        text = self.owner.hover_text(x, y)
        self.text = text
        if not text:
            self.hide()
            return None
        (x0, x1), (y0, y1) = self.owner.plot.getViewBox().viewRange()
        self.vline.setPos(x)
        self.label.setText(text)
        # Keep the box inside the plot: it opens away from the nearer edge.
        self.label.setAnchor((1.0 if x > (x0 + x1) / 2 else 0.0,
                              0.0 if y > (y0 + y1) / 2 else 1.0))
        self.label.setPos(x, y)
        self.vline.show()
        self.label.show()
        return text

    def hide(self) -> None:
        self.vline.hide()
        self.label.hide()


class QtLivePlot(QWidget):
    """Base of the live plots: a titled PlotWidget plus the coalescing redraw timer."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot_widget = pg.PlotWidget(background=background())
        self.plot = self.plot_widget.getPlotItem()
        fg = foreground()
        self.plot.setTitle(title, color=fg, size="10pt")
        self._full_title = title
        self.plot.getViewBox().sigResized.connect(lambda *_args: self.fit_title())
        for name in ("left", "bottom"):
            axis = self.plot.getAxis(name)
            axis.setPen(fg)
            axis.setTextPen(fg)
            # "(x0.001)" on an axis of hyper-parameters or milliseconds reads as a wrong value.
            axis.enableAutoSIPrefix(False)
        # Before any data, 0…1 rather than pyqtgraph's empty range (which shows −400…400).
        self.plot.getViewBox().setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.plot.enableAutoRange()  # setRange turned it off; data must still fit when it comes
        self._hover = HoverReadout(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot_widget)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self._redraw_now)
        self._dirty = False
        self._cost_s: float | None = None
        self.redraw_count = 0

    def fit_title(self) -> str:
        """Elide the title to the plot's width ("…"), so a narrow plot or presentation mode's
        larger font never cuts it off at both ends; returns the text shown."""
        from PySide6.QtGui import QFont, QFontMetrics

        title = self.plot.titleLabel
        size = str(title.opts.get("size") or "10pt")
        font = QFont(self.font())
        if size.endswith("pt"):
            font.setPointSizeF(float(size[:-2]))
        # The title is centred over the view box (not over the axes or a colour bar).
        view_width = self.plot.getViewBox().width()
        available = max(40, int(view_width if view_width > 40 else self.plot_widget.width())
                        - 8)
        text = QFontMetrics(font).elidedText(self._full_title, Qt.TextElideMode.ElideRight,
                                             available)
        if text != title.text:
            title.setText(text, size=size)
        return text

    def add_legend(self, offset: tuple[int, int]) -> pg.LegendItem:
        """A legend on a translucent panel, so curves behind it stay visible."""
        legend = self.plot.addLegend(offset=offset, labelTextColor=foreground())
        legend.setBrush(pg.mkBrush(background() + "c8"))
        return legend

    def mark_dirty(self) -> None:
        """Ask for a redraw at the next frame; any number of calls per frame cost one redraw."""
        self._dirty = True
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Redraw now if anything is pending (before a screenshot or an export)."""
        if self._dirty:
            self._timer.stop()
            self._redraw_now()

    def _redraw_now(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.redraw_count += 1
        started = time.perf_counter()
        self.redraw()
        if self.isVisible():
            self.plot_widget.viewport().repaint()  # paint now, so the cost is measured
        cost = time.perf_counter() - started
        self._cost_s = cost if self._cost_s is None else 0.7 * self._cost_s + 0.3 * cost
        self._timer.setInterval(
            int(min(MAX_FRAME_MS, max(FRAME_MS, 1000 * self._cost_s * COST_FACTOR))))

    def _export_svg(self, path: str) -> None:
        """Vector SVG through Qt's SVG painter: pyqtgraph's own SVG exporter fails on any plot
        with data under PySide6 6.11 ("not enough values to unpack"), so "Save plots as SVG"
        either failed or fell back to PNG."""
        from PySide6.QtCore import QRectF, QSize
        from PySide6.QtGui import QPainter
        from PySide6.QtSvg import QSvgGenerator

        source = self.plot.sceneBoundingRect()
        generator = QSvgGenerator()
        generator.setFileName(path)
        generator.setSize(QSize(int(source.width()), int(source.height())))
        generator.setViewBox(QRectF(0, 0, source.width(), source.height()))
        generator.setTitle(self.plot.titleLabel.text or "plot")
        painter = QPainter(generator)
        try:
            painter.fillRect(QRectF(0, 0, source.width(), source.height()),
                             pg.mkColor(background()))
            self.plot.scene().render(painter, QRectF(0, 0, source.width(), source.height()),
                                     source)
        finally:
            painter.end()
        if not Path(path).is_file():
            raise OSError(f"Qt wrote no SVG file at {path}")

    def redraw(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def hover_text(self, x: float, y: float) -> str | None:
        """What the crosshair reads at data point (x, y): by default, each named curve's value
        at the nearest x. Heatmaps override it with the cell's value."""
        rows = []
        nearest_x = None
        for item in self.plot.listDataItems():
            xs, ys = item.getData()
            name = item.name()
            if xs is None or len(xs) == 0 or not name:
                continue
            i = int(np.argmin(np.abs(np.asarray(xs, dtype=np.float64) - x)))
            nearest_x = float(xs[i]) if nearest_x is None else nearest_x
            rows.append(f"{name}: {float(ys[i]):.4g}")
        if not rows:
            return None
        x_label = self.plot.getAxis("bottom").labelText or "x"
        return f"{x_label} {nearest_x:g}\n" + "\n".join(rows)

    def clear(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def export(self, path: str) -> None:
        """Write the plot to PNG or SVG (by the file's suffix)."""
        import pyqtgraph.exporters as exporters

        self.flush()
        self._hover.hide()
        if path.lower().endswith(".svg"):
            self._export_svg(path)
        else:
            exporter = exporters.ImageExporter(self.plot)
            exporter.parameters()["width"] = max(800, int(self.plot.width()))
            exporter.export(path)
