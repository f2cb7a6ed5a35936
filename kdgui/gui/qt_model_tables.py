"""The Models view's two tables: one row per layer with the engine's numbers, and the teacher /
student / final-stage summaries side by side.

Kept apart from :mod:`kdgui.gui.qt_models_view` (which handles choosing, preparing and drawing a
model) because sorting and formatting numbers is a concern of its own: layers sort naturally
(``layers.10`` after ``layers.9``), numbers by value, shapes by size.
"""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import QObject, QSortFilterProxyModel, Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
)

from kdgui.gui.qt_header_fit import keep_headers_whole

COLUMNS = ("name", "type", "output shape", "params", "MACs", "sparsity", "bits", "rank",
           "removed channels")
SUMMARY_ROWS = (("params", "params"), ("nonzero_params", "non-zero params"), ("macs", "MACs"),
                ("zip_size_bytes", "zip size (bytes)"), ("accuracy", "accuracy"),
                ("latency_ms", "latency b1 (ms)"))


def fmt_value(value: Any) -> str:
    """A table cell's text: counts with separators, floats to 4 digits, shapes as ``a×b``."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        if all(isinstance(v, int) for v in value):
            return "×".join(str(v) for v in value)
        return str(value)
    return str(value)


def sort_key(value: Any) -> Any:
    """Numbers by value, lists by size, names naturally (layers.10 after layers.9)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        if value and not all(isinstance(v, int) for v in value):
            return float(len(value))
        return float(sum(value)) if value else 0.0
    if value is None:
        return -1.0
    return re.sub(r"\d+", lambda m: m.group().zfill(10), str(value))


class QtLayerTable(QTableView):
    """Sortable layer table; ``source`` is the item model, ``proxy`` the sorting proxy."""

    def __init__(self, owner: QObject) -> None:
        super().__init__()
        self.source = QStandardItemModel(0, len(COLUMNS), owner)
        self.source.setHorizontalHeaderLabels(list(COLUMNS))
        self.proxy = QSortFilterProxyModel(owner)
        self.proxy.setSourceModel(self.source)
        self.proxy.setSortRole(Qt.ItemDataRole.UserRole)
        self.setModel(self.proxy)
        self.setSortingEnabled(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)

    def fill(self, layers: list[dict[str, Any]]) -> None:
        """One row per layer, numbers as the engine computed them, in module order."""
        self.setSortingEnabled(False)
        self.source.removeRows(0, self.source.rowCount())
        for row in layers:
            sparsity = row.get("sparsity")
            removed = row.get("removed_channels")
            values = [row.get("name"), row.get("type"), row.get("out_shape"), row.get("params"),
                      row.get("macs"), sparsity, row.get("bits"), row.get("rank"), removed]
            items = []
            for col, value in enumerate(values):
                if col == 5 and sparsity is not None:
                    text = f"{100 * sparsity:.1f}%"
                elif col == 8 and isinstance(removed, list):
                    text = str(len(removed))
                else:
                    text = fmt_value(value)
                item = QStandardItem(text)
                item.setData(sort_key(value), Qt.ItemDataRole.UserRole)
                if col >= 3:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                items.append(item)
            self.source.appendRow(items)
        # module order until the user clicks a header
        self.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.proxy.sort(-1)
        self.setSortingEnabled(True)

    def name_at(self, row: int) -> str | None:
        name = self.proxy.index(row, 0).data()
        return str(name) if name else None

    def select_name(self, name: str) -> bool:
        """Select the row of layer ``name``; False if it is not in the table."""
        for row in range(self.proxy.rowCount()):
            if self.proxy.index(row, 0).data() == name:
                self.selectRow(row)
                return True
        return False


class QtModelSummaries(QTableWidget):
    """Teacher, student and final stage side by side (rows: params, MACs, size, accuracy...)."""

    def __init__(self) -> None:
        super().__init__(len(SUMMARY_ROWS), 3)
        self.setHorizontalHeaderLabels(["teacher", "student", "final stage"])
        self.setVerticalHeaderLabels([label for _, label in SUMMARY_ROWS])
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        keep_headers_whole(self, scroll=False)  # "final stage" was cut in presentation mode

    def show_sources(self, sources: list[Any]) -> None:
        """Fill from a run's model sources (``kind`` teacher / student / stage, ``metrics``)."""
        teacher = next((s.metrics for s in sources if s.kind == "teacher"), {})
        student = next((s.metrics for s in sources if s.kind == "student"), {})
        stages = [s.metrics for s in sources if s.kind == "stage"]
        if not student and stages:
            student = stages[0]  # stage 0 is the student before compression
        final = stages[-1] if stages else {}
        for col, metrics in enumerate((teacher, student, final)):
            for row, (key, _) in enumerate(SUMMARY_ROWS):
                value = metrics.get(key)
                if key == "macs" and value is not None and value < 0:
                    value = None
                self.setItem(row, col, QTableWidgetItem(fmt_value(value)))


__all__ = ["COLUMNS", "SUMMARY_ROWS", "QtLayerTable", "QtModelSummaries", "fmt_value", "sort_key"]
