"""The window's finished runs: open a run folder, replay its curves, export it, save plots.

A mixin of :class:`~kdgui.gui.main_window.QtMainWindow`: it uses the window's Run and Results
panels, its ``runner`` (no replay while a run is live), ``runs_root`` and ``show_error``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from kdgui.core.errors import UserError
from kdgui.core.run_folders import RunContents, find_runs, student_path


class WindowResultsMixin:
    """Finished runs in the main window (see the module docstring)."""

    run_panel: Any
    results_panel: Any
    runner: Any
    runs_root: Path

    def show_error(self, error: dict[str, str]) -> None:  # provided by the window
        raise NotImplementedError

    def show_panel(self, key: str) -> None:  # provided by the window
        raise NotImplementedError

    def model_run_dir(self) -> str | None:
        """The run whose student the views analyse: the one shown in Run if it saved a student,
        else the newest run under the runs folder that did (None when there is none)."""
        live = self.run_panel.run_dir
        if live and student_path(live).is_file():
            return str(live)
        for path in find_runs(self.runs_root):
            if student_path(path).is_file():
                return str(path)
        return str(live) if live else None

    def open_run(self, path: str | Path) -> RunContents | None:
        try:
            record = self.results_panel.open_run(path)
        except UserError as exc:
            self.show_error(exc.to_dict())
            return None
        self.show_panel("results")
        return record

    def open_run_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open run folder",  # type: ignore[arg-type]
                                                str(self.runs_root))
        if path:
            self.open_run(path)

    def replay_run(self, record: RunContents) -> None:
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

    def export_selected(self) -> None:
        records = self.results_panel.selected()
        if len(records) == 1:
            self.export_run(records[0])
        elif self.run_panel.run_dir and Path(self.run_panel.run_dir).is_dir():
            self.export_run(RunContents(Path(self.run_panel.run_dir)))
        else:
            self.show_error({"what": "no run to export",
                             "fix": "Run the demo, or select a run under Results."})

    def export_run(self, record: RunContents) -> None:
        from kdgui.gui.qt_export_dialog import QtExportDialog

        dialog = QtExportDialog(str(record.path), self)  # type: ignore[arg-type]
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.export_dialog = dialog
        dialog.open()

    def save_plots(self, folder: str | None = None, fmt: str = "png") -> list[Path]:
        """Write each Run plot (and the Results bars) to ``folder`` as PNG or SVG."""
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self,  # type: ignore[arg-type]
                                                      "Save plots to folder")
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
            self.statusBar().showMessage(  # type: ignore[attr-defined]
                f"Saved {len(out)} plots to {folder}", 4000)
        return out
