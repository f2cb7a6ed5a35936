"""Consuming a job's events in a terminal: each event to a printer, Ctrl-C to a clean stop,
a failure to the one-line error the CLI prints (see :func:`kdgui.cli.main.guarded`)."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from kdgui.cli.printer import EventPrinter
from kdgui.core.events import Event, RunControl, RunFailed, RunFinished


def consume(events: Any, on_event: Any, control: RunControl | None = None,
            what: str = "after this batch") -> Event | None:
    """Consume a job's events, passing each to ``on_event``; a ``RunFailed`` is raised as its
    error (one line, exit code 2, or an internal error). With ``control``, Ctrl-C asks the job
    to stop cleanly (twice: abort). Returns the last event."""

    def on_interrupt(signum: int, frame: Any) -> None:
        if control is None or control.stop_requested:
            raise KeyboardInterrupt
        print(f"\nstopping {what} (Ctrl-C again to abort)", file=sys.stderr)
        control.stop()

    if control is not None and threading_main():
        signal.signal(signal.SIGINT, on_interrupt)
    last: Event | None = None
    for event in events:
        on_event(event)
        if isinstance(event, RunFailed):
            raise event.to_exception()
        last = event
    return last


def drive(events: Any, printer: EventPrinter, control: RunControl) -> dict[str, Any]:
    """Consume a run, printing events; returns its summary ({} when it did not finish)."""
    last = consume(events, printer, control)
    return last.summary if isinstance(last, RunFinished) else {}


def threading_main() -> bool:
    """Signal handlers can only be set on the main thread (tests call the CLI from others)."""
    return threading.current_thread() is threading.main_thread()
