"""The main window: the flow of panels, the views beside it, the run, errors and closing.

The window holds no training logic. It edits one :class:`QtConfigState`, starts the engine's
``run`` job in a :class:`QtRunner` on a deep copy of the validated config, and routes every
event to the panels. Errors from any source (run, probes, file dialogs) reach the user in one
place, :meth:`QtMainWindow.show_error`, which opens a non-blocking message box.

At launch the window starts the engine warm-up (:func:`kdgui.engine.jobs.warm_up`) on a worker:
torch is imported once, by that one thread, while the user reads the first panel; every worker
that needs the engine waits for it, so no view can import torch concurrently (issue 12.1).

Its other parts live beside it: menus (:mod:`~kdgui.gui.window_menus`), configs and settings
(:mod:`~kdgui.gui.window_files`), finished runs (:mod:`~kdgui.gui.window_results`) and the views
beside the flow (:mod:`~kdgui.gui.qt_views`).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import (
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
from kdgui.core.errors import UserError
from kdgui.core.events import Event, RunFailed, RunFinished, RunStarted, StateEvent
from kdgui.core.history import default_root
from kdgui.core.run_folders import new_run_dir
from kdgui.gui.qt_compress_panel import QtCompressPanel
from kdgui.gui.qt_config_state import QtConfigState
from kdgui.gui.qt_data_panel import QtDataPanel
from kdgui.gui.qt_distill_panel import QtDistillPanel
from kdgui.gui.qt_first_run_hint import SETTINGS_KEY, QtFirstRunHint
from kdgui.gui.qt_panel_base import QtPanel
from kdgui.gui.qt_results_panel import QtResultsPanel
from kdgui.gui.qt_run_panel import QtRunPanel
from kdgui.gui.qt_runner import QtRunner, RunFn
from kdgui.gui.qt_student_panel import QtStudentPanel
from kdgui.gui.qt_teacher_panel import QtTeacherPanel
from kdgui.gui.qt_views import EXTRA_VIEWS
from kdgui.gui.qt_worker import QtWorker, wait_for_workers
from kdgui.gui.window_files import WindowFilesMixin, truthy
from kdgui.gui.window_menus import build_menus
from kdgui.gui.window_results import WindowResultsMixin

FLOW_KEYS = ("teacher", "data", "student", "distill", "compress", "run", "results")
FLOW_PANELS = (QtTeacherPanel, QtDataPanel, QtStudentPanel, QtDistillPanel, QtCompressPanel,
               QtRunPanel, QtResultsPanel)
PANEL_KEYS = FLOW_KEYS + tuple(key for key, _, _ in EXTRA_VIEWS)
#: How long closing the window waits for a stopping run before giving up on it.
CLOSE_TIMEOUT_MS = 15000
#: How long after the first show the engine warm-up starts: the window paints first.
WARM_UP_DELAY_MS = 300


def show_what_to_try(window: QtMainWindow) -> None:
    window.hint.show()


def _start_engine_warm_up() -> QtWorker:
    from kdgui.engine import jobs
    from kdgui.gui import qt_choice_sources, ui_thread
    worker = QtWorker(jobs.warm_up, needs_engine=False, name="kdgui-engine-warm-up")
    worker.returned.connect(lambda _r: ui_thread.freeze_start_up())  # no full GC pause in a run
    worker.returned.connect(qt_choice_sources.publish_warm_up)  # e.g. this machine's GPUs
    return worker.start()


class QtMainWindow(WindowFilesMixin, WindowResultsMixin, QMainWindow):
    """KD Studio's window. ``run_fn`` replaces the engine (tests); ``settings`` the QSettings;
    ``runs_root`` the one runs folder every view uses (``--runs-root``; else the settings'
    ``runs_root``; else ``$KDGUI_RUNS`` or ``./runs``, as for ``kdgui history``)."""

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
        chosen = runs_root or self.settings.value("runs_root", "")
        #: Remembered in the settings only when chosen (the default follows $KDGUI_RUNS).
        self.runs_root_chosen = bool(chosen)
        self.runs_root = Path(chosen) if chosen else default_root()
        self.state = QtConfigState(config or demo_config(), self)
        self.config_path: Path | None = None
        self.errors: list[dict[str, str]] = []
        self.error_box: QMessageBox | None = None
        self.last_run_ok: bool | None = None
        self._close_pending = False
        self._failed = False

        self.runner = QtRunner(run_fn, self)
        #: With the real engine, teacher, data and student are checked before Run; made at the
        #: first show, so that its first check (which loads torch) never delays the first paint.
        self.setup_check: Any = None
        self._wants_setup_check = run_fn is None
        self._run_config: ExperimentConfig | None = None  # what the current run was started with
        self.runner.event.connect(self._on_event)
        self.runner.errored.connect(self._on_worker_error)
        self.runner.finished.connect(self._on_run_finished)
        self.runner.paused_changed.connect(self._on_paused_changed)
        #: Imports torch once, soon after the first paint; every engine worker waits for it.
        self.engine_warm_up: QtWorker | None = None

        self.panels: dict[str, QtPanel] = {}
        self.views: dict[str, QWidget] = {}
        self._build_layout()
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

        titles = {key: panel.title for key, panel in self.panels.items()}
        titles.update({key: title for key, title, _ in EXTRA_VIEWS})
        build_menus(self, titles)
        self.refresh_recent_menu()
        self.state.changed.connect(self._config_changed)
        self._config_changed()
        self.show_panel("teacher")
        self.resize(1280, 800)
        self.restore_settings()

    def _build_layout(self) -> None:
        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setFixedWidth(200)
        self.sidebar.setStyleSheet("QListWidget#sidebar::item { padding: 7px 4px; }")
        self.stack = QStackedWidget()
        for cls in FLOW_PANELS:
            panel = cls(self.state)
            self.panels[panel.key] = panel
            self._add_page(panel.key, panel.title, panel)
            err = getattr(panel, "error", None)
            if err is not None:
                err.connect(self.show_error)
        for key, title, _ in EXTRA_VIEWS:
            placeholder = QWidget()
            placeholder.setObjectName(f"placeholder:{key}")
            self._add_page(key, title, placeholder)
        self.sidebar.currentRowChanged.connect(self._show_row)
        self.hint = QtFirstRunHint()
        self.hint.dismissed.connect(lambda: self.settings.setValue(SETTINGS_KEY, True))
        self.hint.setVisible(not truthy(self.settings.value(SETTINGS_KEY, False)))
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(6, 6, 6, 0)
        right_layout.setSpacing(4)
        right_layout.addWidget(self.hint)
        right_layout.addWidget(self.stack, 1)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.sidebar)
        layout.addWidget(right, 1)
        self.setCentralWidget(central)

    def _add_page(self, key: str, title: str, widget: QWidget) -> None:
        self.stack.addWidget(widget)
        item = QListWidgetItem(title)
        item.setData(Qt.ItemDataRole.UserRole, key)
        self.sidebar.addItem(item)

    def showEvent(self, event: QShowEvent) -> None:
        """Start the engine warm-up once the window has painted (torch takes seconds)."""
        super().showEvent(event)
        if self.engine_warm_up is None:
            QTimer.singleShot(WARM_UP_DELAY_MS, self._warm_up)
        if self._wants_setup_check and self.setup_check is None:
            from kdgui.gui.qt_setup_check import QtSetupCheck

            self.setup_check = QtSetupCheck(self.state, self)

    def _warm_up(self) -> None:
        if self.engine_warm_up is None and self.isVisible():  # not after a quick close
            self.engine_warm_up = _start_engine_warm_up()

    # -- panels and views ------------------------------------------------------------------------
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
        factory = next(make for k, _, make in EXTRA_VIEWS if k == key)
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
            with contextlib.suppress(UserError, OSError):
                widget.set_run(self.run_panel.run_dir)
        return widget

    def toggle_presentation(self, _on: bool | None = None) -> None:
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
        if self.state.issues:
            first = self.state.issues[0]
            more = f" (+{len(self.state.issues) - 1} more)" if len(self.state.issues) > 1 else ""
            self.statusBar().showMessage(f"Cannot run: {first.what}{more}")
        elif not self.runner.running:
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
        self.last_run_ok = None
        self.settings.setValue("last_config", json.dumps(self.state.data))
        if self.setup_check is not None:  # the run loads the same data and models itself
            self.setup_check.hold(True)
        self._run_config = self.state.config
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
        """Stop after the current batch; the engine still measures and saves the run."""
        if self.runner.running:
            self.runner.stop()
            self.run_panel.status_label.setText(
                "Stopping after the current batch (saving the run)…")

    def _on_paused_changed(self, paused: bool) -> None:
        self.run_panel.set_running(self.runner.running, paused)
        self.statusBar().showMessage("Paused." if paused else "Running…")

    def _on_event(self, ev: Event) -> None:
        self.run_panel.handle(ev)
        if isinstance(ev, RunStarted) and self.setup_check is not None:
            self.setup_check.passed(self._run_config)
        elif isinstance(ev, RunFailed):
            self._failed = True  # its error comes as the worker's ``errored`` (one message)
        elif isinstance(ev, RunFinished):
            self.last_run_ok = not ev.stopped
            if ev.run_dir and Path(ev.run_dir).is_dir():
                with contextlib.suppress(UserError):
                    self.results_panel.open_run(ev.run_dir)
                for widget in self.views.values():
                    if hasattr(widget, "set_run"):
                        with contextlib.suppress(UserError, OSError):
                            widget.set_run(ev.run_dir)
        elif isinstance(ev, StateEvent) and ev.state in ("paused", "resumed"):
            self.run_panel.set_running(True, ev.state == "paused")

    def _on_worker_error(self, error: dict[str, str]) -> None:
        self._failed = True
        self.run_panel.status_label.setText(f"Failed: {error.get('what', '')}")
        self.show_error(error)

    def _on_run_finished(self) -> None:
        self.run_panel.flush()
        if self.setup_check is not None:
            self.setup_check.hold(False)
        if self.last_run_ok is None:
            self.last_run_ok = False
        self._config_changed()
        self.statusBar().showMessage(
            "Run failed." if self._failed else "Run stopped." if not self.last_run_ok
            else self.run_panel.finished_status())
        self.run_ended.emit(bool(self.last_run_ok) and not self._failed)
        if self._close_pending:
            self.close()

    # -- errors ----------------------------------------------------------------------------------
    def show_error(self, error: dict[str, str]) -> None:
        """Show a ``what``/``fix`` error without blocking (tests read :attr:`errors`)."""
        from kdgui.gui.qt_setup_check import window_words  # "pass --trust" → where to click

        error = {k: window_words(v) if k in ("what", "fix") and isinstance(v, str) else v
                 for k, v in error.items()}
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

    # -- closing ---------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing during a run stops it first; the window closes when the run is saved."""
        if self.runner.running:
            if not self._close_pending:
                self._close_pending = True
                self.stop_run()
                self.statusBar().showMessage("Stopping the run before closing…")
                QTimer.singleShot(CLOSE_TIMEOUT_MS, self._force_close)
            event.ignore()
            return
        self.save_settings()
        wait_for_workers(10000)  # a model inspection or analysis still loading finishes first
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


__all__ = ["EXTRA_VIEWS", "FLOW_KEYS", "PANEL_KEYS", "QtMainWindow", "show_what_to_try"]
