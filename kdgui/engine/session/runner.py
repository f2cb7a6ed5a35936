"""The entry points of a run: :func:`run` (from a config) and :func:`run_prepared` (from loaded
models and data, the Python API's way in).

This is the one place that logs every event to the run folder, applies the commands sent into
the generator, and turns errors into a final :class:`RunFailed` event: a user error keeps its
what/fix, an internal error keeps its traceback for the report.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import torch

from kdgui.core.config import ExperimentConfig
from kdgui.core.errors import UserError
from kdgui.core.events import Event, RunControl, RunFailed
from kdgui.core.history import default_root
from kdgui.core.run_folders import new_run_dir
from kdgui.engine import distributed
from kdgui.engine.device import pick_device, seed_everything
from kdgui.engine.distributed import session_hooks as hooks
from kdgui.engine.rundir import RunDir
from kdgui.engine.session.context import RunContext
from kdgui.engine.session.prepare import Prepared, prepare
from kdgui.engine.session.story import tell

RunGenerator = Generator[Event, "str | None", "dict[str, Any] | None"]


def run(
    config: ExperimentConfig,
    out_dir: str | Path | None = None,
    *,
    control: RunControl | None = None,
    resume: bool = False,
    runs_root: str | Path | None = None,
) -> RunGenerator:
    """Run the experiment described by ``config``; yields events, returns the summary dict.

    Bad input (a missing dataset, a corrupt model file, mismatched shapes) is reported as a
    single :class:`RunFailed` event before any run folder is created.
    """
    config = config.model_copy(deep=True)
    # Seeded before the student is built, so its initial weights follow training.seed too.
    seed_everything(config.training.seed)
    try:
        prepared = prepare(config)
    except UserError as exc:
        yield RunFailed(run_dir="", error=exc.to_dict())
        return None
    return (
        yield from run_prepared(
            prepared, config, out_dir, control=control, resume=resume, runs_root=runs_root,
        )
    )


def run_prepared(
    prepared: Prepared,
    config: ExperimentConfig,
    out_dir: str | Path | None = None,
    *,
    control: RunControl | None = None,
    resume: bool = False,
    runs_root: str | Path | None = None,
) -> RunGenerator:
    """Run on already-loaded models and data (the Python API's entry point).

    Under torchrun every process calls this: rank 0 writes the run folder and sends the events,
    the other ranks train silently (see :mod:`kdgui.engine.distributed`).
    """
    control = control or RunControl()

    def make_run_dir() -> RunDir:
        if resume:
            if out_dir is None:
                raise UserError("resuming needs the run folder", "Pass --resume RUN_DIR.")
            return RunDir.resume(out_dir)  # checks the checkpoint, trims the log
        return RunDir.create(out_dir or new_run_dir(
            runs_root if runs_root is not None else default_root(), config.name), config)

    world = None
    try:
        world = distributed.setup(config.training.device)
        if world is None:  # a GPU this machine lacks is refused before any folder is written
            pick_device(config.training.device)
        run_dir = make_run_dir() if world is None else hooks.open_run_dir(world, make_run_dir)
    except UserError as exc:
        distributed.teardown(world)
        yield RunFailed(run_dir=str(out_dir or ""), error=exc.to_dict())
        return None

    if world is not None:
        config = hooks.same_on_every_rank(config)
    ctx = RunContext.create(prepared, config, run_dir, control, resume)
    ctx.world = ctx.loop.world = world
    try:
        # One place logs every event and applies commands sent into the generator; the
        # session's own code (and the compression pipeline's) only yields.
        events = tell(ctx)
        if world is not None and not world.is_main:
            return hooks.quietly(events)  # type: ignore[no-any-return]
        try:
            event = next(events)
            while True:
                run_dir.log_event(event)
                control.apply((yield event))
                event = next(events)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
    except UserError as exc:
        failed = RunFailed(run_dir=str(run_dir.path), error=exc.to_dict(), step=ctx.step)
        run_dir.log_event(failed)
        yield failed
        return None
    except Exception as exc:  # an internal error: report it as an event, keep the traceback
        failed = RunFailed.from_exception(exc, str(run_dir.path), step=ctx.step,
                                          report="the run folder's metrics.jsonl")
        run_dir.log_event(failed)
        yield failed
        return None
    finally:
        distributed.teardown(world)
        run_dir.close()
        if ctx.restore_layout is not None:
            ctx.restore_layout()
        if ctx.previous_threads is not None:
            torch.set_num_threads(ctx.previous_threads)


__all__ = ["RunGenerator", "run", "run_prepared"]
