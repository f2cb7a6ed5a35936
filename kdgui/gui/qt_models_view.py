"""The Models view: teacher, student or any compression stage of a run, drawn by Netron.

Left, the graph (Netron embedded through QtWebEngine, or the system browser with a notice when
QtWebEngine is missing); right, the layer table with the engine's numbers (sortable; selecting a
row emits ``layerSelected(name)`` so the window can highlight the layer in the sparsity heatmap)
and the teacher / student / final-stage summaries side by side. The model handed to Netron is an
ONNX file whose nodes carry each layer's compression (see :mod:`kdgui.engine.netron_graph`).

Preparing a model (loading it, exporting ONNX) takes seconds, so it runs on the window's worker
(:class:`~kdgui.gui.qt_worker.QtWorker`, after the engine warm-up), one at a time (the ONNX
exporter is not thread-safe). The latest request wins: a model picked while another is queued or
being prepared supersedes it (one still waiting for the warm-up does no work, one exporting
finishes unseen), so the picked model is prepared once (opening on a run's final model then
picking another prepared and showed both). Automatic shows (first show, a new run) share one
timer. The Netron server listens on 127.0.0.1 only and is stopped when the view closes or the
app quits.
Nothing here fails when netron or QtWebEngine is missing: the table and summaries still work and
a notice says what is missing and how to get it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from kdgui.core.errors import UserError
from kdgui.core.run_folders import find_runs
from kdgui.gui.qt_graph_paint import QtColourLegend, overlay_fills, overlay_title
from kdgui.gui.qt_graph_pane import QtGraphPane
from kdgui.gui.qt_model_tables import COLUMNS, QtLayerTable, QtModelSummaries
from kdgui.gui.qt_worker import QtWorker, WorkerRequest


def _jobs() -> Any:
    """The engine's facade (imports no torch; its functions load what they need)."""
    from kdgui.engine import jobs

    return jobs


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
        self._current: Any = None
        self._sources: list[Any] = []
        self._task: QtWorker | None = None
        self._request: WorkerRequest | None = None  # the one the worker has (or had last)
        self._pending: Any = None  # the source to prepare once the worker's one has ended
        self.prepare_count = 0  # preparations started on the worker (tests count them)
        self._auto = QTimer(self)  # the automatic show: several requests in a row make one
        self._auto.setSingleShot(True)
        self._auto.setInterval(0)
        self._auto.timeout.connect(self.show_selected)
        self._build()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self.refresh_runs()

    # -- layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.run_combo, self.model_combo = QComboBox(), QComboBox()
        for combo in (self.run_combo, self.model_combo):
            combo.setMinimumContentsLength(12)  # 24 widened the window to 1666 px at 1.5× font
        self.open_button = QPushButton("Show")
        self.file_button = QPushButton("Open file…")
        self.browser_button = QPushButton("Open in browser")
        self.browser_button.setEnabled(False)
        self.overlay_combo = QComboBox()  # measured overlays, painted on the graph
        self.overlay_combo.addItems(["no overlay", "latency", "quantization error"])
        self.overlay_combo.setToolTip("Measure each layer (on the worker) and colour the graph")
        self.compare_button = QPushButton("Compare…")
        self.compare_button.setCheckable(True)
        self.compare_button.setToolTip("Two models of this run side by side, with their diff")
        bar = QHBoxLayout()
        for label, widget in (("Run", self.run_combo), ("Model", self.model_combo)):
            bar.addWidget(QLabel(label))
            bar.addWidget(widget, 1)
        actions = QToolBar()  # what does not fit (presentation mode, 1024 px) goes behind "»"
        for button in (self.open_button, self.file_button, self.browser_button,
                       self.overlay_combo, self.compare_button):
            actions.addWidget(button)
        bar.addWidget(actions)
        self.notice = QLabel("")
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.hide()

        self.graph = QtGraphPane(
            "", self, embed=self.embed, open_url=lambda url: self._open_url(url),
            placeholder="Pick a model to draw its graph.",
            cannot_draw="The graph cannot be drawn. The layer table and summaries still work.")
        self.placeholder = self.graph.placeholder
        self.graph.loadFailed.connect(lambda text: self._set_notice(text))

        self.layer_table = QtLayerTable(self)
        self.layer_model = self.layer_table.source
        self.layer_proxy = self.layer_table.proxy
        self.layer_table.selectionModel().currentRowChanged.connect(self._on_row)
        self.summary_table = QtModelSummaries()

        side = QSplitter(Qt.Orientation.Vertical)
        side.addWidget(self.layer_table)
        side.addWidget(self.summary_table)
        side.setStretchFactor(0, 3)
        side.setStretchFactor(1, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.graph)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        self.legend = QtColourLegend()
        self.legend.hide()
        self.compare_view: Any = None  # made on first use of Compare…

        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.notice)
        layout.addWidget(self.legend)
        layout.addWidget(split, 1)
        self._split, self._layout = split, layout

        self.run_combo.currentIndexChanged.connect(self._on_run)
        self.open_button.clicked.connect(self.show_selected)
        self.model_combo.activated.connect(self._on_model_picked)  # the user's pick, not ours
        self.file_button.clicked.connect(self._pick_file)
        self.browser_button.clicked.connect(self.open_in_browser)
        self.overlay_combo.currentIndexChanged.connect(self._on_overlay)
        self.compare_button.toggled.connect(self.set_compare)

    # -- choosing --------------------------------------------------------------------------------
    def refresh_runs(self) -> None:
        """Fill the run picker from ``runs_root`` (newest first)."""
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        for run in find_runs(self.runs_root, models=True):
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
        if index != self.run_combo.currentIndex():
            self.run_combo.setCurrentIndex(index)  # _on_run, through the signal
        else:
            self._on_run()  # the same run, re-read (a run that just ended has new models)

    def _on_run(self, *_: Any) -> None:
        self.model_combo.clear()
        run = self.run_combo.currentData()
        self._sources = _jobs().model_sources(run) if run else []
        for source in self._sources:
            self.model_combo.addItem(source.label)
        if self._sources:
            self.model_combo.setCurrentIndex(len(self._sources) - 1)  # the final model
        self._show_summaries()
        self.open_button.setEnabled(bool(self._sources))
        if self.compare_view is not None:
            self.compare_view.set_sources(self._sources)
        if self._current is not None and self._sources:
            # A model is on screen: draw the chosen run's instead (the graph, its table and an
            # overlay stayed on the previous run while the picker named the new one). Hidden,
            # the view draws it when next shown.
            self._measured = None
            if self.isVisible():
                self._auto.start()
            else:
                self._auto_shown = False

    def showEvent(self, event: Any) -> None:
        """The first time the view is shown with a model to pick, draw it: nothing to click."""
        super().showEvent(event)
        if not getattr(self, "_auto_shown", False) and self._sources:
            self._auto_shown = True
            self._auto.start()

    def _show_summaries(self) -> None:
        self.summary_table.show_sources(self._sources)

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a model", str(self.runs_root))
        if path:
            self.show_path(path)

    def show_selected(self) -> None:
        index = self.model_combo.currentIndex()
        if 0 <= index < len(self._sources):
            self.show_source(self._sources[index])

    def _on_model_picked(self, index: int) -> None:
        """A model picked in the list is drawn at once (unless it is the one on screen)."""
        shown = self._current.source if self._current is not None else None
        if 0 <= index < len(self._sources) and (self._sources[index] != shown or (
                self._task is not None and self._task.running)):
            self.show_source(self._sources[index])

    def show_path(self, path: str | Path, **kwargs: Any) -> None:
        """A model file, run folder or stage folder (as ``kdgui netron`` takes)."""
        try:
            source = _jobs().model_source_for_path(path, **kwargs)
        except UserError as exc:
            self._set_notice(exc.one_line())
            return
        self.show_source(source)

    def show_source(self, source: Any) -> None:
        """Prepare ``source`` on the worker (load it, write its ONNX; with an overlay chosen,
        measure its layers too), then show it."""
        self._auto.stop()  # an automatic show still waiting is superseded by this request
        measure = self.overlay_combo.currentIndex() > 0
        self._set_notice(f"Preparing {source.label}" + (" and measuring its layers" if measure
                                                         else "") + " …")
        busy = self._request if self._task is not None and self._task.running else None
        if busy is not None and not busy.cancelled and busy.key == (source, measure):
            self._pending = None  # the one asked for is the one being prepared
        elif busy is not None:
            busy.cancelled = True  # not started: skipped; started: its result is dropped
            self._pending = source  # prepared as soon as the worker is free
        else:
            self._pending = None
            self._start(WorkerRequest((source, measure)))

    def _start(self, request: WorkerRequest) -> None:
        source, measure = request.key
        out = self._work / f"m{id(source)}_{int(measure)}"

        def work() -> Any:
            if request.cancelled:  # superseded while it waited for the engine warm-up
                return None
            request.started = True
            self.prepare_count += 1
            return (_jobs().measure_model(source, out, overlays=True) if measure
                    else _jobs().prepare_model(source, out))

        task = QtWorker(work, name="kdgui-netron-prepare", owner=self)
        task.returned.connect(lambda result: request.cancelled or self._on_prepared(result))
        task.errored.connect(lambda error: request.cancelled or self._on_prepare_failed(error))
        task.finished.connect(self._prepare_ended)
        self._task, self._request = task, request
        task.start()

    # -- showing ---------------------------------------------------------------------------------
    def _prepare_ended(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._start(WorkerRequest((pending, self.overlay_combo.currentIndex() > 0)))

    def _on_prepare_failed(self, error: dict[str, str]) -> None:
        fix = f" {error['fix']}" if error.get("fix") else ""
        self._set_notice(f"Cannot show this model: {error.get('what', 'unknown error')}.{fix}")

    def _on_prepared(self, prepared: Any) -> None:
        self._measured = prepared if hasattr(prepared, "overlays") else None
        prepared = getattr(prepared, "prepared", prepared)
        self._current = prepared
        self.fill_layers(prepared.layers)
        notes = list(prepared.notes)
        notes.extend(self._serve(prepared.onnx_path))
        self._set_notice("\n".join(notes))
        self.paint_overlay()
        self.prepared.emit(prepared)

    def fill_layers(self, layers: list[dict[str, Any]]) -> None:
        """The layer table, one row per layer, numbers as the engine computed them."""
        self.layer_table.fill(layers)

    def _on_row(self, current: Any, _previous: Any) -> None:
        if current.isValid():
            name = self.layer_table.name_at(current.row())
            if name:
                self.layerSelected.emit(name)

    def select_layer(self, name: str) -> bool:
        """Select ``name`` in the table (emits ``layerSelected``); False if it is not there."""
        return self.layer_table.select_name(name)

    def _serve(self, onnx_path: Path) -> list[str]:
        """(Re)start the server on the new file and show it; returns notices to display."""
        notes = self.graph.show_file(onnx_path)
        self.browser_button.setEnabled(self.graph.server is not None)
        return notes

    # -- overlays and compare mode -----------------------------------------------------------------
    def _on_overlay(self, *_: Any) -> None:
        measured = getattr(self, "_measured", None)
        if self.overlay_combo.currentIndex() > 0 and measured is None and self._current:
            self.show_source(self._current.source)  # measure it now
        self.paint_overlay()

    def paint_overlay(self) -> None:
        """Fill the graph's nodes by the chosen overlay, with its colour scale above."""
        measured = getattr(self, "_measured", None)
        key = ("", "latency_ms", "quant_error")[self.overlay_combo.currentIndex()]
        (fills,), scale, log = overlay_fills([measured], key)
        self.graph.paint(fills, {})  # now, or once the graph is drawn
        self.legend.setVisible(bool(key))
        if scale:
            self.legend.set_scale(overlay_title(key, log), f"{scale[0]:.3g}", f"{scale[1]:.3g}")
        elif key:
            why = measured.prepared.notes[-1:] if measured else ["measuring …"]
            self.legend.set_swatches(f"no {self.overlay_combo.currentText()}: {why[0] if why else ''}", [])

    def set_compare(self, on: bool) -> None:
        """Switch between one model and two side by side (the Compare… button). Entering it
        compares the picked pair at once (it took a second press, of Compare, before anything
        showed); a graph not yet being prepared is dropped (the comparison would wait for it)
        and drawn when compare mode is left."""
        busy = self._request if self._task is not None and self._task.running else None
        if on:
            self._auto.stop()
            if busy is not None and not busy.started:
                busy.cancelled = True
                self._pending = None
        elif self._current is None and self._sources and (busy is None or busy.cancelled):
            self._auto.start()
        if on and self.compare_view is None:
            from kdgui.gui.qt_compare_view import CompareView

            self.compare_view = CompareView(self, embed=self.embed, open_url=self._open_url)
            self.compare_view.layerSelected.connect(self.layerSelected)
            self._layout.addWidget(self.compare_view, 1)
            self.compare_view.set_sources(self._sources)
        self._split.setVisible(not on)
        self.notice.setVisible(not on and bool(self.notice.text()))
        self.legend.setVisible(not on and self.overlay_combo.currentIndex() > 0)
        if self.compare_view is not None:
            self.compare_view.setVisible(on)
        self.compare_button.setChecked(on)
        if on:
            self.compare_view.compare_picked()

    def open_in_browser(self) -> None:
        if self.server is not None and self.server.address is not None:
            self._open_url(self.server.url)

    def _set_notice(self, text: str) -> None:
        import re

        # Netron's and torch's messages carry terminal colour codes (raw, or escaped "\x1b[").
        text = re.sub(r"(\x1b|\\x1b|\\033)\[[0-9;?]*[ -/]*[@-~]", "", text)
        self.notice.setText(text)
        self.notice.setVisible(bool(text) and not self.compare_button.isChecked())
        self.noticeChanged.emit(text)

    @property
    def server(self) -> Any:
        return self.graph.server

    @property
    def web(self) -> Any:
        return self.graph.web

    # -- cleanup ---------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the server, release the web page and delete the prepared files (idempotent)."""
        self.graph.shutdown()
        if self.compare_view is not None:
            self.compare_view.shutdown()
        shutil.rmtree(self._work, ignore_errors=True)

    def closeEvent(self, event: Any) -> None:
        self.shutdown()
        super().closeEvent(event)


__all__ = ["COLUMNS", "ModelsView"]
