"""The window's files: experiment configs (open, save, recent list) and its saved settings.

A mixin of :class:`~kdgui.gui.main_window.QtMainWindow`: it uses the window's ``state``
(:class:`~kdgui.gui.qt_config_state.QtConfigState`), ``settings`` (QSettings), ``show_error``
and ``recent_menu``. Every failure is a ``what``/``fix`` message, never an exception.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray
from PySide6.QtWidgets import QFileDialog

from kdgui.core.config import ExperimentConfig
from kdgui.core.config_io import load_config, save_config
from kdgui.core.errors import UserError

MAX_RECENT = 8
CONFIG_FILTER = "Experiment configs (*.yaml *.yml *.json);;All files (*)"


def truthy(value: Any) -> bool:
    """QSettings' INI back end returns booleans as strings."""
    return str(value).lower() in ("1", "true", "yes")


class WindowFilesMixin:
    """Configs and settings of the main window (see the module docstring)."""

    state: Any
    settings: Any
    recent_menu: Any
    config_path: Path | None
    runs_root: Path

    def show_error(self, error: dict[str, str]) -> None:  # provided by the window
        raise NotImplementedError

    # -- configs ---------------------------------------------------------------------------------
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
        self.setWindowTitle(f"KD Studio — {Path(path).name}")  # type: ignore[attr-defined]
        return True

    def open_config_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open config", "", CONFIG_FILTER)  # type: ignore
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
        self.statusBar().showMessage(f"Saved {target}", 4000)  # type: ignore[attr-defined]
        return True

    def save_config_as(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(self, "Save config",  # type: ignore[arg-type]
                                              "experiment.yaml", CONFIG_FILTER)
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
        self.refresh_recent_menu()

    def refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.recent_files():
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _c=False, p=path: self.open_config(p))
        self.recent_menu.setEnabled(bool(self.recent_files()))

    def restore_settings(self) -> None:
        geometry = self.settings.value("geometry")
        if isinstance(geometry, (QByteArray, bytes)):
            self.restoreGeometry(geometry)  # type: ignore[attr-defined]
        state = self.settings.value("window_state")
        if isinstance(state, (QByteArray, bytes)):
            self.restoreState(state)  # type: ignore[attr-defined]

    def save_settings(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())  # type: ignore[attr-defined]
        self.settings.setValue("window_state", self.saveState())  # type: ignore[attr-defined]
        self.settings.setValue("last_config", json.dumps(self.state.data))
        if getattr(self, "runs_root_chosen", True):
            self.settings.setValue("runs_root", str(self.runs_root))
        self.settings.sync()
