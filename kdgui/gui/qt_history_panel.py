"""The history panel: the run folders indexed in SQLite — search, filter, tag, compare, delete.

It is a view of :class:`kdgui.core.history.History` (no torch: it opens instantly). Actions work
on the selected rows; the ones that ask something (tags, delete confirmation, report path) have a
method taking the answer directly (``tag_selected``, ``delete_selected``, ``report_selected``), so
the window's menus and the tests call the same code as the buttons.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kdgui.core.errors import UserError
from kdgui.core.history import History, RunRecord
from kdgui.gui.qt_header_fit import keep_headers_whole

COLUMNS = ("id", "name", "status", "accuracy", "size (zip)", "latency", "data", "compression",
           "tags")


class QtHistoryPanel(QWidget):
    """Browse and manage past runs under ``root``."""

    open_run = Signal(str)  # a run folder the user double-clicked

    def __init__(self, root: str | os.PathLike[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = History(root)
        self.records: list[RunRecord] = []
        self.search_box = QLineEdit(placeholderText="search name, data, model, tag, note…")
        self.search_box.textChanged.connect(self.refresh)
        self.status_filter = QComboBox()
        self.status_filter.addItems(["any status", "completed", "stopped", "failed",
                                     "incomplete"])
        self.status_filter.currentIndexChanged.connect(self.refresh)
        self.tag_filter = QComboBox()
        self.tag_filter.currentIndexChanged.connect(self.refresh)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setSortingEnabled(False)
        self.fit_headers()
        self.table.cellDoubleClicked.connect(
            lambda r, _c: self.open_run.emit(self.records[r].path))
        self.message = QLabel(wordWrap=True)

        buttons = QHBoxLayout()
        for text, slot in (("Refresh", self.sync), ("Tag…", self._ask_tag),
                           ("Compare", self._show_compare), ("Report…", self._ask_report),
                           ("Delete…", self._ask_delete), ("Rebuild index", self.rebuild)):
            b = QPushButton(text)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        buttons.addStretch(1)
        top = QHBoxLayout()
        top.addWidget(self.search_box, 1)
        top.addWidget(self.status_filter)
        top.addWidget(self.tag_filter)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        if self.history.rebuilt_from and self.history.rebuilt_from != "missing":
            self.message.setText(f"The history index was {self.history.rebuilt_from}; it was "
                                 f"rebuilt from the run folders ({self.history.count()} runs).")
        self._fill_tags()
        self.refresh()

    def fit_headers(self) -> list[int]:
        """No column narrower than its header in the current font (the default 100 px cut
        "compression", 114 px in presentation mode's 1.5× font, to "ompressio"); the table
        scrolls sideways instead (:mod:`kdgui.gui.qt_header_fit`); returns the floors."""
        return keep_headers_whole(self.table, scroll=True)

    # -- listing --------------------------------------------------------------------------------
    def _fill_tags(self) -> None:
        current = self.tag_filter.currentData()
        self.tag_filter.blockSignals(True)
        self.tag_filter.clear()
        self.tag_filter.addItem("any tag", None)
        for tag, n in self.history.tags():
            self.tag_filter.addItem(f"{tag} ({n})", tag)
        i = self.tag_filter.findData(current)
        self.tag_filter.setCurrentIndex(max(0, i))
        self.tag_filter.blockSignals(False)

    def refresh(self) -> None:
        status = self.status_filter.currentText()
        self.records = self.history.search(
            self.search_box.text().strip(), tag=self.tag_filter.currentData(),
            status=None if status == "any status" else status)
        self.table.setRowCount(len(self.records))
        for r, rec in enumerate(self.records):
            cells = [str(rec.id), rec.name, rec.status,
                     "—" if rec.accuracy is None else f"{100 * rec.accuracy:.1f}%",
                     "—" if rec.zip_size_bytes is None else f"{rec.zip_size_bytes / 1024:.1f} KB",
                     "—" if rec.latency_ms is None else f"{rec.latency_ms:.2f} ms",
                     rec.dataset, rec.compression, ", ".join(rec.tags)]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(rec.path)
                self.table.setItem(r, c, item)

    def sync(self) -> None:
        changed, dropped = self.history.sync()
        self._fill_tags()
        self.refresh()
        self.message.setText(f"{changed} runs indexed or updated, {dropped} gone.")

    def rebuild(self) -> None:
        n = self.history.rebuild()
        self._fill_tags()
        self.refresh()
        self.message.setText(f"Rebuilt the index from the run folders: {n} runs.")

    def selected(self) -> list[RunRecord]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.records[r] for r in rows if r < len(self.records)]

    def select_ids(self, ids: list[int]) -> None:
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for r, rec in enumerate(self.records):
            if rec.id in ids:
                self.table.selectRow(r)
        self.table.setSelectionMode(mode)

    # -- actions (callable without dialogs) -------------------------------------------------------
    def _guard(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            self.message.setText(f"<b>{exc.what}</b><br>{exc.fix}")
            return None

    def tag_selected(self, add: list[str], remove: list[str] | None = None) -> None:
        for rec in self.selected():
            self._guard(self.history.tag, rec.id, add=add, remove=remove or [])
        self._fill_tags()
        self.refresh()

    def delete_selected(self, delete_files: bool = False) -> None:
        for rec in self.selected():
            self._guard(self.history.delete, rec.id, delete_files=delete_files)
        self._fill_tags()
        self.refresh()

    def compare_selected(self) -> dict[str, Any] | None:
        ids = [r.id for r in self.selected()]
        return self._guard(self.history.compare, ids)

    def report_selected(self, html_path: str | os.PathLike[str]) -> Path | None:
        """Write the HTML report (and a CSV beside it) of the first selected run or its sweep."""
        from kdgui.engine.jobs import write_report

        chosen = self.selected()
        if not chosen:
            self.message.setText("Select a run first.")
            return None
        target = Path(html_path)
        result = self._guard(write_report, chosen[0].path, target, target.with_suffix(".csv"))
        if result is not None:
            self.message.setText(f"Report written: {result.html_path}")
            return result.html_path
        return None

    # -- dialogs --------------------------------------------------------------------------------
    def _ask_tag(self) -> None:
        text, ok = QInputDialog.getText(self, "Tag runs",
                                        "Tags to add (comma-separated; -tag removes):")
        if ok and text.strip():
            words = [w.strip() for w in text.split(",") if w.strip()]
            self.tag_selected([w for w in words if not w.startswith("-")],
                              [w[1:] for w in words if w.startswith("-")])

    def _ask_delete(self) -> None:
        chosen = self.selected()
        if not chosen:
            return
        box = QMessageBox(QMessageBox.Icon.Question, "Delete runs",
                          f"Remove {len(chosen)} run(s) from the history?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        files = QCheckBox("Also delete the run folders from disk")
        box.setCheckBox(files)
        if box.exec() == QMessageBox.StandardButton.Yes:
            self.delete_selected(files.isChecked())

    def _ask_report(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save report", "report.html",
                                              "HTML (*.html)")
        if path:
            self.report_selected(path)

    def _show_compare(self) -> None:
        result = self.compare_selected()
        if result is None:
            return
        runs = result["runs"]
        dialog = QDialog(self)
        dialog.setWindowTitle("Compare runs")
        rows = [(k, v) for k, v in result["metrics"].items()] + [
            (f"config: {k}", v) for k, v in result["config_diff"].items()]
        table = QTableWidget(len(rows), len(runs))
        table.setHorizontalHeaderLabels([f"{r.id}: {r.name}" for r in runs])
        table.setVerticalHeaderLabels([k for k, _ in rows])
        for i, (_, values) in enumerate(rows):
            for j, v in enumerate(values):
                text = f"{v:.4g}" if isinstance(v, float) else str(v)
                table.setItem(i, j, QTableWidgetItem(text))
        layout = QVBoxLayout(dialog)
        layout.addWidget(table)
        dialog.resize(700, 500)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()

    def closeEvent(self, event: Any) -> None:
        self.history.close()
        super().closeEvent(event)


__all__ = ["QtHistoryPanel"]
