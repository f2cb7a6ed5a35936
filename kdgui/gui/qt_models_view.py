"""The Models view: teacher, student or any compression stage of a run, drawn by Netron.

Left, the graph (Netron embedded through QtWebEngine, or the system browser with a notice when
QtWebEngine is missing); right, the layer table with the engine's numbers (sortable; selecting a
row emits ``layerSelected(name)`` so the window can highlight the layer in the sparsity heatmap)
and the teacher / student / final-stage summaries side by side. The model handed to Netron is an
ONNX file whose nodes carry each layer's compression (see :mod:`kdgui.engine.netron_graph`).

Preparing a model (loading it, exporting ONNX) takes seconds, so it runs on a worker thread; the
Netron server listens on 127.0.0.1 only and is stopped when the view closes or the app quits.
Nothing here fails when netron or QtWebEngine is missing: the table and summaries still work and
a notice says what is missing and how to get it.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSortFilterProxyModel, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

COLUMNS = ("name", "type", "output shape", "params", "MACs", "sparsity", "bits", "rank",
           "removed channels")
SUMMARY_ROWS = (("params", "params"), ("nonzero_params", "non-zero params"), ("macs", "MACs"),
                ("zip_size_bytes", "zip size (bytes)"), ("accuracy", "accuracy"),
                ("latency_ms", "latency b1 (ms)"))


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return "×".join(str(v) for v in value) if all(isinstance(v, int) for v in value) else str(
            value)
    return str(value)


def _sort_key(value: Any) -> Any:
    """Numbers by value, lists by size, names naturally (layers.10 after layers.9)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return float(len(value)) if value and not all(isinstance(v, int) for v in value) else (
            float(sum(value)) if value else 0.0)
    if value is None:
        return -1.0
    return re.sub(r"\d+", lambda m: m.group().zfill(10), str(value))


class _Relay(QObject):
    """Carries a worker thread's result back to the GUI thread (queued signal)."""

    done = Signal(object, object)  # (PreparedModel | None, error text | None)


class ModelsView(QWidget):
    """Pick a run and one of its models; see its graph, layer table and summaries."""

    layerSelected = Signal(str)
    prepared = Signal(object)  # the PreparedModel now shown (for tests and the window)
    noticeChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, runs_root: str | Path = "runs",
                 embed: bool = True, open_url: Callable[[str], Any] | None = None) -> None:
        super().__init__(parent)
        self.runs_root = Path(runs_root)
        self.embed = embed
        self._open_url = open_url or (lambda url: QDesktopServices.openUrl(QUrl(url)))
        self._work = Path(tempfile.mkdtemp(prefix="kdgui-models-"))
        self._server: Any = None
        self._web: Any = None
        self._current: Any = None
        self._sources: list[Any] = []
        self._busy = False
        self._relay = _Relay(self)
        self._relay.done.connect(self._on_prepared)
        self._build()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self.refresh_runs()

    # -- layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.run_combo = QComboBox()
        self.run_combo.setMinimumContentsLength(24)
        self.model_combo = QComboBox()
        self.model_combo.setMinimumContentsLength(24)
        self.open_button = QPushButton("Show")
        self.file_button = QPushButton("Open file…")
        self.browser_button = QPushButton("Open in browser")
        self.browser_button.setEnabled(False)
        bar = QHBoxLayout()
        for label, widget in (("Run", self.run_combo), ("Model", self.model_combo)):
            bar.addWidget(QLabel(label))
            bar.addWidget(widget, 1)
        for button in (self.open_button, self.file_button, self.browser_button):
            bar.addWidget(button)
        self.notice = QLabel("")
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.hide()

        self.graph_area = QWidget()
        self._graph_layout = QVBoxLayout(self.graph_area)
        self._graph_layout.setContentsMargins(0, 0, 0, 0)
        self.placeholder = QLabel("Pick a model and press Show to draw its graph.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self._graph_layout.addWidget(self.placeholder)

        self.layer_model = QStandardItemModel(0, len(COLUMNS), self)
        self.layer_model.setHorizontalHeaderLabels(list(COLUMNS))
        self.layer_proxy = QSortFilterProxyModel(self)
        self.layer_proxy.setSourceModel(self.layer_model)
        self.layer_proxy.setSortRole(Qt.ItemDataRole.UserRole)
        self.layer_table = QTableView()
        self.layer_table.setModel(self.layer_proxy)
        self.layer_table.setSortingEnabled(True)
        self.layer_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.layer_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.layer_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.layer_table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        self.layer_table.selectionModel().currentRowChanged.connect(self._on_row)

        self.summary_table = QTableWidget(len(SUMMARY_ROWS), 3)
        self.summary_table.setHorizontalHeaderLabels(["teacher", "student", "final stage"])
        self.summary_table.setVerticalHeaderLabels([label for _, label in SUMMARY_ROWS])
        self.summary_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.summary_table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.Stretch)

        side = QSplitter(Qt.Orientation.Vertical)
        side.addWidget(self.layer_table)
        side.addWidget(self.summary_table)
        side.setStretchFactor(0, 3)
        side.setStretchFactor(1, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.graph_area)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)

        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.notice)
        layout.addWidget(split, 1)

        self.run_combo.currentIndexChanged.connect(self._on_run)
        self.open_button.clicked.connect(self.show_selected)
        self.file_button.clicked.connect(self._pick_file)
        self.browser_button.clicked.connect(self.open_in_browser)

    # -- choosing --------------------------------------------------------------------------------
    def refresh_runs(self) -> None:
        """Fill the run picker from ``runs_root`` (newest first)."""
        from kdgui.engine.netron_sources import find_runs

        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        for run in find_runs(self.runs_root):
            self.run_combo.addItem(run.name, str(run))
        self.run_combo.blockSignals(False)
        self._on_run()

    def set_run(self, run_dir: str | Path) -> None:
        """Select (adding it if needed) a run folder, e.g. the one the window just finished."""
        path = str(Path(run_dir))
        index = self.run_combo.findData(path)
        if index < 0:
            self.run_combo.addItem(Path(path).name, path)
            index = self.run_combo.count() - 1
        self.run_combo.setCurrentIndex(index)
        self._on_run()

    def _on_run(self, *_: Any) -> None:
        from kdgui.engine.netron_sources import run_sources

        self.model_combo.clear()
        run = self.run_combo.currentData()
        self._sources = run_sources(run) if run else []
        for source in self._sources:
            self.model_combo.addItem(source.label)
        if self._sources:
            self.model_combo.setCurrentIndex(len(self._sources) - 1)  # the final model
        self._show_summaries()
        self.open_button.setEnabled(bool(self._sources))

    def showEvent(self, event: Any) -> None:
        """The first time the view is shown with a model to pick, draw it: nothing to click."""
        super().showEvent(event)
        if not getattr(self, "_auto_shown", False) and self._sources:
            self._auto_shown = True
            from PySide6.QtCore import QTimer

            QTimer.singleShot(0, self.show_selected)

    def _show_summaries(self) -> None:
        teacher = next((s.metrics for s in self._sources if s.kind == "teacher"), {})
        student = next((s.metrics for s in self._sources if s.kind == "student"), {})
        stages = [s.metrics for s in self._sources if s.kind == "stage"]
        if not student and stages:
            student = stages[0]  # stage 0 is the student before compression
        final = stages[-1] if stages else {}
        for col, metrics in enumerate((teacher, student, final)):
            for row, (key, _) in enumerate(SUMMARY_ROWS):
                value = metrics.get(key)
                if key == "macs" and value is not None and value < 0:
                    value = None
                self.summary_table.setItem(row, col, QTableWidgetItem(_fmt(value)))

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a model", str(self.runs_root))
        if path:
            self.show_path(path)

    def show_selected(self) -> None:
        index = self.model_combo.currentIndex()
        if 0 <= index < len(self._sources):
            self.show_source(self._sources[index])

    def show_path(self, path: str | Path, **kwargs: Any) -> None:
        """A model file, run folder or stage folder (as ``kdgui netron`` takes)."""
        from kdgui.core.errors import UserError
        from kdgui.engine.netron_sources import source_for_path

        try:
            source = source_for_path(path, **kwargs)
        except UserError as exc:
            self._set_notice(exc.one_line())
            return
        self.show_source(source)

    def show_source(self, source: Any) -> None:
        """Prepare ``source`` on a worker thread, then show it."""
        if self._busy:
            return
        self._busy = True
        self.open_button.setEnabled(False)
        self._set_notice(f"Preparing {source.label} …")
        out = self._work / f"m{id(source)}"

        def work() -> None:
            from kdgui.core.errors import UserError
            from kdgui.engine.netron_sources import prepare

            try:
                self._relay.done.emit(prepare(source, out), None)
            except UserError as exc:
                self._relay.done.emit(None, exc.one_line())
            except Exception as exc:
                self._relay.done.emit(None, f"{type(exc).__name__}: {exc}")

        threading.Thread(target=work, name="kdgui-netron-prepare", daemon=True).start()

    # -- showing ---------------------------------------------------------------------------------
    def _on_prepared(self, prepared: Any, error: str | None) -> None:
        self._busy = False
        self.open_button.setEnabled(bool(self._sources))
        if prepared is None:
            self._set_notice(f"Cannot show this model: {error}")
            return
        self._current = prepared
        self.fill_layers(prepared.layers)
        notes = list(prepared.notes)
        notes.extend(self._serve(prepared.onnx_path))
        self._set_notice("\n".join(notes))
        self.prepared.emit(prepared)

    def fill_layers(self, layers: list[dict[str, Any]]) -> None:
        """The layer table, one row per layer, numbers as the engine computed them."""
        self.layer_table.setSortingEnabled(False)
        self.layer_model.removeRows(0, self.layer_model.rowCount())
        for row in layers:
            sparsity = row.get("sparsity")
            removed = row.get("removed_channels")
            values = [row.get("name"), row.get("type"), row.get("out_shape"), row.get("params"),
                      row.get("macs"), sparsity, row.get("bits"), row.get("rank"), removed]
            items = []
            for col, value in enumerate(values):
                text = f"{100 * sparsity:.1f}%" if col == 5 and sparsity is not None else (
                    str(len(removed)) if col == 8 and isinstance(removed, list) else _fmt(value))
                item = QStandardItem(text)
                item.setData(_sort_key(value), Qt.ItemDataRole.UserRole)
                if col >= 3:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                items.append(item)
            self.layer_model.appendRow(items)
        # module order until the user clicks a header
        self.layer_table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.layer_proxy.sort(-1)
        self.layer_table.setSortingEnabled(True)

    def _on_row(self, current: Any, _previous: Any) -> None:
        if current.isValid():
            name = self.layer_proxy.index(current.row(), 0).data()
            if name:
                self.layerSelected.emit(str(name))

    def select_layer(self, name: str) -> bool:
        """Select ``name`` in the table (emits ``layerSelected``); False if it is not there."""
        for row in range(self.layer_proxy.rowCount()):
            if self.layer_proxy.index(row, 0).data() == name:
                self.layer_table.selectRow(row)
                return True
        return False

    def _serve(self, onnx_path: Path) -> list[str]:
        """(Re)start the server on the new file and show it; returns notices to display."""
        from kdgui.engine.netron_server import NetronServer, netron_info

        self._stop_server()
        self.browser_button.setEnabled(False)
        info = netron_info()
        if not info.usable:
            self._show_placeholder("The graph cannot be drawn. The layer table and summaries "
                                   "still work.")
            return [info.message]
        notes = [info.message] if info.problem else []
        try:
            self._server = NetronServer(onnx_path)
            url = self._server.start()
        except Exception as exc:
            self._server = None
            return [*notes, f"Netron could not start: {exc}"]
        self.browser_button.setEnabled(True)
        web = self._web_view() if self.embed else None
        if web is None:
            from kdgui.gui.qt_netron_web import webengine_status

            why = webengine_status()[1] if self.embed else "the embedded viewer is turned off"
            self._show_placeholder(f"Opened in your browser: {url}")
            self._open_url(url)
            return [*notes, f"The graph opens in your web browser ({why})."]
        web.load(url)
        return notes

    def _web_view(self) -> Any:
        from kdgui.gui.qt_netron_web import NetronWebView, webengine_status

        if self._web is not None:
            return self._web
        if not webengine_status()[0]:
            return None
        try:
            self._web = NetronWebView(self.graph_area)
        except Exception:
            return None
        self._web.loadFailed.connect(lambda text: self._set_notice(text))
        self.placeholder.hide()
        self._graph_layout.addWidget(self._web)
        return self._web

    def _show_placeholder(self, text: str) -> None:
        self.placeholder.setText(text)
        self.placeholder.show()
        if self._web is not None:
            self._web.hide()

    def open_in_browser(self) -> None:
        if self._server is not None and self._server.address is not None:
            self._open_url(self._server.url)

    def _set_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))
        self.noticeChanged.emit(text)

    @property
    def server(self) -> Any:
        return self._server

    @property
    def web(self) -> Any:
        return self._web

    # -- cleanup ---------------------------------------------------------------------------------
    def _stop_server(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def shutdown(self) -> None:
        """Stop the server, release the web page and delete the prepared files (idempotent)."""
        self._stop_server()
        if self._web is not None:
            self._web.shutdown()
            self._web = None
        shutil.rmtree(self._work, ignore_errors=True)

    def closeEvent(self, event: Any) -> None:
        self.shutdown()
        super().closeEvent(event)
