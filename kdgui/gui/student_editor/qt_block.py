"""One block of the student canvas, and the drag-and-drop payloads the canvas accepts.

A :class:`BlockItem` draws a layer (or the input/output, or a residual's ⊕ footer): its name,
parameters, output shape and size, coloured by layer family, red with the problem and its fix
under it when the layer is invalid. Kept apart from :mod:`kdgui.gui.student_editor.qt_canvas`,
which lays blocks out and handles editing gestures.
"""

from __future__ import annotations

import json

from PySide6.QtCore import QMimeData, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from kdgui.gui.student_editor.layers import LayerPath

#: Mime type of a palette entry (payload: the layer type key).
MIME_TYPE = "application/x-kdgui-layer-type"
#: Mime type of a block being moved on the canvas (payload: its path as JSON).
MIME_PATH = "application/x-kdgui-layer-path"

WIDTH = 340
ROW_H = 42
FOOT_H = 26
GAP = 10
INDENT = 22
ERROR_COLOR = QColor("#d62728")
FAMILY = {
    "conv2d": "#4e79a7", "dwconv": "#4e79a7", "sepconv": "#4e79a7",
    "inverted_residual": "#2f5f8f", "batchnorm": "#59a14f", "relu": "#76b7b2", "gelu": "#76b7b2",
    "maxpool": "#f28e2b", "avgpool": "#f28e2b", "gap": "#e15759", "dropout": "#9d9d9d",
    "flatten": "#9d9d9d", "linear": "#b07aa1", "residual": "#9c755f",
}


class BlockItem(QGraphicsItem):
    """One row of the canvas: a layer (or the input/output, or a residual's ⊕ footer).

    ``path`` is the layer's path (``None`` for the input and output rows); ``role`` is
    ``"layer"``, ``"footer"``, ``"input"`` or ``"output"``. Everything is painted here, which
    keeps the scene small and the text crisp.
    """

    def __init__(self, role: str, path: LayerPath | None, x: float, width: float, title: str,
                 detail: str, shape: str, stats: str, color: str, error: str = "",
                 selected: bool = False) -> None:
        super().__init__()
        self.role, self.path = role, path
        self.title, self.detail, self.shape, self.stats = title, detail, shape, stats
        self.color, self.error, self.is_selected = QColor(color), error, selected
        self.width = width
        self.font = QFont()
        self.small = QFont()
        self.small.setPointSizeF(max(7.0, self.font.pointSizeF() * 0.85))
        self.bold = QFont(self.font)
        self.bold.setBold(True)
        base = FOOT_H if role == "footer" else ROW_H
        self.error_h = 0
        if error:
            fm = QFontMetrics(self.small)
            r = fm.boundingRect(0, 0, int(width) - 16, 2000, Qt.TextFlag.TextWordWrap, error)
            self.error_h = r.height() + 8
        self.height = base + self.error_h
        self.setPos(x, 0)
        if path is not None and role == "layer":
            self.setToolTip(f"{title} {detail}\n→ {shape}\n{stats}" + (f"\n\n{error}"
                                                                        if error else ""))
        self.setAcceptedMouseButtons(Qt.MouseButton.LeftButton | Qt.MouseButton.RightButton)

    def boundingRect(self) -> QRectF:
        return QRectF(-2, -2, self.width + 4, self.height + 4)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(0, 0, self.width, self.height)
        bad = bool(self.error)
        fill = QColor("#fde8e8") if bad else self.color.lighter(185)
        if self.role in ("input", "output"):
            fill = QColor("#eeeeee") if not bad else fill
        if self.role == "footer":
            fill = QColor("#f4efe9")
        border = ERROR_COLOR if bad else self.color.darker(115)
        pen = QPen(border, 2.4 if self.is_selected else (1.6 if bad else 1.0))
        if self.is_selected:
            pen.setColor(QColor("#1a5fd0") if not bad else ERROR_COLOR.darker(130))
        painter.setPen(pen)
        painter.setBrush(QBrush(fill))
        painter.drawRoundedRect(rect, 6, 6)
        if self.role == "layer":  # colour strip: the layer's family
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QBrush(ERROR_COLOR if bad else self.color))
            painter.drawRoundedRect(QRectF(0, 0, 7, self.height), 3, 3)
        base = FOOT_H if self.role == "footer" else ROW_H
        dark = QColor("#1e1e1e")
        grey = QColor("#555555")
        left = 14
        if self.role == "footer":
            painter.setPen(dark)
            painter.setFont(self.font)
            painter.drawText(QRectF(left, 0, self.width - left - 8, base),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                             f"⊕  {self.title}")
        else:
            painter.setPen(dark)
            painter.setFont(self.bold)
            fm = QFontMetrics(self.bold)
            painter.drawText(QRectF(left, 4, self.width, 18), Qt.AlignmentFlag.AlignLeft,
                             self.title)
            painter.setFont(self.font)
            painter.setPen(grey)
            x2 = left + fm.horizontalAdvance(self.title) + 8
            painter.drawText(QRectF(x2, 4, self.width - x2 - 8, 18), Qt.AlignmentFlag.AlignLeft,
                             self.detail)
            painter.setFont(self.small)
            painter.drawText(QRectF(left, 23, self.width - left - 8, 16),
                             Qt.AlignmentFlag.AlignLeft, self.stats)
        painter.setFont(self.bold)
        painter.setPen(ERROR_COLOR if bad and self.shape == "?" else QColor("#0b3d91"))
        painter.drawText(QRectF(0, 0 if self.role == "footer" else 4, self.width - 10,
                                base if self.role == "footer" else 18),
                         Qt.AlignmentFlag.AlignRight | (Qt.AlignmentFlag.AlignVCenter
                                                        if self.role == "footer"
                                                        else Qt.AlignmentFlag.AlignTop),
                         self.shape)
        if bad:
            painter.setFont(self.small)
            painter.setPen(ERROR_COLOR.darker(120))
            painter.drawText(QRectF(left, base - 2, self.width - left - 8, self.error_h),
                             Qt.TextFlag.TextWordWrap, self.error)


def type_mime(layer_type: str) -> QMimeData:
    """The mime data a palette entry carries."""
    mime = QMimeData()
    mime.setData(MIME_TYPE, layer_type.encode())
    mime.setText(layer_type)
    return mime


def path_mime(path: LayerPath) -> QMimeData:
    mime = QMimeData()
    mime.setData(MIME_PATH, json.dumps(list(path)).encode())
    return mime
