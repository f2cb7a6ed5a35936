"""What a view beside the flow may ask of the window that hosts it.

The views (Models, Explorer, Sensitivity, Sweeps, History) are made by :mod:`kdgui.gui.qt_views`
from the window; they type their host with this protocol rather than importing the window's
module, so no view imports :mod:`kdgui.gui.main_window` and the modules form no cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class ViewHost(Protocol):
    """The main window as the views see it."""

    #: The one runs folder of this window (settings, or ``--runs-root``).
    runs_root: Path
    #: The edited config (:class:`kdgui.gui.qt_config_state.QtConfigState`).
    state: Any
    #: The Run panel (its ``run_dir`` is the run shown live, if any).
    run_panel: Any
    #: The Results panel.
    results_panel: Any

    def model_run_dir(self) -> str | None:
        """The run whose student the views analyse: the one shown in Run, else the newest
        run with a saved student (None when there is none)."""

    def open_run(self, path: str | Path) -> Any:
        """Open a run folder under Results (None, with a message, when it is not one)."""

    def replay_run(self, record: Any) -> None:
        """Show a finished run's curves in the Run panel."""

    def show_error(self, error: dict[str, str]) -> None:
        """Show a ``what``/``fix`` error without blocking."""
