"""Step 7, results: the run list, a side-by-side comparison, export, and plots saved to files.

A run folder is read back from its ``summary.json`` and ``metrics.jsonl`` (whose lines replay as
events through :func:`kdgui.core.events.event_from_dict`), so runs made by the CLI open here
exactly like runs made in the window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from kdgui.core.errors import ConfigError
from kdgui.core.run_folders import RunContents, find_runs, read_run, summary_path
from kdgui.gui.qt_bars import QtBars, format_value, metric_values, stages_from_summary
from kdgui.gui.qt_config_state import QtConfigState
from kdgui.gui.qt_histogram import QtHistogram
from kdgui.gui.qt_panel_base import QtPanel
from kdgui.gui.qt_run_panel import PROBLEM_STYLE
from kdgui.gui.run_problems import run_problems

#: Rows of the comparison table: (label, how to read it from a summary).
COMPARE_ROWS: list[tuple[str, str, str]] = [
    ("teacher accuracy", "teacher", "accuracy"),
    ("student accuracy", "student", "accuracy"),
    ("final accuracy", "final", "accuracy"),
    ("teacher params", "teacher", "params"),
    ("student params", "student", "params"),
    ("final params", "final", "params"),
    ("final zip size", "final", "size"),  # the zip size when measured (see qt_bars)
    ("final MACs", "final", "MACs"),
    ("final latency", "final", "latency"),
]


def stage_values(record: RunContents) -> dict[str, dict[str, float]]:
    """Each stage's plotted numbers, plus ``final`` (the last stage) for the comparison table."""
    stages = {n: metric_values(m) for n, m in stages_from_summary(record.summary).items()}
    if stages:
        last = list(stages)[-1]
        stages["final"] = stages[last]
    return stages


class QtResultsPanel(QtPanel):
    key = "results"
    title = "7 · Results & export"
    subtitle = ("Every run folder under the runs directory, the window's and the CLI's alike. "
                "Select several runs to compare them side by side.")
    prefixes = ()

    #: A run the user wants to see as curves (the window replays it into the Run panel).
    show_curves = Signal(object)
    error = Signal(dict)
    export_requested = Signal(object)
    #: (folder, "png" or "svg"): the window writes each plot there in that format.
    save_plots_requested = Signal(str, str)
    #: The one selected run's folder (the explorer and sensitivity views follow it).
    run_selected = Signal(str)

    def __init__(self, state: QtConfigState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        # Set by the window (set_runs_root): listing ./runs before that mixed another root's runs in.
        self.runs_root: Path | None = None
        self.records: dict[str, RunContents] = {}
        splitter = QSplitter(Qt.Orientation.Horizontal)
        left = QWidget()
        l_layout = QVBoxLayout(left)
        l_layout.setContentsMargins(0, 0, 0, 0)
        self.root_label = QLabel()
        self.root_label.setWordWrap(True)
        self.root_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.run_list = QListWidget()
        self.run_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.run_list.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # keep the data's name
        self.run_list.itemSelectionChanged.connect(self._selection_changed)
        self.run_list.itemDoubleClicked.connect(lambda _i: self._curves_clicked())
        buttons = QHBoxLayout()
        open_button = QPushButton("Open run…")
        open_button.setToolTip("Open any run folder (Ctrl+Shift+O)")
        open_button.clicked.connect(self.browse_run)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh_runs)
        buttons.addWidget(open_button)
        buttons.addWidget(refresh)
        l_layout.addWidget(self.root_label)
        l_layout.addWidget(self.run_list, 1)
        l_layout.addLayout(buttons)
        splitter.addWidget(left)

        right = QWidget()
        r_layout = QVBoxLayout(right)
        r_layout.setContentsMargins(0, 0, 0, 0)
        actions = QHBoxLayout()
        self.curves_button = QPushButton("Show curves")
        self.curves_button.setToolTip("Replay the selected run's metrics into the Run plots")
        self.curves_button.clicked.connect(self._curves_clicked)
        self.export_button = QPushButton("Export model…")
        self.export_button.setToolTip("Export the selected run's final model (Ctrl+E)")
        self.export_button.clicked.connect(self._export_clicked)
        self.save_plots_button = QPushButton("Save plots…")
        self.save_plots_button.setToolTip("Write the loss, accuracy, sparsity and before/after "
                                          "plots to a folder, in the format chosen beside")
        self.save_plots_button.clicked.connect(self._save_plots_clicked)
        from PySide6.QtWidgets import QComboBox

        self.plot_format = QComboBox()
        self.plot_format.addItem("as PNG", "png")
        self.plot_format.addItem("as SVG", "svg")
        for b in (self.curves_button, self.export_button, self.save_plots_button,
                  self.plot_format):
            actions.addWidget(b)
        actions.addStretch(1)
        r_layout.addLayout(actions)
        self.problems_label = QLabel()
        self.problems_label.setObjectName("runProblems")
        self.problems_label.setStyleSheet(PROBLEM_STYLE)
        self.problems_label.setWordWrap(True)
        self.problems_label.hide()
        r_layout.addWidget(self.problems_label)
        self.compare = QTableWidget(0, 0)
        self.compare.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._fit_table()
        compare_box = QGroupBox("Comparison")
        c_layout = QVBoxLayout(compare_box)
        c_layout.addWidget(self.compare)
        r_layout.addWidget(compare_box, 0)
        plots = QSplitter(Qt.Orientation.Horizontal)
        self.bars = QtBars()
        self.histogram = QtHistogram()
        from kdgui.gui.qt_compare_plot import QtCompareCurves

        self.curves = QtCompareCurves()
        self.loss_curves = QtCompareCurves(metric="loss")
        self.bars.setMinimumHeight(240)
        plots.addWidget(self.bars)
        self.plot_tabs = QTabWidget()
        self.plot_tabs.addTab(self.curves, "Accuracy curves")
        self.plot_tabs.addTab(self.loss_curves, "Loss curves")
        self.plot_tabs.addTab(self.histogram, "Weight histogram")
        plots.addWidget(self.plot_tabs)
        plots.setSizes([500, 400])
        from kdgui.gui.qt_deep_compression import QtDeepCompressionView

        # Deep Compression (summary['deep_compression']) needs the plots' whole width: a tab
        # beside them, enabled for a run that has the table.
        self.deep_compression = QtDeepCompressionView()
        self.result_tabs = QTabWidget()
        self.result_tabs.addTab(plots, "Plots")
        self.result_tabs.addTab(self.deep_compression, "Deep Compression")
        r_layout.addWidget(self.result_tabs, 1)
        # Below the comparison the tabs start near the window's bottom: bring the one chosen
        # into view (the Deep Compression tab showed only its first lines at 1280×800).
        self.result_tabs.tabBarClicked.connect(
            lambda _i: QTimer.singleShot(0, lambda: self.scroll.ensureWidgetVisible(
                self.result_tabs, 0, 0)))
        splitter.addWidget(right)
        splitter.setSizes([260, 800])
        self.body_layout.addWidget(splitter, 1)
        self._selection_changed()

    # -- the run list ----------------------------------------------------------------------------
    def _fit_table(self) -> None:
        """Row height and table height from the current font: presentation mode's larger font
        in fixed 22 px rows cut the text and the run names in the header."""
        row = self.compare.fontMetrics().height() + 6
        self.compare.verticalHeader().setDefaultSectionSize(row)
        self.compare.horizontalHeader().setMinimumHeight(row)
        self.compare.setMinimumHeight(row * (len(COMPARE_ROWS) + 3) + 8)
        self.compare.resizeColumnsToContents()

    def changeEvent(self, event: Any) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit_table()

    def showEvent(self, event: Any) -> None:
        """Show the newest run when the panel opens with nothing selected."""
        super().showEvent(event)
        if not self.run_list.selectedItems() and self.run_list.count():
            self.run_list.setCurrentRow(0)

    def set_runs_root(self, root: str | Path) -> None:
        """List the runs of ``root``; runs listed from a previous root are dropped (runs opened
        by hand from elsewhere stay)."""
        old = self.runs_root.resolve() if self.runs_root is not None else None
        self.runs_root = Path(root)
        if old is not None and old != self.runs_root.resolve():
            for i in reversed(range(self.run_list.count())):
                if Path(self.run_list.item(i).data(Qt.ItemDataRole.UserRole)).parent == old:
                    self.run_list.takeItem(i)
        self.refresh_runs()

    def refresh_runs(self) -> None:
        if self.runs_root is None:
            return
        # A long path has no place to wrap and widened the panel past the window: the label
        # shows its last two parts, the tooltip all of it.
        parts = self.runs_root.parts
        shown = str(self.runs_root) if len(parts) <= 3 else "…/" + "/".join(parts[-2:])
        self.root_label.setText(f"Runs in <b>{shown}</b>")
        self.root_label.setToolTip(str(self.runs_root.resolve()))
        known = {self.run_list.item(i).data(Qt.ItemDataRole.UserRole)
                 for i in range(self.run_list.count())}
        for path in reversed(find_runs(self.runs_root)):
            if str(path.resolve()) not in known:
                self._add_item(path.resolve(), top=True)

    def _add_item(self, path: Path, *, top: bool) -> QListWidgetItem:
        done = summary_path(path).is_file()
        item = QListWidgetItem(("✓ " if done else "… ") + path.name)
        item.setData(Qt.ItemDataRole.UserRole, str(path))
        item.setToolTip(str(path))
        if top:
            self.run_list.insertItem(0, item)
        else:
            self.run_list.addItem(item)
        return item

    def open_run(self, path: str | Path) -> RunContents:
        """Read a run folder, list it (once) and select it."""
        record = read_run(path)
        key = str(record.path.resolve())
        self.records[key] = record
        for i in range(self.run_list.count()):
            item = self.run_list.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == key:
                done = summary_path(record.path).is_file()
                item.setText(("✓ " if done else "… ") + record.path.name)
                break
        else:
            item = self._add_item(record.path.resolve(), top=True)
        self.run_list.clearSelection()
        item.setSelected(True)
        self.run_list.setCurrentItem(item)
        return record

    def browse_run(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open run folder", str(self.runs_root or "."))
        if path:
            try:
                self.open_run(path)
            except ConfigError as exc:
                self.error.emit(exc.to_dict())

    def selected(self) -> list[RunContents]:
        out = []
        for item in self.run_list.selectedItems():
            key = item.data(Qt.ItemDataRole.UserRole)
            if key not in self.records:
                try:
                    self.records[key] = read_run(key)
                except ConfigError:
                    continue
            out.append(self.records[key])
        return out

    # -- showing ---------------------------------------------------------------------------------
    def _selection_changed(self) -> None:
        records = self.selected()
        for b in (self.curves_button, self.export_button):
            b.setEnabled(len(records) == 1)
        self._fill_table(records)
        self.bars.clear()
        self.histogram.clear()
        self.curves.set_runs([(r.name, r.events) for r in records])
        self.loss_curves.set_runs([(r.name, r.events) for r in records])
        self._show_problems(records)
        if len(records) == 1:
            from kdgui.core.events import StageEvent

            for name, metrics in stages_from_summary(records[0].summary).items():
                self.bars.set_stage(name, metrics)
            for ev in records[0].events:
                if isinstance(ev, StageEvent):
                    self.histogram.set_stage(ev.name, ev.layers)
        deep = records[0].summary.get("deep_compression") if len(records) == 1 else None
        self.deep_compression.set_table(deep)
        self.result_tabs.setTabEnabled(1, bool(deep))
        if not deep:
            self.result_tabs.setCurrentIndex(0)
        self.bars.flush()
        self.curves.flush()
        self.loss_curves.flush()
        if len(records) == 1:
            self.run_selected.emit(str(records[0].path))

    def _show_problems(self, records: list[RunContents]) -> None:
        rows = []
        for record in records:
            prefix = f"{record.name}: " if len(records) > 1 else ""
            if record.status == "stopped":
                rows.append(f"{prefix}stopped before the end (its numbers are of a partial run)")
            rows += [prefix + p for p in run_problems(record.summary, record.events)]
        if rows:
            from kdgui.gui.qt_run_panel import _esc

            items = "".join(f"<li>{_esc(r)}</li>" for r in rows)
            self.problems_label.setText(f"<b>⚠ Problems</b><ul style='margin:0; "
                                        f"margin-left:-20px'>{items}</ul>")
        self.problems_label.setVisible(bool(rows))

    def _fill_table(self, records: list[RunContents]) -> None:
        self.compare.clear()
        self.compare.setColumnCount(len(records))
        self.compare.setRowCount(len(COMPARE_ROWS) + 2)
        self.compare.setHorizontalHeaderLabels([r.name for r in records])
        # summary['compression_ratio'] is teacher params / student params (0.05× for a student
        # bigger than its teacher, beside a 30× Deep Compression): say so.
        labels = [label for label, _s, _k in COMPARE_ROWS] + ["teacher ÷ student params",
                                                             "status"]
        self.compare.setVerticalHeaderLabels(labels)
        for c, record in enumerate(records):
            values = stage_values(record)
            for r, (_label, stage, key) in enumerate(COMPARE_ROWS):
                value = values.get(stage, {}).get(key)
                text = "–" if value is None else format_value(key if key != "accuracy" else
                                                              "accuracy", value)
                self.compare.setItem(r, c, QTableWidgetItem(text))
            ratio = record.summary.get("compression_ratio")
            self.compare.setItem(len(COMPARE_ROWS), c, QTableWidgetItem(
                f"{ratio:.2f}×" if isinstance(ratio, (int, float)) else "–"))
            self.compare.setItem(len(COMPARE_ROWS) + 1, c, QTableWidgetItem(record.status))
        self.compare.resizeColumnsToContents()

    def _save_plots_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save plots to folder",
                                                  str(self.runs_root or "."))
        if folder:
            self.save_plots_requested.emit(folder, self.plot_format.currentData())

    def _curves_clicked(self) -> None:
        records = self.selected()
        if len(records) == 1:
            self.show_curves.emit(records[0])

    def _export_clicked(self) -> None:
        records = self.selected()
        if len(records) == 1:
            self.export_requested.emit(records[0])
