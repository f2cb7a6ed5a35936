"""The classroom lessons behind the facade: the list (no torch), one by name, and running one
(a sweep's or a run's events, into a folder), from :mod:`kdgui.engine.classroom`."""

from __future__ import annotations

from kdgui.engine.classroom import LESSONS, Lesson, check_lesson_data, get_lesson, run_lesson

__all__ = ["LESSONS", "Lesson", "check_lesson_data", "get_lesson", "run_lesson"]
