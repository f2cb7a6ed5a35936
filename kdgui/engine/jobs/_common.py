"""What every job shares: errors become one :class:`RunFailed` event, and a job that refuses or
fails half-way removes what it wrote.

A job is written as a plain generator that raises on bad input; :func:`guarded` turns that into
the contract every front end relies on: events only, never an exception out of ``next()``, and
the last event is a ``RunFailed`` for a failure (``internal=True`` for a bug, with its
traceback), exactly like :func:`kdgui.engine.session.run`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from kdgui.core.events import Event, JobFinished, RunControl, RunFailed, RunFinished

JobGenerator = Generator[Event, "str | None", Any]


def failure(exc: BaseException, where: str | Path, *, step: int | None = None) -> RunFailed:
    """The ``RunFailed`` event for an error: a user error's what/fix, or an internal one."""
    return RunFailed.from_exception(exc, str(where), step=step)


def guarded(
    body: JobGenerator,
    where: str | Path,
    *,
    control: RunControl | None = None,
    cleanup: Callable[[], None] | None = None,
) -> JobGenerator:
    """Run ``body``: pass its events on, apply commands sent in, and turn an exception into a
    final ``RunFailed`` after calling ``cleanup`` (which removes the job's partial output).

    Ctrl-C (``KeyboardInterrupt``) and a generator closed before its end also clean up, then
    propagate: a half-written output folder is worth nothing to anyone. Once the job has
    yielded its ``JobFinished``/``RunFinished``, its output is complete and is never removed
    (a consumer may stop iterating right there).
    """
    control = control or RunControl()
    finished = False  # the job's result is complete: never clean it up after that
    try:
        event = next(body)
        while True:
            finished = finished or isinstance(event, (JobFinished, RunFinished))
            control.apply((yield event))
            event = next(body)
    except StopIteration as stop:
        return stop.value
    except Exception as exc:
        failed = failure(exc, where)
        if cleanup is not None and not finished:
            cleanup()
        yield failed
        return None
    except BaseException:  # Ctrl-C, or the consumer closed the generator
        if cleanup is not None and not finished:
            cleanup()
        raise


class OutputFolder:
    """A job's output folder, tracked so that a failure removes exactly what the job wrote.

    A folder that did not exist is removed whole; in a folder that existed, only the entries
    that appeared during the job are removed (a person's other files stay).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.existed = self.path.exists()
        self._before = set(self.path.iterdir()) if self.path.is_dir() else set()

    def remove_partial(self) -> None:
        if not self.existed:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        if not self.path.is_dir():
            return
        for entry in self.path.iterdir():
            if entry in self._before:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


__all__ = ["JobGenerator", "OutputFolder", "failure", "guarded"]
