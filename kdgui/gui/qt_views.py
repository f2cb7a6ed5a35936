"""The views beside the flow (Models, Explorer, Sensitivity, Sweeps, History) and their factories.

Each factory takes the hosting window (:class:`~kdgui.gui.view_host.ViewHost`) and returns a
ready widget wired to the window's config, its one runs folder and its Run panel. The window
calls a factory the first time its view is shown, so the view's imports (netron, QtWebEngine)
never delay the first paint. Torch is never imported here: a view's engine calls go through
:mod:`kdgui.engine.jobs` on the window's worker, after the engine warm-up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import QWidget

from kdgui.gui.view_host import ViewHost

Factory = Callable[[ViewHost], QWidget]


def make_models(window: ViewHost) -> QWidget:
    from kdgui.gui.qt_models_view import ModelsView

    return ModelsView(window, runs_root=window.runs_root)  # type: ignore[arg-type]


def make_explorer(window: ViewHost) -> QWidget:
    from kdgui.engine import jobs
    from kdgui.gui.qt_soft_target_explorer import QtSoftTargetExplorer
    from kdgui.gui.qt_worker import run_off_ui_thread
    from kdgui.gui.run_source import RunSource, first_run

    def load(source: RunSource) -> Any:
        # The run's own config (its data), never the window's current one with its student.
        # On a throw-away thread after the warm-up: the UI thread never owns torch's pool.
        return run_off_ui_thread(lambda: jobs.explorer_data(source.config, source.run_dir))

    explorer = QtSoftTargetExplorer(window, data_loader=load,  # type: ignore[arg-type]
                                    run_dir=first_run(window),
                                    fallback_config=lambda: window.state.config)
    window.results_panel.run_selected.connect(explorer.set_run)
    return explorer


def make_sensitivity(window: ViewHost) -> QWidget:
    from kdgui.gui.qt_sensitivity_view import QtSensitivityView

    return QtSensitivityView(window)  # type: ignore[arg-type]


def make_sweeps(window: ViewHost) -> QWidget:
    from kdgui.gui.qt_sweep_panel import QtSweepPanel

    panel = QtSweepPanel(window, config_provider=lambda: window.state.config,  # type: ignore
                         sweeps_root=window.runs_root / "sweeps")
    panel.sweep_finished.connect(lambda _path: window.results_panel.refresh_runs())
    return panel


def make_classroom(window: ViewHost) -> QWidget:
    from kdgui.gui.qt_classroom_view import QtClassroomView

    return QtClassroomView(window, lessons_root=window.runs_root / "lessons")  # type: ignore


def make_history(window: ViewHost) -> QWidget:
    from kdgui.gui.qt_history_panel import QtHistoryPanel

    panel = QtHistoryPanel(window.runs_root, window)  # type: ignore[arg-type]

    def open_run(path: str) -> None:
        with contextlib.suppress(Exception):
            record = window.open_run(path)
            if record is not None:
                window.replay_run(record)

    panel.open_run.connect(open_run)
    return panel


#: Views beside the flow, created the first time they are shown: key, sidebar title, factory.
EXTRA_VIEWS: tuple[tuple[str, str, Factory], ...] = (
    ("models", "8 · Models (Netron)", make_models),
    ("explorer", "9 · Soft-target explorer", make_explorer),
    ("sensitivity", "Pruning sensitivity", make_sensitivity),
    ("sweeps", "Sweeps & lessons", make_sweeps),
    ("classroom", "Classroom", make_classroom),
    ("history", "History", make_history),
)

__all__ = ["EXTRA_VIEWS", "Factory", "make_classroom", "make_explorer", "make_history",
           "make_models",
           "make_sensitivity", "make_sweeps"]
