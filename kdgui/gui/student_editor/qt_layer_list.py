"""The layer list: the same spec as the canvas, as a keyboard-friendly tree with numbers.

Rows show each layer's path, type and parameters, output shape, parameters and MACs; invalid
layers are red with the problem in the tooltip. Arrow keys select (the canvas and form follow);
the editor's shortcuts (Delete, Ctrl+D, Ctrl+↑/↓, Ctrl+Z) act on the selected row.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeWidget, QTreeWidgetItem, QWidget

from kdgui.core.formatting import fmt_count
from kdgui.core.student_shapes import fmt_shape
from kdgui.gui.student_editor.layers import LABELS, LayerPath, summary
from kdgui.gui.student_editor.model import EditorModel

PATH_ROLE = Qt.ItemDataRole.UserRole
COLUMNS = ["#", "layer", "output", "params", "MACs"]


class QtLayerList(QTreeWidget):
    """Observes an :class:`EditorModel`; selecting a row selects the layer everywhere."""

    def __init__(self, model: EditorModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(COLUMNS)
        self.setRootIsDecorated(True)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.header()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        self._items: dict[LayerPath, QTreeWidgetItem] = {}
        self._syncing = False
        self.currentItemChanged.connect(self._current_changed)
        model.changed.connect(lambda _reason: self.rebuild())
        model.selection_changed.connect(self._show_selection)
        self.rebuild()

    def rebuild(self) -> None:
        self._syncing = True
        try:
            self.clear()
            self._items = {}
            self._add(self.model.spec.layers, (), None)
            self.expandAll()
            self._show_selection(self.model.selected)
        finally:
            self._syncing = False

    def _add(self, layers: list, prefix: LayerPath, parent: QTreeWidgetItem | None) -> None:
        report = self.model.report
        for i, layer in enumerate(layers):
            path = (*prefix, i)
            try:
                rep = report.layer_at(path)
            except KeyError:
                rep = None
            text = LABELS.get(layer.type, layer.type)
            detail = summary(layer)
            values = [
                ".".join(map(str, path)),
                f"{text}  {detail}" if detail else text,
                fmt_shape(rep.out_shape if rep else None),
                fmt_count(rep.params) if rep else "–",
                fmt_count(rep.macs) if rep else "–",
            ]
            item = QTreeWidgetItem(values)
            item.setData(0, PATH_ROLE, list(path))
            for col in (2, 3, 4):
                item.setTextAlignment(col, Qt.AlignmentFlag.AlignRight
                                      | Qt.AlignmentFlag.AlignVCenter)
            if rep is not None and rep.error:
                red = QBrush(QColor("#d62728"))
                for col in range(len(COLUMNS)):
                    item.setForeground(col, red)
                item.setToolTip(1, f"{rep.error}.\n{rep.fix}")
                item.setText(1, "⚠ " + values[1])
            elif rep is not None and rep.note:
                item.setToolTip(1, rep.note)
            if parent is None:
                self.addTopLevelItem(item)
            else:
                parent.addChild(item)
            self._items[path] = item
            if layer.type == "residual":
                self._add(layer.layers, path, item)

    def _show_selection(self, path: LayerPath | None) -> None:
        item = self._items.get(path) if path is not None else None
        was = self._syncing
        self._syncing = True
        try:
            if item is None:
                self.clearSelection()
                self.setCurrentItem(None)
            elif self.currentItem() is not item:
                self.setCurrentItem(item)
                self.scrollToItem(item)
        finally:
            self._syncing = was

    def _current_changed(self, current: QTreeWidgetItem | None, _prev: object) -> None:
        if self._syncing:
            return
        path = tuple(current.data(0, PATH_ROLE)) if current is not None else None
        self.model.select(path)

    def item_for(self, path: LayerPath) -> QTreeWidgetItem:
        return self._items[tuple(path)]
