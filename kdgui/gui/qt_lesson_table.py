"""The Classroom's "published vs measured" table, whose column headers are never cut off.

A lesson's published figure and the one measured here are long sentences: the columns share the
table's width and wrap their cells. Stretched into a narrow table (presentation mode's 1.5× font on
a 1024×640 projector), the headers were cut to "ublished" and "asured h". Each column now has a
floor, its header's width in the font the table has *now* (the first column: the word
"accuracy"), recomputed when presentation mode changes the font; the width beyond the floors is
shared equally. The table's minimum width is the sum of the floors, and the splitter beside the
chart keeps it.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from kdgui.gui.qt_header_fit import header_floors

HEADERS = ["", "published", "measured here"]


class QtLessonTable(QTableWidget):
    """Rows of (what, published, measured); see the module docstring."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(HEADERS), parent)
        self.setHorizontalHeaderLabels(HEADERS)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setWordWrap(True)
        self.setTextElideMode(Qt.TextElideMode.ElideNone)
        header = self.horizontalHeader()
        header.sectionResized.connect(lambda *_: self.resizeRowsToContents())
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.floors: list[int] = []
        self.fit_headers()

    def fit_headers(self) -> int:
        """Each column's floor in the current font, and the table's minimum width (returned)."""
        self.floors = header_floors(self)
        metrics = self.horizontalHeader().fontMetrics()  # the first column: the word "accuracy"
        self.floors[0] = max(self.floors[0], metrics.horizontalAdvance("accuracy") + metrics.height())
        width = (sum(self.floors) + self.verticalScrollBar().sizeHint().width()
                 + 2 * self.frameWidth())
        self.setMinimumWidth(width)
        self._share()
        return width

    def _share(self) -> None:
        """Floors first, then equal shares of what is left (the last column takes the rest)."""
        extra = max(0, self.viewport().width() - sum(self.floors)) // len(self.floors)
        header = self.horizontalHeader()
        for col, floor in enumerate(self.floors[:-1]):
            header.resizeSection(col, floor + extra)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._share()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self.fit_headers()

    def set_rows(self, rows: list[list[str]]) -> None:
        self.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row[: len(HEADERS)]):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.setItem(r, c, item)
        self.resizeRowsToContents()
        QTimer.singleShot(0, self.resizeRowsToContents)  # once the columns are laid out


__all__ = ["HEADERS", "QtLessonTable"]
