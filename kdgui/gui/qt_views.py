"""Factories of the views beside the flow (Models, Explorer, Sweeps, History).

Each takes the main window and returns a ready widget, wired to the window's config, runs folder
and run panel. The window calls them the first time a view is shown, so their imports (netron,
QtWebEngine, torch for the explorer) never delay the first paint.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QWidget

if TYPE_CHECKING:
    from kdgui.gui.main_window import QtMainWindow


def make_models(window: QtMainWindow) -> QWidget:
    from kdgui.gui.qt_models_view import ModelsView

    return ModelsView(window, runs_root=window.runs_root)


def make_explorer(window: QtMainWindow) -> QWidget:
    from kdgui.gui.qt_soft_target_explorer import QtSoftTargetExplorer
    from kdgui.gui.qt_task import off_main_thread

    def load() -> Any:
        from kdgui.engine.soft_targets import explorer_data

        run_dir = window.run_panel.run_dir or _newest_run_with_student(window.runs_root)
        config = window.state.config
        # Torch runs on a throw-away thread: the UI thread must never own torch's thread pool.
        return off_main_thread(lambda: explorer_data(config, run_dir))

    return QtSoftTargetExplorer(window, data_loader=load)


def _newest_run_with_student(root: str | Path) -> str | None:
    """The latest run whose distilled student can be compared with the teacher, if any."""
    from kdgui.core.run_folders import find_runs

    for path in find_runs(root):
        if (Path(path) / "student" / "student.safetensors").is_file():
            return str(path)
    return None


def make_sweeps(window: QtMainWindow) -> QWidget:
    from kdgui.gui.qt_sweep_panel import QtSweepPanel

    panel = QtSweepPanel(window, config_provider=lambda: window.state.config,
                         sweeps_root=Path(window.runs_root) / "sweeps")
    panel.sweep_finished.connect(lambda _path: window.results_panel.refresh_runs())
    return panel


def make_history(window: QtMainWindow) -> QWidget:
    from kdgui.gui.qt_history_panel import QtHistoryPanel

    panel = QtHistoryPanel(window.runs_root, window)

    def open_run(path: str) -> None:
        with contextlib.suppress(Exception):
            record = window.open_run(path)
            if record is not None:
                window.replay_run(record)

    panel.open_run.connect(open_run)
    return panel


def make_sensitivity(window: QtMainWindow) -> QWidget:
    from kdgui.gui.qt_sensitivity_view import QtSensitivityView

    return QtSensitivityView(window)
