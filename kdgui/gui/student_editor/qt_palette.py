"""The palette: every layer type, dragged onto the canvas (or added with Enter / double-click)."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent
from PySide6.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem, QWidget

from kdgui.gui.student_editor.layers import PALETTE
from kdgui.gui.student_editor.qt_block import FAMILY, type_mime

TYPE_ROLE = Qt.ItemDataRole.UserRole


class QtLayerPalette(QListWidget):
    """Drag source of layer types; ``addRequested(type)`` for keyboard and double-click use."""

    addRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setToolTip("Drag a layer onto the canvas, or select one and press Enter to add it "
                        "after the selected layer.")
        for key, label, help_text in PALETTE:
            item = QListWidgetItem(f"▍ {label}")
            item.setData(TYPE_ROLE, key)
            item.setToolTip(help_text)
            item.setForeground(QColor(FAMILY.get(key, "#888")).darker(120))
            self.addItem(item)
        self.itemDoubleClicked.connect(lambda item: self.addRequested.emit(item.data(TYPE_ROLE)))
        self.setMaximumWidth(190)

    def item_for(self, layer_type: str) -> QListWidgetItem:
        for i in range(self.count()):
            if self.item(i).data(TYPE_ROLE) == layer_type:
                return self.item(i)
        raise KeyError(layer_type)

    def mimeTypes(self) -> list[str]:
        from kdgui.gui.student_editor.qt_block import MIME_TYPE

        return [MIME_TYPE]

    def mimeData(self, items: list[QListWidgetItem]) -> QMimeData:
        return type_mime(items[0].data(TYPE_ROLE)) if items else QMimeData()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentItem():
            self.addRequested.emit(self.currentItem().data(TYPE_ROLE))
            return
        super().keyPressEvent(event)
