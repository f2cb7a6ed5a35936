"""A distillation run as a generator of plain events.

``run(config)`` tells the whole story of an experiment: prepare (data, teacher, student,
compatibility — all checked before anything is written), distill epoch by epoch, measure teacher
and student, apply the compression pipeline, export, and write ``summary.json``. Every step
yields plain events (numbers and numpy arrays). The CLI prints them, the window plots them from
a worker thread, and ``metrics.jsonl`` stores them.

Control: pass a :class:`~kdgui.core.events.RunControl` (the window does, from another thread) or
``send("pause" | "resume" | "stop")`` into the generator. The engine checks after every batch, so
stop and pause take effect within one batch; a stopped run still ends with a complete folder.

The package's modules, in the order a run meets them: :mod:`.prepare` (loading and checking),
:mod:`.runner` (entry points, event log, errors), :mod:`.story` (the run itself), :mod:`.teacher`
(pre-training an architecture-only teacher), :mod:`.compression` (the pipeline and its
fine-tuning), :mod:`.finish` (measuring and the summary) and :mod:`.exporting` (files written).
All training goes through :mod:`kdgui.engine.train_loop`.
"""

from kdgui.engine.session.prepare import Prepared, prepare
from kdgui.engine.session.runner import RunGenerator, run, run_prepared

__all__ = ["Prepared", "RunGenerator", "prepare", "run", "run_prepared"]
