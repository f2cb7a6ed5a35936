"""What every live plot shares: growing buffers, and redraws paced by one frame clock.

Events can arrive hundreds of times a second from a fast run; replotting on each would starve the
event loop. A plot only *marks itself dirty* when data arrives (pyqtgraph's ``scrollingPlots``
habit: one curve object per line, ``setData`` on a timer). One :class:`FrameClock` for all plots
then redraws **one** dirty plot per frame (33 ms), the one that has waited longest, and after a
redraw that cost *c* (its ``setData`` and the paint Qt does for it) lets no plot redraw for
*c* / :data:`UI_BUDGET`. Why one clock and a budget:

* Drawing runs on the UI thread and mostly in Python (pyqtgraph's axes), holding the GIL that the
  training thread needs between its torch ops: every millisecond of drawing is a millisecond of
  training lost (measured: plots redrawing at 30 Hz halved the demo's throughput in the window;
  plots paced each on its own still cost the run 10–20 %). With one budget the plots together
  take at most :data:`UI_BUDGET` of the time, whatever their number or the machine's speed.
* Plots with their own timers redrew in the same pass of the event loop: four 9 ms redraws froze
  the window 36 ms at a time. One plot per frame keeps each freeze to one plot's cost.
* A plot that has drawn nothing since it was cleared draws at the next frame, budget or not:
  the first live point of a run shows at once.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import shiboken6
from PySide6.QtCore import QObject, QPointF, Qt, QTimer
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QVBoxLayout, QWidget

from kdgui.gui.qt_steady_view import SteadyViewBox, cache_axes

#: The frame clock's period: at most one plot redraws per frame (≤ 30 redraws a second).
FRAME_MS = 33
#: The share of the UI thread's time (and of the GIL) that redrawing plots may take.
UI_BUDGET = 0.01
#: Longest pause the budget imposes after one redraw, so a slow machine still updates.
MAX_PAUSE_S = 1.0

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


class FrameClock(QObject):
    """Redraws the live plots: one per frame, oldest request first, within :data:`UI_BUDGET`."""

    def __init__(self) -> None:
        super().__init__()
        self._queue: list[QtLivePlot] = []
        self._quiet_until = 0.0
        # Single-shot: while every waiting plot waits for the budget, the clock sleeps until
        # the quiet time ends instead of waking the UI thread (and taking the GIL) every frame.
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self._on_timer)
        #: Redraws done by :meth:`tick` (tests count them).
        self.ticks_drawn = 0

    def request(self, plot: QtLivePlot) -> None:
        if plot not in self._queue:
            self._queue.append(plot)
        if not self._timer.isActive():
            self._timer.start(FRAME_MS)

    def forget(self, plot: QtLivePlot) -> None:
        if plot in self._queue:
            self._queue.remove(plot)

    def spend(self, seconds: float) -> None:
        """Charge ``seconds`` of drawing to the budget: no redraw for ``seconds / UI_BUDGET``."""
        pause = min(MAX_PAUSE_S, seconds / UI_BUDGET)
        self._quiet_until = max(self._quiet_until, time.perf_counter() + pause)

    def pending(self) -> list[QtLivePlot]:
        return list(self._queue)

    def _on_timer(self) -> None:
        self.tick()
        if self._queue:
            wait_ms = 1000 * (self._quiet_until - time.perf_counter())
            fresh = any(not p.drawn_since_clear for p in self._queue)
            self._timer.start(FRAME_MS if fresh else int(max(FRAME_MS, wait_ms)))

    def tick(self) -> QtLivePlot | None:
        """Redraw the plot that has waited longest, if the budget allows; returns it."""
        queue = self._queue
        if not queue:
            self._timer.stop()
            return None
        fresh = next((p for p in queue if not p.drawn_since_clear), None)
        plot = fresh or (queue[0] if time.perf_counter() >= self._quiet_until else None)
        if plot is None:
            return None
        queue.remove(plot)
        if not shiboken6.isValid(plot):  # its widget was deleted while it waited
            return None
        self.ticks_drawn += 1
        plot._redraw_now()
        return plot


_CLOCK: list[FrameClock] = []


def frame_clock() -> FrameClock:
    """The one frame clock of this process (made on first use, on the UI thread)."""
    if not _CLOCK:
        _CLOCK.append(FrameClock())
    return _CLOCK[0]


class _TimedPlotWidget(pg.PlotWidget):
    """A PlotWidget that reports what each paint cost (Qt paints after ``setData``, later)."""

    def __init__(self, owner: QtLivePlot, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._owner = owner

    def paintEvent(self, event: object) -> None:
        started = time.perf_counter()
        super().paintEvent(event)
        self._owner._painted(time.perf_counter() - started)


class QtLivePlot(QWidget):
    """Base of the live plots: a titled PlotWidget whose redraws the frame clock paces."""

    _paint_pending = False
    paint_count = 0
    #: A growing live curve: the auto range moves in steps (qt_steady_view), not every redraw.
    steady_range = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        """A plot's ``clear`` makes it fresh again: its next data draws at the next frame."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("clear")
        if own is None or getattr(own, "_marks_fresh", False):
            return

        @functools.wraps(own)
        def clear(self: QtLivePlot, *args: object, **kw: object) -> object:
            result = own(self, *args, **kw)
            self.drawn_since_clear = False
            self.plan_x(None)  # a cleared plot shows a new run: the old plan is not its own
            return result

        clear._marks_fresh = True  # type: ignore[attr-defined]
        cls.clear = clear  # type: ignore[method-assign]

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        view = SteadyViewBox() if self.steady_range else None
        self.plot_widget = _TimedPlotWidget(self, background=background(), viewBox=view)
        self.plot = self.plot_widget.getPlotItem()
        cache_axes(self.plot)
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
        self._clock = frame_clock()
        self._dirty = False
        #: False from :meth:`clear` until the next redraw (the frame clock draws it first).
        self.drawn_since_clear = False
        #: Whether the next paint follows a redraw (its cost is charged to the budget).
        self._paint_pending = False
        self.redraw_count = 0
        self.paint_count = 0

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
        title.setMinimumWidth(0)  # setText sets it to the text's width: the plot got wider
        return text

    def add_legend(self, offset: tuple[int, int]) -> pg.LegendItem:
        """A legend on a translucent panel, so curves behind it stay visible."""
        legend = self.plot.addLegend(offset=offset, labelTextColor=foreground())
        legend.setBrush(pg.mkBrush(background() + "c8"))
        return legend

    def plan_x(self, upper: float | None) -> None:
        """The x data will reach at least ``upper`` (a planned run's end; None: no plan)."""
        if isinstance(view := self.plot.getViewBox(), SteadyViewBox):
            view.plan_x(upper)

    def mark_dirty(self) -> None:
        """Ask the frame clock for a redraw; any number of calls before it costs one redraw."""
        self._dirty = True
        self._clock.request(self)

    def flush(self) -> None:
        """Redraw now if anything is pending (before a screenshot or an export)."""
        if self._dirty:
            self._clock.forget(self)
            self._redraw_now()

    def _redraw_now(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.redraw_count += 1
        started = time.perf_counter()
        self.redraw()
        self.drawn_since_clear = True
        self._paint_pending = self.isVisible()
        self._clock.spend(time.perf_counter() - started)

    def _painted(self, seconds: float) -> None:
        """A paint of the plot: the one after a redraw is charged to the frame clock's budget
        (hover and resize paints are the user's, not the run's)."""
        self.paint_count += 1
        if self._paint_pending:
            self._paint_pending = False
            self._clock.spend(seconds)

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
