"""Presentation mode: larger fonts and thicker plot lines, for projectors at the back of a room.

``set_presentation_mode(window, True)`` scales the application font and, in every pyqtgraph plot
under ``window``, the axis fonts, curve and bar pens, and scatter symbols; ``False`` restores what
was there. Plots made later can ask :func:`line_width` for the width to use. Switching twice is
harmless: original values are remembered on first use and restored, never scaled again.
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication, QWidget

FONT_SCALE = 1.5
LINE_SCALE = 2.5
_state: dict[str, Any] = {"on": False, "app_font": None}


def is_on() -> bool:
    return bool(_state["on"])


def line_width(normal: float = 1.5) -> float:
    """The pen width a new curve should use in the current mode."""
    return normal * LINE_SCALE if _state["on"] else normal


def _scaled_font(font: QFont, scale: float) -> QFont:
    f = QFont(font)
    if f.pointSizeF() > 0:
        f.setPointSizeF(f.pointSizeF() * scale)
    else:
        f.setPixelSize(max(1, round(f.pixelSize() * scale)))
    return f


def _scale_item(item: Any, on: bool) -> None:
    """Thicken (or restore) one plot item's pen and symbol."""
    saved = getattr(item, "_kdgui_presentation", None)
    if isinstance(item, pg.PlotDataItem):
        if saved is None:
            saved = {"pen": pg.mkPen(item.opts.get("pen")), "size": item.opts.get("symbolSize")}
            item._kdgui_presentation = saved
        pen = pg.mkPen(saved["pen"])
        if on:
            pen.setWidthF(max(1.0, pen.widthF()) * LINE_SCALE)
        item.setPen(pen)
        if saved["size"]:
            item.setSymbolSize(saved["size"] * (1.6 if on else 1.0))
    elif isinstance(item, pg.BarGraphItem):
        if saved is None:
            saved = {"pen": item.opts.get("pen")}
            item._kdgui_presentation = saved
        pen = pg.mkPen(saved["pen"]) if saved["pen"] is not None else pg.mkPen(None)
        if on and pen.style() != 0:
            pen.setWidthF(max(1.0, pen.widthF()) * LINE_SCALE)
        item.setOpts(pen=pen)
    elif isinstance(item, pg.ScatterPlotItem):
        if saved is None:
            saved = {"size": item.opts.get("size", 10)}
            item._kdgui_presentation = saved
        item.setSize(saved["size"] * (1.6 if on else 1.0))


def _scale_plot(plot: pg.PlotWidget, on: bool, scale: float) -> None:
    plot_item = plot.getPlotItem()
    for name in ("left", "bottom", "right", "top"):
        axis = plot_item.getAxis(name)
        saved = getattr(axis, "_kdgui_presentation", None)
        if saved is None:
            saved = {"font": QFont(axis.style.get("tickFont") or plot.font())}
            axis._kdgui_presentation = saved
        font = _scaled_font(saved["font"], scale) if on else saved["font"]
        axis.setStyle(tickFont=font)
        axis.label.setFont(font)
    title = plot_item.titleLabel
    saved_title = getattr(title, "_kdgui_presentation", None)
    if saved_title is None:
        saved_title = {"size": title.opts.get("size") or "9pt"}
        title._kdgui_presentation = saved_title
    if title.text:
        size = saved_title["size"]
        if on and size.endswith("pt"):
            size = f"{float(size[:-2]) * scale:g}pt"
        title.setText(title.text, size=size)
    owner = plot.parentWidget()
    if owner is not None and hasattr(owner, "fit_title"):
        owner.fit_title()  # the larger title is elided to the plot's width, never cut off
    for item in plot_item.items:
        _scale_item(item, on)


def set_presentation_mode(root: QWidget, on: bool, scale: float = FONT_SCALE) -> None:
    """Turn presentation mode on or off for the application and the plots under ``root``."""
    app = QApplication.instance()
    if app is not None:
        if _state["app_font"] is None:
            _state["app_font"] = QFont(app.font())
        app.setFont(_scaled_font(_state["app_font"], scale) if on else _state["app_font"])
    _state["on"] = bool(on)
    for plot in root.findChildren(pg.PlotWidget):
        _scale_plot(plot, on, scale)
    if isinstance(root, pg.PlotWidget):
        _scale_plot(root, on, scale)


__all__ = ["FONT_SCALE", "LINE_SCALE", "is_on", "line_width", "set_presentation_mode"]
