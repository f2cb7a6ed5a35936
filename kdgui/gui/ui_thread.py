"""The UI thread's share of the interpreter while a run trains in the same process.

The run's thread and the UI thread share one GIL. Three rules, one owner:

* **The UI thread gets the GIL within half a millisecond.** Every event the UI handles in
  Python (a timer, a paint of a plot, a signal from the run) must first take the GIL from the
  training thread, which releases it only inside torch kernels or when asked to: CPython asks
  after the switch interval, 5 ms by default. A frame's few handlers each waited up to that long
  behind the demo's Python-heavy steps. :func:`install` sets :data:`SWITCH_INTERVAL_S`; the
  interval only matters while another thread waits, so a run alone is not slowed.

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

All are no-ops until :func:`install` was called (the application and the bench call it; window
tests keep their own collection around each test).
"""

from __future__ import annotations

import atexit
import gc
import sys

#: How long the training thread may keep the GIL once the UI thread asks for it (seconds).
SWITCH_INTERVAL_S = 0.0005

#: The UI-thread collector (and its timer), kept alive for the process.
_COLLECTOR: list[object] = []


def install(interval_s: float = 1.0) -> None:
    """Collect on the UI thread every ``interval_s`` and hand the GIL over quickly (call once,
    after the QApplication)."""
    if _COLLECTOR:
        return
    sys.setswitchinterval(SWITCH_INTERVAL_S)
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


__all__ = ["SWITCH_INTERVAL_S", "freeze_start_up", "install", "installed"]
