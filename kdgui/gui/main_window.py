"""The main window: the flow of panels, the run worker, menus, shortcuts and persistence.

The window holds no training logic. It edits one :class:`QtConfigState`, starts the engine's
generator in a :class:`QtRunner` on a deep copy of the validated config, and routes every event
to the panels. Errors from any source (run worker, model inspection, file dialogs) reach the
user in one place, :meth:`QtMainWindow.show_error`, which opens a non-blocking message box and
keeps the window usable.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from kdgui.core.config import ExperimentConfig, demo_config
from kdgui.core.config_io import load_config, save_config
from kdgui.core.errors import UserError
from kdgui.core.events import Event, RunFailed, RunFinished, StateEvent
from kdgui.gui.qt_compress_panel import QtCompressPanel
from kdgui.gui.qt_config_state import QtConfigState
from kdgui.gui.qt_data_panel import QtDataPanel
from kdgui.gui.qt_distill_panel import QtDistillPanel
from kdgui.gui.qt_panel_base import QtPanel
from kdgui.gui.qt_results_panel import QtResultsPanel, RunRecord
from kdgui.gui.qt_run_panel import QtRunPanel
from kdgui.gui.qt_student_panel import QtStudentPanel
from kdgui.gui.qt_teacher_panel import QtTeacherPanel
from kdgui.gui.qt_worker import QtRunner, RunFn

FLOW_KEYS = ("teacher", "data", "student", "distill", "compress", "run", "results")

#: Views beside the flow, created the first time they are shown (they import more, e.g. torch
#: or QtWebEngine, which must not delay the first paint): key, title, "module:Class".
EXTRA_VIEWS: tuple[tuple[str, str, str], ...] = (
    ("models", "8 · Models (Netron)", "kdgui.gui.qt_views:make_models"),
    ("explorer", "9 · Soft-target explorer", "kdgui.gui.qt_views:make_explorer"),
    ("sensitivity", "Pruning sensitivity", "kdgui.gui.qt_views:make_sensitivity"),
    ("sweeps", "Sweeps & lessons", "kdgui.gui.qt_views:make_sweeps"),
    ("history", "History", "kdgui.gui.qt_views:make_history"),
)
PANEL_KEYS = FLOW_KEYS + tuple(key for key, _, _ in EXTRA_VIEWS)
MAX_RECENT = 8
CONFIG_FILTER = "Experiment configs (*.yaml *.yml *.json);;All files (*)"
#: How long closing the window waits for a stopping run before giving up on it.
CLOSE_TIMEOUT_MS = 15000


def _truthy(value: Any) -> bool:
    """QSettings' INI back end returns booleans as strings."""
    return str(value).lower() in ("1", "true", "yes")


def show_what_to_try(window: QtMainWindow) -> None:
    window.hint.show()


def new_run_dir(root: Path, name: str) -> Path:
    """``ROOT/YYYYmmdd-HHMMSS-NAME`` (with a suffix when taken), like the CLI's default."""
    base = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


class QtMainWindow(QMainWindow):
    """KD Studio's window. ``run_fn`` replaces the engine (tests); ``settings`` the QSettings."""

    #: Emitted once a run has ended and its last events were shown (ok: finished normally).
    run_ended = Signal(bool)

    def __init__(
        self,
        config: ExperimentConfig | None = None,
        *,
        run_fn: RunFn | None = None,
        settings: QSettings | None = None,
        runs_root: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle("KD Studio")
        self.settings = settings if settings is not None else QSettings("kdgui", "KD Studio")
        self.runs_root = Path(runs_root or self.settings.value("runs_root", "runs"))
        self.state = QtConfigState(config or demo_config(), self)
        self.config_path: Path | None = None
        self.errors: list[dict[str, str]] = []
        self.error_box: QMessageBox | None = None
        self.last_run_ok: bool | None = None
        self._close_pending = False
        self._failed = False
        self._stopping = False

        self.runner = QtRunner(run_fn, self)
        self.runner.event.connect(self._on_event)
        self.runner.errored.connect(self._on_worker_error)
        self.runner.finished.connect(self._on_run_finished)
        self.runner.paused_changed.connect(self._on_paused_changed)

        self.panels: dict[str, QtPanel] = {}
        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setFixedWidth(200)
        self.sidebar.setStyleSheet("QListWidget#sidebar::item { padding: 7px 4px; }")
        self.stack = QStackedWidget()
        for cls in (QtTeacherPanel, QtDataPanel, QtStudentPanel, QtDistillPanel,
                    QtCompressPanel, QtRunPanel, QtResultsPanel):
            panel = cls(self.state)
            self.panels[panel.key] = panel
            self.stack.addWidget(panel)
            item = QListWidgetItem(panel.title)
            item.setData(Qt.ItemDataRole.UserRole, panel.key)
            self.sidebar.addItem(item)
            err = getattr(panel, "error", None)
            if err is not None:
                err.connect(self.show_error)
        self.views: dict[str, QWidget] = {}
        for key, title, _ in EXTRA_VIEWS:
            placeholder = QWidget()
            placeholder.setObjectName(f"placeholder:{key}")
            self.stack.addWidget(placeholder)
            item = QListWidgetItem(title)
            item.setData(Qt.ItemDataRole.UserRole, key)
            self.sidebar.addItem(item)
        self.sidebar.currentRowChanged.connect(self._show_row)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.sidebar)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(6, 6, 6, 0)
        right_layout.setSpacing(4)
        from kdgui.gui.qt_first_run_hint import SETTINGS_KEY, QtFirstRunHint

        self.hint = QtFirstRunHint()
        self.hint.dismissed.connect(lambda: self.settings.setValue(SETTINGS_KEY, True))
        self.hint.setVisible(not _truthy(self.settings.value(SETTINGS_KEY, False)))
        right_layout.addWidget(self.hint)
        right_layout.addWidget(self.stack, 1)
        layout.addWidget(right, 1)
        self.setCentralWidget(central)

        self.run_panel: QtRunPanel = self.panels["run"]  # type: ignore[assignment]
        self.results_panel: QtResultsPanel = self.panels["results"]  # type: ignore[assignment]
        self.results_panel.set_runs_root(self.runs_root)
        self.run_panel.start_requested.connect(self.start_run)
        self.run_panel.pause_requested.connect(self.runner.pause)
        self.run_panel.resume_requested.connect(self.runner.resume)
        self.run_panel.stop_requested.connect(self.stop_run)
        self.results_panel.show_curves.connect(self.replay_run)
        self.results_panel.export_requested.connect(self.export_run)
        self.results_panel.save_plots_requested.connect(self.save_plots)

        self._build_actions()
        self.state.changed.connect(self._config_changed)
        self._config_changed()
        self.show_panel("teacher")
        self.resize(1280, 800)
        self._restore_settings()

    # -- menus and shortcuts -----------------------------------------------------------------
    def _action(self, text: str, slot: Any, shortcut: Any = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(tip or text)
        action.setStatusTip(tip or text)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        self.open_action = self._action("&Open Config…", self.open_config_dialog,
                                        QKeySequence.StandardKey.Open)
        self.save_action = self._action("&Save Config", self.save_config,
                                        QKeySequence.StandardKey.Save)
        self.save_as_action = self._action("Save Config &As…", self.save_config_as,
                                           QKeySequence.StandardKey.SaveAs)
        self.last_config_action = self._action("Reopen &Last Config", self.restore_last_config,
                                               tip="The config of the last session")
        self.demo_action = self._action("&Demo Config", lambda: self.set_config(demo_config()),
                                        tip="The embedded digits demo")
        self.open_run_action = self._action("Open &Run Folder…", self._open_run_dialog,
                                            "Ctrl+Shift+O")
        self.export_action = self._action("&Export Model…", self._export_selected, "Ctrl+E",
                                          "Export the last run's model")
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.run_action = self._action("&Run", self.start_run, "Ctrl+R",
                                       "Distill with the current settings")
        self.pause_action = self._action("&Pause / Resume", self.toggle_pause, "Ctrl+P")
        self.stop_action = self._action("S&top", self.stop_run, "Ctrl+.",
                                        "Stop after the current batch")
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for a in (self.open_action, self.save_action, self.save_as_action):
            file_menu.addAction(a)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        file_menu.addAction(self.last_config_action)
        file_menu.addAction(self.demo_action)
        file_menu.addSeparator()
        file_menu.addAction(self.open_run_action)
        file_menu.addAction(self.export_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        run_menu = menu.addMenu("&Run")
        for a in (self.run_action, self.pause_action, self.stop_action):
            run_menu.addAction(a)
        view_menu = menu.addMenu("&View")
        titles = {key: title for key, title, _ in EXTRA_VIEWS}
        for i, key in enumerate(PANEL_KEYS):
            title = self.panels[key].title if key in self.panels else titles[key]
            view_menu.addAction(self._action(
                title, lambda _c=False, k=key: self.show_panel(k),
                f"Ctrl+{i + 1}" if i < 9 else None
            ))
        view_menu.addSeparator()
        self.presentation_action = self._action(
            "Presentation mode", self._toggle_presentation, "F5",
            "Larger fonts and thicker lines for projectors")
        self.presentation_action.setCheckable(True)
        view_menu.addAction(self.presentation_action)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self._action("What to try", lambda: show_what_to_try(self)))
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        for a in (self.run_action, self.pause_action, self.stop_action):
            toolbar.addAction(a)
        toolbar.addSeparator()
        for a in (self.open_action, self.save_action, self.export_action):
            toolbar.addAction(a)
        self._refresh_recent_menu()

    # -- panels ----------------------------------------------------------------------------------
    def show_panel(self, key: str) -> None:
        if key not in PANEL_KEYS:
            raise ValueError(f"unknown panel '{key}'; use one of: {', '.join(PANEL_KEYS)}")
        self.sidebar.setCurrentRow(PANEL_KEYS.index(key))

    def current_panel(self) -> str:
        return PANEL_KEYS[self.stack.currentIndex()]

    def _show_row(self, row: int) -> None:
        if 0 <= row < len(PANEL_KEYS) and PANEL_KEYS[row] not in FLOW_KEYS:
            self.view(PANEL_KEYS[row])
        self.stack.setCurrentIndex(row)

    def view(self, key: str) -> QWidget:
        """The extra view ``key``, created (and put in place of its placeholder) on first use."""
        if key in self.views:
            return self.views[key]
        import importlib

        _, _, target = next(v for v in EXTRA_VIEWS if v[0] == key)
        module_name, _, cls_name = target.partition(":")
        factory = getattr(importlib.import_module(module_name), cls_name)
        widget = factory(self)
        row = PANEL_KEYS.index(key)
        old = self.stack.widget(row)
        self.stack.insertWidget(row, widget)
        self.stack.removeWidget(old)
        old.deleteLater()
        self.views[key] = widget
        if self.presentation_action.isChecked():  # a view opened later follows the mode too
            from kdgui.gui.presentation import set_presentation_mode

            set_presentation_mode(widget, True)
        selected = getattr(widget, "layerSelected", None)
        if selected is not None:
            selected.connect(self._highlight_layer)
        if self.run_panel.run_dir and hasattr(widget, "set_run"):
            with contextlib.suppress(Exception):
                widget.set_run(self.run_panel.run_dir)
        return widget

    def _toggle_presentation(self, on: bool | None = None) -> None:
        from kdgui.gui.presentation import set_presentation_mode

        set_presentation_mode(self, bool(self.presentation_action.isChecked()))

    def _highlight_layer(self, name: str) -> None:
        self.run_panel.heatmap.highlight(name)
        self.statusBar().showMessage(
            f"Layer {name} is highlighted in the sparsity heatmap (6 · Run).", 5000)

    def _config_changed(self) -> None:
        for i, key in enumerate(FLOW_KEYS):
            panel = self.panels[key]
            bad = key != "run" and bool(panel.issues())
            self.sidebar.item(i).setText(("⚠ " if bad else "") + panel.title)
        running = self.runner.running
        self.run_action.setEnabled(self.state.valid and not running)
        self.run_panel.set_running(running, self.runner.paused)
        if self.state.issues:
            first = self.state.issues[0]
            more = f" (+{len(self.state.issues) - 1} more)" if len(self.state.issues) > 1 else ""
            self.statusBar().showMessage(f"Cannot run: {first.what}{more}")
        elif not running:
            self.statusBar().showMessage("Ready: press Run (Ctrl+R) to distill.")
        self._update_run_actions()

    def _update_run_actions(self) -> None:
        running = self.runner.running
        self.run_action.setEnabled(self.state.valid and not running)
        self.pause_action.setEnabled(running)
        self.stop_action.setEnabled(running)
        self.run_panel.set_running(running, self.runner.paused)

    # -- running ---------------------------------------------------------------------------------
    def start_run(self) -> bool:
        """Start the run on a copy of the current config; False when it cannot start."""
        if self.runner.running:
            return False
        if not self.state.valid or self.state.config is None:
            self.show_panel("run")
            return False
        out_dir = new_run_dir(self.runs_root, self.state.config.name)
        self.run_panel.reset()
        self._failed = False
        self._stopping = False
        self.last_run_ok = None
        self.settings.setValue("last_config", json.dumps(self.state.data))
        self.runner.start(self.state.config, out_dir)
        self.show_panel("run")
        self.statusBar().showMessage(f"Running… ({out_dir})")
        self._update_run_actions()
        return True

    def toggle_pause(self) -> None:
        if self.runner.paused:
            self.runner.resume()
        else:
            self.runner.pause()

    def stop_run(self) -> None:
        if self.runner.running:
            self._stopping = True
            self.runner.stop()
            self.run_panel.status_label.setText("Stopping after the current batch…")

    def _on_paused_changed(self, paused: bool) -> None:
        self.run_panel.set_running(self.runner.running, paused)
        self.statusBar().showMessage("Paused." if paused else "Running…")

    def _on_event(self, ev: Event) -> None:
        self.run_panel.handle(ev)
        if isinstance(ev, RunFailed):
            self._failed = True
            self.show_error(ev.error)
        elif isinstance(ev, RunFinished):
            self.last_run_ok = not ev.stopped
            if ev.run_dir and Path(ev.run_dir).is_dir():
                with contextlib.suppress(UserError):
                    self.results_panel.open_run(ev.run_dir)
                for widget in self.views.values():
                    if hasattr(widget, "set_run"):
                        with contextlib.suppress(Exception):
                            widget.set_run(ev.run_dir)
        elif isinstance(ev, StateEvent) and ev.state in ("paused", "resumed"):
            self.run_panel.set_running(True, ev.state == "paused")

    def _on_worker_error(self, error: dict[str, str]) -> None:
        self._failed = True
        self.run_panel.status_label.setText(f"Failed: {error.get('what', '')}")
        self.show_error(error)

    def _on_run_finished(self) -> None:
        self.run_panel.flush()
        if self.last_run_ok is None:
            self.last_run_ok = False
        self._update_run_actions()
        self._config_changed()
        self.statusBar().showMessage(
            "Run failed." if self._failed else "Run stopped." if not self.last_run_ok
            else "Run finished.")
        self.run_ended.emit(bool(self.last_run_ok) and not self._failed)
        if self._close_pending:
            self.close()

    # -- errors ------------------------------------------------------------------------------------
    def show_error(self, error: dict[str, str]) -> None:
        """Show a ``what``/``fix`` error without blocking (tests read :attr:`errors`)."""
        self.errors.append(dict(error))
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("KD Studio")
        box.setText(error.get("what") or error.get("message") or "Something went wrong.")
        if error.get("fix"):
            box.setInformativeText(error["fix"])
        details = error.get("traceback") or (error.get("message") if error.get("internal")
                                             else "")
        if details:
            box.setDetailedText(details)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        self.error_box = box
        box.open()

    # -- configs -----------------------------------------------------------------------------------
    def set_config(self, config: ExperimentConfig | dict[str, Any]) -> None:
        self.state.replace(config)

    def open_config(self, path: str | Path) -> bool:
        try:
            config = load_config(path)
        except UserError as exc:
            self.show_error(exc.to_dict())
            return False
        self.set_config(config)
        self.config_path = Path(path)
        self._add_recent(str(path))
        self.setWindowTitle(f"KD Studio — {Path(path).name}")
        return True

    def open_config_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open config", "", CONFIG_FILTER)
        if path:
            self.open_config(path)

    def save_config(self, path: str | Path | None = None) -> bool:
        target = Path(path) if path else self.config_path
        if target is None:
            return self.save_config_as()
        if self.state.config is None:
            self.show_error({"what": "the config has errors and cannot be saved",
                             "fix": "Fix the problems shown in red first."})
            return False
        try:
            save_config(self.state.config, target)
        except UserError as exc:
            self.show_error(exc.to_dict())
            return False
        self.config_path = target
        self._add_recent(str(target))
        self.statusBar().showMessage(f"Saved {target}", 4000)
        return True

    def save_config_as(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(self, "Save config", "experiment.yaml",
                                              CONFIG_FILTER)
        return self.save_config(path) if path else False

    def restore_last_config(self) -> bool:
        raw = self.settings.value("last_config", "")
        if not raw:
            return False
        try:
            self.set_config(json.loads(str(raw)))
        except (ValueError, TypeError):
            return False
        return True

    # -- recent files and settings ---------------------------------------------------------------
    def recent_files(self) -> list[str]:
        value = self.settings.value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, path: str) -> None:
        files = [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent_files", [path, *files][:MAX_RECENT])
        self._refresh_recent_menu()

    def _refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.recent_files():
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _c=False, p=path: self.open_config(p))
        self.recent_menu.setEnabled(bool(self.recent_files()))

    def _restore_settings(self) -> None:
        geometry = self.settings.value("geometry")
        if isinstance(geometry, (QByteArray, bytes)):
            self.restoreGeometry(geometry)
        state = self.settings.value("window_state")
        if isinstance(state, (QByteArray, bytes)):
            self.restoreState(state)

    def save_settings(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        self.settings.setValue("last_config", json.dumps(self.state.data))
        self.settings.setValue("runs_root", str(self.runs_root))
        self.settings.sync()

    # -- results -----------------------------------------------------------------------------------
    def open_run(self, path: str | Path) -> RunRecord | None:
        try:
            record = self.results_panel.open_run(path)
        except UserError as exc:
            self.show_error(exc.to_dict())
            return None
        self.show_panel("results")
        return record

    def _open_run_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open run folder", str(self.runs_root))
        if path:
            self.open_run(path)

    def replay_run(self, record: RunRecord) -> None:
        """Show a finished run's curves in the Run panel (no worker involved)."""
        if self.runner.running:
            self.show_error({"what": "a run is in progress",
                             "fix": "Stop it or wait for it before showing another run."})
            return
        self.run_panel.reset()
        for ev in record.events:
            self.run_panel.handle(ev)
        self.run_panel.flush()
        self.show_panel("run")

    def _export_selected(self) -> None:
        records = self.results_panel.selected()
        if len(records) == 1:
            self.export_run(records[0])
        elif self.run_panel.run_dir and Path(self.run_panel.run_dir).is_dir():
            self.export_run(RunRecord(Path(self.run_panel.run_dir)))
        else:
            self.show_error({"what": "no run to export",
                             "fix": "Run the demo, or select a run under Results."})

    def export_run(self, record: RunRecord) -> None:
        from kdgui.gui.qt_export_dialog import QtExportDialog

        dialog = QtExportDialog(str(record.path), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.export_dialog = dialog
        dialog.open()

    def save_plots(self, folder: str | None = None, fmt: str = "png") -> list[Path]:
        """Write each Run plot (and the Results bars) to ``folder`` as PNG or SVG."""
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Save plots to folder")
            if not folder:
                return []
        out = []
        named = {"loss": self.run_panel.loss_plot, "accuracy": self.run_panel.accuracy_plot,
                 "sparsity": self.run_panel.heatmap, "bars": self.run_panel.bars}
        for name, plot in named.items():
            path = Path(folder) / f"{name}.{fmt}"
            try:
                plot.export(str(path))
            except Exception as exc:
                self.show_error({"what": f"cannot write '{path}': {exc}",
                                 "fix": "Choose a folder you can write to."})
                break
            out.append(path)
        if out:
            self.statusBar().showMessage(f"Saved {len(out)} plots to {folder}", 4000)
        return out

    # -- closing -----------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing during a run stops it first; the window closes when the worker has ended."""
        if self.runner.running:
            if not self._close_pending:
                self._close_pending = True
                self.stop_run()
                self.statusBar().showMessage("Stopping the run before closing…")
                QTimer.singleShot(CLOSE_TIMEOUT_MS, self._force_close)
            event.ignore()
            return
        self.save_settings()
        from kdgui.gui.qt_task import wait_for_tasks

        wait_for_tasks(10000)  # a model inspection or analysis still loading finishes first
        for widget in self.views.values():
            shutdown = getattr(widget, "shutdown", None)
            if shutdown is not None:
                shutdown()
        event.accept()

    def _force_close(self) -> None:
        if self.runner.running:
            self.runner.wait(2000)
        self._close_pending = False
        if self.runner.running:
            return  # the engine is stuck; keep the window rather than abort its thread
        self.close()
