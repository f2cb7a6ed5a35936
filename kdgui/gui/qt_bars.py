"""Before/after bars: params, size, MACs, latency and accuracy for each measured stage.

The five metrics have different units, so each group shows every stage relative to the first
stage measured (normally the teacher = 100 %), with the absolute value written on each bar. Stages
arrive as :class:`kdgui.core.events.StageEvent` (teacher, student, each compression step) or from
a finished run's ``summary.json``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyqtgraph as pg
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QApplication, QWidget

from kdgui.gui import presentation
from kdgui.gui.qt_plot_base import SERIES_COLORS, QtLivePlot, foreground


def _si(value: float) -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"


def _bytes(value: float) -> str:
    for factor, suffix in ((2**30, "GB"), (2**20, "MB"), (2**10, "kB")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {suffix}"
    return f"{value:.0f} B"


@dataclass(frozen=True)
class Metric:
    """One bar group: label, the keys the engine may use for it, and how to print a value."""

    label: str
    keys: tuple[str, ...]
    fmt: Callable[[float], str]
    scale: float = 1.0  # multiply the stored value by this before formatting


#: "size" prefers the zipped file size: pruning zeroes weights without shrinking the raw file,
#: and the zip size is what shows the gain (the raw size is the fallback when unmeasured).
METRICS = (
    Metric("params", ("params", "parameters", "num_params", "n_params"), _si),
    Metric("size", ("zip_size_bytes", "size_bytes", "file_size_bytes", "bytes"), _bytes),
    Metric("size", ("size_mb",), _bytes, 2**20),
    Metric("MACs", ("macs", "MACs", "mac", "flops"), _si),
    Metric("latency", ("latency_ms", "latency_ms_b1", "latency"), lambda v: f"{v:.3g} ms"),
    Metric("accuracy", ("accuracy", "val_accuracy", "test_accuracy", "acc"),
           lambda v: f"{100 * v:.1f}%" if v <= 1 else f"{v:.1f}%"),
)
GROUPS = ("params", "size", "MACs", "latency", "accuracy")
#: What a group's tick says when its full name does not fit under it (the hover names it whole).
SHORT = {"params": "par.", "zip size": "zip", "size": "size", "MACs": "MACs", "latency": "lat.",
         "accuracy": "acc."}
#: The smallest tick font (pt) and the free pixels between two groups' tick labels.
MIN_TICK_PT = 7.0
TICK_GAP_PX = 6
#: Bars taller than this (% of the first stage) are cut off and marked "↑" (e.g. a slow stage).
CLIP_PERCENT = 150.0


def metric_values(metrics: dict[str, Any]) -> dict[str, float]:
    """The five group values found in one stage's metrics (missing ones left out)."""
    out: dict[str, float] = {}
    for metric in METRICS:
        if metric.label in out:
            continue
        for key in metric.keys:
            value = metrics.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and \
                    math.isfinite(value) and value >= 0:  # the engine writes -1 for "unknown"
                out[metric.label] = float(value) * metric.scale
                break
    return out


def format_value(group: str, value: float) -> str:
    metric = next(m for m in METRICS if m.label == group)
    return metric.fmt(value)


def stages_from_summary(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Stage name → metrics from a run summary: teacher, student, then each compression stage."""
    out: dict[str, dict[str, Any]] = {}
    for key in ("teacher", "student"):
        if isinstance(summary.get(key), dict) and metric_values(summary[key]):
            out[key] = dict(summary[key])
    stages = summary.get("stages")
    if isinstance(stages, dict):
        out.update({str(k): dict(v) for k, v in stages.items() if isinstance(v, dict)})
    elif isinstance(stages, list):
        for item in stages:
            if isinstance(item, dict):
                name = str(item.get("name") or f"stage {len(out) - 1}")
                metrics = item.get("metrics", item)
                if isinstance(metrics, dict):
                    out[name] = dict(metrics)
    return out


def _same_model(a: dict[str, float], b: dict[str, float]) -> bool:
    """Equal in everything but latency (which differs between two timings of one model)."""
    keys = (set(a) | set(b)) - {"latency"}
    return all(a.get(k) == b.get(k) for k in keys)


class QtBars(QtLivePlot):
    """Grouped bars; the legend sits above the tallest value label and wraps into rows that fit
    the plot's width, so it neither hides a label nor is clipped (measured in pixels at each
    redraw, and redrawn when the plot is resized)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Before / after (% of the teacher)", parent)
        self.plot.setLabel("left", "% of first stage")
        self.plot.showGrid(y=True, alpha=0.2)
        self.plot.setMouseEnabled(x=False, y=False)
        self._set_ticks(zip_size=True)
        # The (never shown) top axis gives its layout cell, above the bars, to the legend.
        self.plot.layout.removeItem(self.plot.getAxis("top"))
        self.legend: pg.LegendItem | None = None
        self.stages: dict[str, dict[str, float]] = {}
        self._zip: dict[str, bool] = {}
        self._items: list[Any] = []

    def _set_ticks(self, zip_size: bool) -> None:
        self._tick_names = [("zip size" if g == "size" and zip_size else g) for g in GROUPS]
        self.fit_ticks()

    def fit_ticks(self) -> tuple[list[str], float]:
        """Give every group a tick label that fits under it; returns (labels, font size in pt).

        pyqtgraph drops a label that sticks out of the axis and lets the others run together:
        in presentation mode at 1024×640 (a 50 px group) "params" and "accuracy" vanished and
        "zip size MACs latency" read as one. Tried in order: the full names in the current font
        shrunk down to 85 % of the normal (non-presentation) font, then the short names (the
        hover readout names the group whole) in the largest font that fits, then the full names
        at MIN_TICK_PT. The axis is as tall as the chosen font (pyqtgraph reserves 80 % of a
        line, which cut the text's bottom)."""
        axis = self.plot.getAxis("bottom")
        wanted = QFont(self.font())
        normal = wanted.pointSizeF() / (presentation.FONT_SCALE if presentation.is_on() else 1)
        view = self.plot.getViewBox().sceneBoundingRect().width()
        slot = (view if view > 50 else max(50, self.plot_widget.width() - 60)) / len(GROUPS)
        short = [SHORT.get(n, n) for n in self._tick_names]
        sizes = [wanted.pointSizeF() - 0.5 * i for i in range(64)]
        sizes = [pt for pt in sizes if pt >= MIN_TICK_PT] or [MIN_TICK_PT]

        def fits(labels: list[str], pt: float) -> bool:
            font = QFont(wanted)
            font.setPointSizeF(pt)
            metrics = QFontMetrics(font)
            return max(metrics.horizontalAdvance(t) for t in labels) + TICK_GAP_PX <= slot

        choice = next(((self._tick_names, pt) for pt in sizes
                       if pt >= 0.85 * normal and fits(self._tick_names, pt)), None)
        choice = choice or next(((short, pt) for pt in sizes if fits(short, pt)), None)
        labels, pt = choice or (self._tick_names, sizes[-1])
        font = QFont(wanted)
        font.setPointSizeF(pt)
        if axis.style.get("tickFont") != font:
            axis.setStyle(tickFont=font)
        offset = axis.style["tickTextOffset"][1] + max(0, axis.style["tickLength"])
        axis.setHeight(QFontMetrics(font).height() + offset + 2)
        if labels != getattr(self, "_tick_labels", None):
            axis.setTicks([list(enumerate(labels)), []])
            self._tick_labels = labels
        return labels, pt

    def fit_title(self) -> str:
        """The title (elided) and the group labels follow the plot's width and font."""
        text = super().fit_title()
        if hasattr(self, "_tick_names"):
            self.fit_ticks()
        return text

    def set_stage(self, name: str, metrics: dict[str, Any]) -> None:
        values = metric_values(metrics)
        if not values:
            return
        if name == "before" and any(_same_model(v, values) for v in self.stages.values()):
            return  # the pipeline's "before" is the student measured again: one bar is enough
        self.stages[name] = {**self.stages.get(name, {}), **values}
        self._zip[name] = isinstance(metrics.get("zip_size_bytes"), (int, float)) and \
            metrics["zip_size_bytes"] >= 0
        self.mark_dirty()

    def legend_names(self) -> list[str]:
        """The names the legend shows, in order (tests and screenshots read it)."""
        if self.legend is None:
            return []
        return [label.text for _sample, label in self.legend.items]

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        if self.stages:
            self.mark_dirty()

    def _new_legend(self, names: list[str], colors: list[str], width_px: float) -> None:
        """A fresh legend (pyqtgraph's loses items when re-laid out) in the plot's empty
        top-axis row, above the view box: it takes space from the bars instead of covering
        them, wraps into as many columns as fit ``width_px``, and is part of saved images."""
        if self.legend is not None:
            self.plot.layout.removeItem(self.legend)
            if self.legend.scene() is not None:
                self.legend.scene().removeItem(self.legend)
            self.legend = None
        if not names:
            return
        metrics = QFontMetrics(QApplication.font())
        col_w = max(metrics.horizontalAdvance(n) for n in names) + 44
        columns = max(1, min(len(names), int((width_px - 8) // col_w)))
        legend = pg.LegendItem(colCount=columns, labelTextColor=foreground())
        for name, color in zip(names, colors, strict=True):
            legend.addItem(pg.BarGraphItem(x=[0], height=[1], width=1, brush=color, pen=None),
                           name)
        self.plot.layout.addItem(legend, 1, 1)
        self.plot.layout.setRowStretchFactor(1, 0)
        legend.updateSize()
        self.legend = legend

    def redraw(self) -> None:
        for item in self._items:
            self.plot.removeItem(item)
        self._items.clear()
        if not self.stages:
            self._new_legend([], [], 0)
            return
        names = list(self.stages)
        self._set_ticks(zip_size=all(self._zip.get(n, False) for n in names))
        width = 0.8 / len(names)
        font = QFont()
        font.setPointSize(7)
        label_metrics = QFontMetrics(font)
        top = 100.0
        colors = [SERIES_COLORS[s % len(SERIES_COLORS)] for s in range(len(names))]
        series = []
        for s, name in enumerate(names):
            xs, heights, labels = [], [], []
            for g, group in enumerate(GROUPS):
                value = self.stages[name].get(group)
                if value is None:
                    continue
                base = next((self.stages[n][group] for n in names if group in self.stages[n]
                             and self.stages[n][group]), None)
                rel = 100.0 * value / base if base else 0.0
                clipped = rel > CLIP_PERCENT
                xs.append(g - 0.4 + width * (s + 0.5))
                heights.append(min(rel, CLIP_PERCENT))
                labels.append(("↑ " if clipped else "") + format_value(group, value))
            series.append((name, xs, heights, labels))
        longest = max((label_metrics.horizontalAdvance(t) for *_r, labels in series
                       for t in labels), default=0)
        view = self.plot.getViewBox().sceneBoundingRect()
        w_px = view.width() if view.width() > 50 else 400.0
        # Values are written upright when they are wider than a bar's slot (they overlapped
        # their neighbours with three stages in a 500 px plot).
        upright = longest + 4 > w_px / len(GROUPS) * width
        for s, (name, xs, heights, labels) in enumerate(series):
            bars = pg.BarGraphItem(x=xs, height=heights, width=width * 0.9, brush=colors[s],
                                   pen=None, name=name)
            self.plot.addItem(bars)
            self._items.append(bars)
            for x, h, text in zip(xs, heights, labels, strict=False):
                if upright:
                    label = pg.TextItem(text, color=foreground(), anchor=(0.0, 0.5), angle=90)
                else:
                    label = pg.TextItem(text, color=foreground(), anchor=(0.5, 1.0))
                label.setFont(font)
                label.textItem.document().setDocumentMargin(1)  # tight: narrow bars fit it
                label.setPos(x, h)
                self.plot.addItem(label)
                self._items.append(label)
                top = max(top, h)
        self._new_legend(names, colors, w_px)
        self.plot.layout.activate()  # the legend's row is taken from the bars' height now
        view = self.plot.getViewBox().sceneBoundingRect()
        h_px = view.height() if view.height() > 50 else 200.0
        label_px = (longest + 8) if upright else (label_metrics.height() + 4)
        free = max(0.3, 1.0 - (label_px + 6) / h_px)
        self.plot.setXRange(-0.5, len(GROUPS) - 0.5, padding=0)
        self.plot.setYRange(0, top / free, padding=0)

    def hover_text(self, x: float, y: float) -> str | None:
        """Every stage's value in the group under the mouse."""
        g = round(x)
        if not 0 <= g < len(GROUPS) or not self.stages:
            return None
        group = GROUPS[g]
        rows = [f"{name}: {format_value(group, v[group])}" for name, v in self.stages.items()
                if group in v]
        return "\n".join([group, *rows]) if rows else None

    def clear(self) -> None:
        self.stages.clear()
        self._zip.clear()
        self.mark_dirty()
        self._dirty = True
