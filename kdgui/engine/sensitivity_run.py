"""Moved: the sensitivity job lives in :mod:`kdgui.engine.jobs.sensitivity_job` (one
implementation for the CLI and the window). This name stays until the window imports
``kdgui.engine.jobs.sensitivity_analysis``; nothing else may use it."""

from kdgui.engine.jobs.sensitivity_job import analyze

__all__ = ["analyze"]
