"""Which run a view analyses, with that run's own config, and how to name it to the user.

The soft-target explorer and the sensitivity view load a run's student. Pairing that student
with the *current* config's data mixed runs ("mat1 and mat2 shapes cannot be multiplied" when the
window's data had changed since) and silently used stopped runs. A view therefore follows one
run folder (the one selected under Results, or the one just finished), reads the config the run
was made with from its folder, and says which run it shows and whether it was stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdgui.core.config import ExperimentConfig
from kdgui.core.config_io import load_config
from kdgui.core.errors import UserError
from kdgui.core.run_folders import config_path, run_status

#: What each status means for a view that analyses the run's student.
STATUS_NOTE = {
    "completed": "",
    "stopped": " — stopped before the end: its student is partly trained",
    "failed": " — the run failed",
    "incomplete": " — incomplete (still running, or interrupted)",
}


@dataclass(frozen=True)
class RunSource:
    """A run folder and the config it was made with (``config`` None: unreadable)."""

    run_dir: str | None
    config: ExperimentConfig | None
    status: str = ""
    problem: str = ""

    @property
    def name(self) -> str:
        return Path(self.run_dir).name if self.run_dir else ""

    def label(self) -> str:
        """One line for the view's header (rich text)."""
        if not self.run_dir:
            return "No run yet: the teacher alone, on the data set in <i>2 · Data</i>."
        if self.problem:
            return f"Run <b>{self.name}</b>: {self.problem}"
        return (f"Run <b>{self.name}</b> (its own data and models)"
                f"{STATUS_NOTE.get(self.status, '')}.")


def run_source(run_dir: str | Path | None, fallback: ExperimentConfig | None) -> RunSource:
    """The run ``run_dir`` with its saved config; without a run, the window's ``fallback``."""
    if not run_dir:
        return RunSource(None, fallback)
    path = Path(run_dir)
    status = run_status(path)
    try:
        config = load_config(config_path(path))
    except UserError as exc:
        return RunSource(str(path), None, status, f"its config cannot be read ({exc.what})")
    return RunSource(str(path), config, status)


def first_run(window: Any) -> str | None:
    """The run a view starts with: the one selected under Results, else the window's choice
    (the run shown in Run, else the newest with a student)."""
    results = getattr(window, "results_panel", None)
    if results is not None:
        selected = results.selected()
        if len(selected) == 1:
            return str(selected[0].path)
    pick = getattr(window, "model_run_dir", None)
    return pick() if pick is not None else None


__all__ = ["RunSource", "first_run", "run_source"]
