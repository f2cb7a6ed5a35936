"""The drawing canvas: the student as a column of blocks, each with its output shape and size.

The canvas observes an :class:`EditorModel` and redraws from its report after every change (a
student has tens of layers, so a full relayout costs well under a millisecond per block). Blocks
take layers dropped from the palette, move by drag and drop, and offer duplicate / delete / wrap
with a skip connection on their context menu. An invalid layer is drawn red with the problem and
its fix written under it, so the message sits where the mistake is.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QContextMenuEvent,
    QDrag,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
)
from PySide6.QtWidgets import (
    QApplication,
    QGraphicsLineItem,
    QGraphicsPathItem,
    QGraphicsScene,
    QGraphicsView,
    QMenu,
    QWidget,
)

from kdgui.core.formatting import fmt_count
from kdgui.core.student_shapes import LayerReport, fmt_shape
from kdgui.gui.student_editor.layers import LABELS, LayerPath, summary
from kdgui.gui.student_editor.model import EditorModel
from kdgui.gui.student_editor.qt_block import (
    ERROR_COLOR,
    FAMILY,
    FOOT_H,
    GAP,
    INDENT,
    MIME_PATH,
    MIME_TYPE,
    ROW_H,
    WIDTH,
    BlockItem,
    path_mime,
    type_mime,
)


class QtStudentCanvas(QGraphicsView):
    """Draws the model's spec as blocks; drop target for the palette; drag to reorder."""

    #: A layer type was dropped (type key, insertion path) — the model has already inserted it.
    layerDropped = Signal(str, object)

    def __init__(self, model: EditorModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.setScene(QGraphicsScene(self))
        self.setAcceptDrops(True)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumWidth(WIDTH + 60)
        self.blocks: list[BlockItem] = []
        self._drop_line: QGraphicsLineItem | None = None
        self._press: tuple[QPoint, LayerPath] | None = None
        self.menu_actions: dict[str, Any] = {}
        self._y = 0.0
        model.changed.connect(lambda _reason: self.rebuild())
        model.selection_changed.connect(self._show_selection)
        self.rebuild()

    # -- drawing ---------------------------------------------------------------------------------
    def rebuild(self) -> None:
        """Lay out every block again from the model's report."""
        scene = self.scene()
        scene.clear()
        self._drop_line = None
        self.blocks = []
        report = self.model.report
        y = 0.0
        sel = self.model.selected
        c, h, w = (*report.input_shape, 0, 0, 0)[:3]
        y = self._add(BlockItem("input", None, 0, WIDTH, "Input", "from the data",
                                fmt_shape(report.input_shape), f"{c} channel(s), {h}×{w}",
                                "#888888"), y)
        self._rows(self.model.spec.layers, (), 0, sel, y)
        y = self._y
        spec_errors = [e for e in report.errors if e.index is None]
        err = "  ".join(f"{e.what}. {e.fix}" for e in spec_errors)
        ratio = self.model.size_ratio()
        stats = f"{fmt_count(report.total_params)} params · {fmt_count(report.total_macs)} MACs"
        if ratio:
            stats += f" · teacher is {ratio:.1f}× larger"
        self._add(BlockItem("output", None, 0, WIDTH, "Output",
                            f"{report.num_classes} classes", fmt_shape(report.output_shape),
                            stats, "#888888", err), y)
        for block_a, block_b in zip(self.blocks, self.blocks[1:], strict=False):
            self._connector(block_a, block_b)
        rect = scene.itemsBoundingRect().adjusted(-30, -12, 40, 24)
        scene.setSceneRect(rect)

    def _add(self, block: BlockItem, y: float) -> float:
        block.setPos(block.pos().x(), y)
        self.scene().addItem(block)
        self.blocks.append(block)
        return y + block.height + GAP

    def _rows(self, layers: list[Any], prefix: LayerPath, depth: int, sel: LayerPath | None,
              y: float) -> None:
        report = self.model.report
        x = depth * INDENT
        width = WIDTH - 2 * depth * INDENT
        for i, layer in enumerate(layers):
            path = (*prefix, i)
            try:
                rep: LayerReport | None = report.layer_at(path)
            except KeyError:
                rep = None
            err = f"{rep.error}. {rep.fix}" if rep is not None and rep.error else ""
            stats = ""
            if rep is not None:
                stats = f"{fmt_count(rep.params)} params · {fmt_count(rep.macs)} MACs"
                if rep.note:
                    stats += f" · {rep.note}"
            title = LABELS.get(layer.type, layer.type)
            shape = fmt_shape(rep.out_shape if rep else None)
            is_block = layer.type == "residual"
            top = y
            # a block's own problem (the skip cannot add) is shown on its ⊕ footer
            block = BlockItem("layer", path, x, width, title,
                              summary(layer) if not is_block else "skip connection",
                              shape if not is_block else "", stats, FAMILY.get(layer.type, "#888"),
                              "" if is_block else err, selected=path == sel)
            y = self._add(block, y)
            if is_block:
                self._y = y
                self._rows(layer.layers, path, depth + 1, sel, y)
                y = self._y
                foot_err = err if rep is not None and rep.error else ""
                foot = BlockItem("footer", path, x, width, "add the skip connection", "", shape,
                                 "", FAMILY["residual"], foot_err)
                y = self._add(foot, y)
                self._skip_arc(x + width, top, y - GAP, bad=bool(foot_err))
        self._y = y

    def _skip_arc(self, right: float, top: float, bottom: float, bad: bool) -> None:
        """The skip connection: from the block's header around its layers into the ⊕ footer."""
        path = QPainterPath(QPointF(right, top + ROW_H / 2))
        path.lineTo(right + 16, top + ROW_H / 2)
        path.lineTo(right + 16, bottom - FOOT_H / 2)
        path.lineTo(right + 2, bottom - FOOT_H / 2)
        item = QGraphicsPathItem(path)
        pen = QPen(ERROR_COLOR if bad else QColor(FAMILY["residual"]), 2)
        pen.setStyle(Qt.PenStyle.DashLine)
        item.setPen(pen)
        self.scene().addItem(item)
        head = QPainterPath(QPointF(right + 2, bottom - FOOT_H / 2))
        head.lineTo(right + 8, bottom - FOOT_H / 2 - 4)
        head.lineTo(right + 8, bottom - FOOT_H / 2 + 4)
        head.closeSubpath()
        arrow = QGraphicsPathItem(head)
        arrow.setBrush(QBrush(pen.color()))
        arrow.setPen(QPen(pen.color(), 1))
        self.scene().addItem(arrow)

    def _connector(self, a: BlockItem, b: BlockItem) -> None:
        x = WIDTH / 2
        y0 = a.pos().y() + a.height
        line = QGraphicsLineItem(x, y0, x, b.pos().y())
        line.setPen(QPen(QColor("#9a9a9a"), 1.5))
        line.setZValue(-1)
        self.scene().addItem(line)

    def _show_selection(self, path: LayerPath | None) -> None:
        for block in self.blocks:
            on = block.role == "layer" and block.path == path
            if on != block.is_selected:
                block.is_selected = on
                block.update()
            if on:
                self.ensureVisible(block, 10, 30)

    def block_at(self, path: LayerPath) -> BlockItem | None:
        return next((b for b in self.blocks if b.role == "layer" and b.path == tuple(path)), None)

    # -- where a drop lands ----------------------------------------------------------------------
    def insertion_at(self, scene_y: float) -> LayerPath:
        """The insertion path for a drop at height ``scene_y``.

        Upper half of a layer: before it; lower half: after it (a residual's header: first in
        its body); upper half of a ⊕ footer: last in the body, lower half: after the block.
        """
        n_top = len(self.model.spec.layers)
        for b in self.blocks:
            top, bottom = b.pos().y(), b.pos().y() + b.height
            if scene_y > bottom + GAP / 2:
                continue
            upper = scene_y < (top + bottom) / 2
            if b.role == "input":
                return (0,)
            if b.role == "output" or b.path is None:
                return (n_top,)
            path = b.path
            if b.role == "footer":
                if upper:
                    return (*path, len(self.model.layer(path).layers))
                return (*path[:-1], path[-1] + 1)
            if upper:
                return path
            if self.model.layer(path).type == "residual":
                return (*path, 0)
            return (*path[:-1], path[-1] + 1)
        return (n_top,)

    def _line_y(self, path: LayerPath) -> float:
        """Height of the gap where insertion path ``path`` puts a layer (for the drop line)."""
        for b in self.blocks:
            if b.role == "layer" and b.path == path:
                return b.pos().y() - GAP / 2
        parent = path[:-1]
        for b in self.blocks:
            if b.role == "footer" and b.path == parent:
                return b.pos().y() - GAP / 2
        last = self.blocks[-1]
        return last.pos().y() - GAP / 2

    def _show_drop_line(self, path: LayerPath | None) -> None:
        if self._drop_line is None:
            self._drop_line = QGraphicsLineItem()
            self._drop_line.setPen(QPen(QColor("#1a5fd0"), 3))
            self._drop_line.setZValue(10)
            self.scene().addItem(self._drop_line)
        if path is None:
            self._drop_line.hide()
            return
        y = self._line_y(path)
        indent = (len(path) - 1) * INDENT
        self._drop_line.setLine(indent, y, WIDTH - indent, y)
        self._drop_line.show()

    # -- drag and drop ---------------------------------------------------------------------------
    @staticmethod
    def _accepts(mime: QMimeData) -> bool:
        return mime.hasFormat(MIME_TYPE) or mime.hasFormat(MIME_PATH)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._accepts(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if not self._accepts(event.mimeData()):
            event.ignore()
            return
        y = self.mapToScene(event.position().toPoint()).y()
        self._show_drop_line(self.insertion_at(y))
        event.acceptProposedAction()

    def dragLeaveEvent(self, event: Any) -> None:
        self._show_drop_line(None)

    def dropEvent(self, event: QDropEvent) -> None:
        mime = event.mimeData()
        self._show_drop_line(None)
        if not self._accepts(mime):
            event.ignore()
            return
        target = self.insertion_at(self.mapToScene(event.position().toPoint()).y())
        if mime.hasFormat(MIME_TYPE):
            kind = bytes(mime.data(MIME_TYPE).data()).decode()
            self.model.insert(target, kind)
            self.layerDropped.emit(kind, target)
        else:
            src = tuple(json.loads(bytes(mime.data(MIME_PATH).data()).decode()))
            self.model.move(src, target)
        event.setDropAction(Qt.DropAction.CopyAction if mime.hasFormat(MIME_TYPE)
                            else Qt.DropAction.MoveAction)
        event.accept()
        self.setFocus()

    # -- mouse and keys --------------------------------------------------------------------------
    def _block_under(self, pos: QPoint) -> BlockItem | None:
        for item in self.items(pos):
            if isinstance(item, BlockItem) and item.path is not None:
                return item
        return None

    def mousePressEvent(self, event: QMouseEvent) -> None:
        block = self._block_under(event.position().toPoint())
        self._press = None
        if block is not None:
            self.model.select(block.path)
            if event.button() == Qt.MouseButton.LeftButton and block.role == "layer":
                self._press = (event.position().toPoint(), block.path)
        elif event.button() == Qt.MouseButton.LeftButton:
            self.model.select(None)
        self.setFocus()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._press is None or not event.buttons() & Qt.MouseButton.LeftButton:
            return
        start, path = self._press
        if (event.position().toPoint() - start).manhattanLength() < \
                QApplication.startDragDistance():
            return
        self._press = None
        drag = QDrag(self)
        drag.setMimeData(path_mime(path))
        drag.exec(Qt.DropAction.MoveAction)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._press = None

    def keyPressEvent(self, event: QKeyEvent) -> None:
        from kdgui.gui.student_editor.layers import all_paths

        key = event.key()
        if key in (Qt.Key.Key_Up, Qt.Key.Key_Down) and \
                not event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            paths = all_paths(self.model.spec.layers)
            if not paths:
                return
            sel = self.model.selected
            i = paths.index(sel) if sel in paths else -1
            i = max(0, min(len(paths) - 1, i + (1 if key == Qt.Key.Key_Down else -1)))
            self.model.select(paths[i])
            return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        block = self._block_under(event.pos())
        if block is not None:
            self.model.select(block.path)
        menu = QMenu(self)
        for key in ("duplicate", "delete", "wrap", "unwrap", "up", "down"):
            action = self.menu_actions.get(key)
            if action is not None:
                menu.addAction(action)
        if not menu.isEmpty():
            menu.exec(event.globalPos())


__all__ = ["QtStudentCanvas", "path_mime", "type_mime"]
