"""Colouring Netron's graph from the window: changed layers, measured overlays, a legend.

Netron draws each node as an SVG group whose id is ``node-name-<ONNX node name>``; its header is
a ``path`` under ``.node-item-type`` and its outline a ``path.node-border``. The scripts below
set inline styles on those (which win over Netron's stylesheet), mark every painted node with a
``data-kdgui`` attribute so a repaint can clear them, and never call Netron's own code, so a
Netron update that renames these classes loses the colours, not the graph. Netron redraws the
graph when the user changes its view options; :func:`paint_script` is idempotent and the views
call it again when the marks are gone.

Selection: Netron adds the ``select`` class to the node the user clicked;
:data:`SELECTED_SCRIPT` reads it. :func:`focus_script` outlines nodes and scrolls them into the
middle of Netron's scroll container (``#target``) — Netron's own selection is not changed.
"""

from __future__ import annotations

import json
import math

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QLinearGradient, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

#: Outline colour of each change kind (``kdgui.engine.model_diff.KINDS``; ``same`` is not drawn).
CHANGE_COLOURS = {"pruned": "#f28e2b", "quantized": "#b07aa1", "shared": "#17becf",
                  "decomposed": "#4e79a7", "removed": "#e15759", "added": "#59a14f",
                  "changed": "#edc948"}
#: The overlay colour scale, low to high (pale yellow → orange → dark red).
SCALE = ("#ffffb2", "#fd8d3c", "#bd0026")
#: Outline of the layer selected on the other side.
FOCUS = "#00a0ff"
PREFIX = "node-name-"

SELECTED_SCRIPT = ("(() => { const e = document.querySelector('g.node.select'); "
                   "return e && e.id ? e.id : ''; })()")
#: ``true`` once a graph is drawn and still carries kdgui's marks (or has nothing to mark).
PAINTED_SCRIPT = ("(() => document.querySelectorAll('g.node').length === 0 || "
                  "!!document.querySelector('[data-kdgui]'))()")


def scale_colour(value: float, lo: float, hi: float, *, log: bool = False) -> str:
    """``value``'s colour on :data:`SCALE` between ``lo`` and ``hi`` (log-spaced with ``log``)."""
    if log and lo > 0 and hi > 0 and value > 0:
        value, lo, hi = math.log10(value), math.log10(lo), math.log10(hi)
    t = 0.0 if hi <= lo else min(1.0, max(0.0, (value - lo) / (hi - lo)))
    index = min(len(SCALE) - 2, int(t * (len(SCALE) - 1)))
    local = t * (len(SCALE) - 1) - index
    a, b = QColor(SCALE[index]), QColor(SCALE[index + 1])
    mixed = QColor(round(a.red() + (b.red() - a.red()) * local),
                   round(a.green() + (b.green() - a.green()) * local),
                   round(a.blue() + (b.blue() - a.blue()) * local))
    return mixed.name()


def overlay_fills(sides: list[object], key: str | None
                  ) -> tuple[list[dict[str, str]], tuple[float, float] | None, bool]:
    """Node fills of each measured side (``overlays``, ``nodes``) for overlay ``key``, on one
    scale over all sides; returns ``(fills per side, (low, high) or None, log scale)``. Latency
    is log-scaled (layers differ by orders of magnitude), quantization error linear."""
    columns = [s.overlays.column(key) if key and getattr(s, "overlays", None) else {}
               for s in sides]
    found = [v for column in columns for v in column.values()]
    if not found:
        return [{} for _ in sides], None, False
    lo, hi = min(found), max(found)
    log = key == "latency_ms" and lo > 0
    fills = [{n: scale_colour(v, lo, hi, log=log) for layer, v in column.items()
              for n in side.nodes.get(layer, [])} for side, column in zip(sides, columns,
                                                                          strict=True)]
    return fills, (lo, hi), log


def overlay_title(key: str, log: bool) -> str:
    """The legend's title of overlay ``key``."""
    if key == "latency_ms":
        return "latency (ms per batch" + (", log scale)" if log else ")")
    return "quantization error (relative L2 vs the float layer)"


def paint_script(fills: dict[str, str], borders: dict[str, str]) -> str:
    """JS that clears earlier marks, then fills node headers and outlines nodes (by node name);
    it returns how many nodes it found."""
    return (
        "(() => { const fills = " + json.dumps(fills) + ", borders = " + json.dumps(borders)
        + "; for (const e of document.querySelectorAll('[data-kdgui]')) {"
        " e.removeAttribute('data-kdgui');"
        " for (const p of e.querySelectorAll('path, text')) { p.style.removeProperty('fill');"
        " p.style.removeProperty('stroke'); p.style.removeProperty('stroke-width'); } }"
        " const found = new Set();"
        " const get = (n) => document.getElementById('" + PREFIX + "' + n);"
        " for (const [n, c] of Object.entries(fills)) { const e = get(n); if (!e) continue;"
        " e.setAttribute('data-kdgui', '1'); found.add(n);"
        " const head = e.querySelector('.node-item-type path');"
        " if (head) head.style.fill = c;"
        " const text = e.querySelector('.node-item-type text');"
        " const l = parseInt(c.slice(1, 3), 16) * 0.299 + parseInt(c.slice(3, 5), 16) * 0.587"
        " + parseInt(c.slice(5, 7), 16) * 0.114;"
        " if (text) text.style.fill = l > 150 ? '#000' : '#fff'; }"
        " for (const [n, c] of Object.entries(borders)) { const e = get(n); if (!e) continue;"
        " e.setAttribute('data-kdgui', '1'); found.add(n);"
        " const b = e.querySelector(':scope > path.node-border');"
        " if (b) { b.style.stroke = c; b.style.strokeWidth = '4px'; } }"
        " return found.size; })()")


def focus_script(nodes: list[str]) -> str:
    """JS that outlines ``nodes`` (and only them) in :data:`FOCUS` and scrolls the first into
    the middle of the view; returns how many it found."""
    return (
        "(() => { const names = " + json.dumps(nodes) + ";"
        " for (const e of document.querySelectorAll('[data-kdgui-focus]')) {"
        " e.removeAttribute('data-kdgui-focus');"
        " const b = e.querySelector(':scope > path.node-border');"
        " if (b) { b.style.outline = ''; b.style.removeProperty('filter'); } }"
        " const found = names.map((n) => document.getElementById('" + PREFIX + "' + n))"
        ".filter((e) => e);"
        " for (const e of found) { e.setAttribute('data-kdgui-focus', '1');"
        " const b = e.querySelector(':scope > path.node-border');"
        " if (b) b.style.filter = 'drop-shadow(0 0 6px " + FOCUS + ")'; }"
        " const c = document.getElementById('target');"
        " if (found.length && c) { const r = found[0].getBoundingClientRect(),"
        " cr = c.getBoundingClientRect();"
        " c.scrollTo({left: c.scrollLeft + r.left + r.width / 2 - cr.left - c.clientWidth / 2,"
        " top: c.scrollTop + r.top + r.height / 2 - cr.top - c.clientHeight / 2,"
        " behavior: 'auto'}); }"
        " return found.length; })()")


def node_of(element_id: str) -> str:
    """The ONNX node name of a Netron node element id (``''`` for anything else)."""
    return element_id[len(PREFIX):] if element_id.startswith(PREFIX) else ""


class QtColourLegend(QWidget):
    """A colour scale (title, gradient, low and high values) or a list of colour swatches."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = ""
        self.range: tuple[str, str] | None = None
        self.swatches: list[tuple[str, str]] = []
        self.setMinimumHeight(40)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_scale(self, title: str, low: str, high: str) -> None:
        self.title, self.range, self.swatches = title, (low, high), []
        self.update()

    def set_swatches(self, title: str, swatches: list[tuple[str, str]]) -> None:
        self.title, self.range, self.swatches = title, None, list(swatches)
        self.update()

    def clear(self) -> None:
        self.title, self.range, self.swatches = "", None, []
        self.update()

    def paintEvent(self, event: object) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        metrics = painter.fontMetrics()
        height = metrics.height()
        painter.drawText(0, height, self.title)
        x, y = 0, height + 4
        if self.range is not None:
            low, high = self.range
            width = max(60, self.width() - metrics.horizontalAdvance(low + high) - 24)
            x = metrics.horizontalAdvance(low) + 6
            painter.drawText(0, y + height - 3, low)
            gradient = QLinearGradient(x, 0, x + width, 0)
            for i, colour in enumerate(SCALE):
                gradient.setColorAt(i / (len(SCALE) - 1), QColor(colour))
            painter.fillRect(QRectF(x, y, width, height), gradient)
            painter.setPen(Qt.GlobalColor.gray)
            painter.drawRect(QRectF(x, y, width, height))
            painter.setPen(self.palette().text().color())
            painter.drawText(int(x + width + 6), y + height - 3, high)
            return
        for label, colour in self.swatches:
            size = metrics.horizontalAdvance(label) + height + 14
            if x + size > self.width() and x > 0:
                x, y = 0, y + height + 4
            painter.setPen(QColor(colour))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            pen = painter.pen()
            pen.setWidth(3)
            painter.setPen(pen)
            painter.drawRect(QRectF(x + 2, y + 2, height - 4, height - 4))
            painter.setPen(self.palette().text().color())
            painter.drawText(x + height + 2, y + height - 3, label)
            x += size
        self.setMinimumHeight(y + height + 4)


__all__ = ["CHANGE_COLOURS", "FOCUS", "PAINTED_SCRIPT", "SCALE", "SELECTED_SCRIPT",
           "QtColourLegend", "focus_script", "node_of", "overlay_fills", "overlay_title",
           "paint_script", "scale_colour"]
