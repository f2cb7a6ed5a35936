"""The window's actions: menus, shortcuts and toolbar (Ctrl+1…9 reach the panels and views).

Kept apart from :mod:`kdgui.gui.main_window` because it is a long, flat list of declarations;
each action calls a window method, so what the window *does* stays in one place.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow

from kdgui.core.config import demo_config


def add_action(window: QMainWindow, text: str, slot: Any, shortcut: Any = None,
               tip: str = "") -> QAction:
    """An action with its shortcut and tooltip, active anywhere in the window."""
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    action.setToolTip(tip or text)
    action.setStatusTip(tip or text)
    action.triggered.connect(slot)
    window.addAction(action)
    return action


def build_menus(window: Any, titles: dict[str, str]) -> None:
    """Create the window's actions (as attributes), its menus and its toolbar.

    ``window`` is the :class:`~kdgui.gui.main_window.QtMainWindow` (typed loosely so that this
    module does not import the window's, which imports it).

    ``titles``: panel or view key -> sidebar title, in sidebar order (Ctrl+N shows the Nth).
    """
    w, act = window, add_action
    keys = QKeySequence.StandardKey
    w.open_action = act(w, "&Open Config…", w.open_config_dialog, keys.Open)
    w.save_action = act(w, "&Save Config", w.save_config, keys.Save)
    w.save_as_action = act(w, "Save Config &As…", w.save_config_as, keys.SaveAs)
    w.last_config_action = act(w, "Reopen &Last Config", w.restore_last_config,
                               tip="The config of the last session")
    w.demo_action = act(w, "&Demo Config", lambda: w.set_config(demo_config()),
                        tip="The embedded digits demo")
    w.open_run_action = act(w, "Open &Run Folder…", w.open_run_dialog, "Ctrl+Shift+O")
    w.export_action = act(w, "&Export Model…", w.export_selected, "Ctrl+E",
                          "Export the last run's model")
    w.quit_action = act(w, "&Quit", w.close, keys.Quit)
    w.run_action = act(w, "&Run", w.start_run, "Ctrl+R", "Distill with the current settings")
    w.pause_action = act(w, "&Pause / Resume", w.toggle_pause, "Ctrl+P")
    w.stop_action = act(w, "S&top", w.stop_run, "Ctrl+.",
                        "Stop after the current batch (the run is still saved)")
    menu = w.menuBar()
    file_menu = menu.addMenu("&File")
    for a in (w.open_action, w.save_action, w.save_as_action):
        file_menu.addAction(a)
    w.recent_menu = file_menu.addMenu("Open &Recent")
    file_menu.addAction(w.last_config_action)
    file_menu.addAction(w.demo_action)
    file_menu.addSeparator()
    file_menu.addAction(w.open_run_action)
    file_menu.addAction(w.export_action)
    file_menu.addSeparator()
    file_menu.addAction(w.quit_action)
    run_menu = menu.addMenu("&Run")
    for a in (w.run_action, w.pause_action, w.stop_action):
        run_menu.addAction(a)
    view_menu = menu.addMenu("&View")
    for i, (key, title) in enumerate(titles.items()):
        view_menu.addAction(act(w, title, lambda _c=False, k=key: w.show_panel(k),
                                f"Ctrl+{i + 1}" if i < 9 else None))
    view_menu.addSeparator()
    w.presentation_action = act(w, "Presentation mode", w.toggle_presentation, "F5",
                                "Larger fonts and thicker lines for projectors")
    w.presentation_action.setCheckable(True)
    view_menu.addAction(w.presentation_action)
    help_menu = menu.addMenu("&Help")
    help_menu.addAction(act(w, "What to try", w.hint.show))
    toolbar = w.addToolBar("Main")
    toolbar.setObjectName("mainToolbar")
    toolbar.setMovable(False)
    for a in (w.run_action, w.pause_action, w.stop_action):
        toolbar.addAction(a)
    toolbar.addSeparator()
    for a in (w.open_action, w.save_action, w.export_action):
        toolbar.addAction(a)
