"""Garbage collection in the window: on the UI thread only, and never a long pause in a run.

Two rules, one owner:

* **Only the UI thread collects.** Python's cyclic collector runs in whichever thread happens to
  allocate; a Qt object collected on a worker thread (while torch runs there) deadlocked against
  the UI thread deleting widgets. :func:`install` turns automatic collection off and collects
  from a timer on the UI thread (pyqtgraph's ``GarbageCollector``).
* **The start-up heap is frozen.** Once torch and the window are loaded the process holds some
  400,000 tracked objects, nearly all of them alive for good; a full collection walks all of
  them: 100–220 ms of one core *with the GIL held*, a frozen window and a stalled run (measured:
  ``gc.collect(2)`` 216 ms CPU with the demo loaded). :func:`freeze_start_up` (called when the
  engine warm-up has imported torch) moves them to the permanent generation
  (:func:`gc.freeze`), so later collections only walk what was created since: well under 1 ms.

Both are no-ops until :func:`install` was called (the application and the bench call it; window
tests keep their own collection around each test).
"""

from __future__ import annotations

import atexit
import gc

#: The UI-thread collector (and its timer), kept alive for the process.
_COLLECTOR: list[object] = []


def install(interval_s: float = 1.0) -> None:
    """Collect on the UI thread every ``interval_s`` (call once, after the QApplication)."""
    if _COLLECTOR:
        return
    from pyqtgraph.util.garbage_collector import GarbageCollector

    _COLLECTOR.append(GarbageCollector(interval=interval_s))
    # Unfrozen at exit, after every later exit handler (torch's) has run: frozen objects escape
    # the collection at exit and die in module teardown, when their finalizers find their
    # modules gone (torch.library printed TypeErrors).
    atexit.register(gc.unfreeze)


def installed() -> bool:
    return bool(_COLLECTOR)


def freeze_start_up() -> int:
    """Collect the young garbage, then freeze every object alive now; returns how many are
    frozen (0 when :func:`install` was not called)."""
    if not _COLLECTOR:
        return 0
    gc.collect(1)  # young garbage only: a full collection is the pause this avoids
    gc.freeze()
    return gc.get_freeze_count()


__all__ = ["freeze_start_up", "install", "installed"]
