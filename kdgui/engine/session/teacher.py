"""Teacher pre-training: an architecture-only teacher learns from the labels before it teaches.

Lets a class start from nothing but a dataset. It is the run's one training loop with a loss that
has only the hard-label term, an optimizer and schedule built from the config (``teacher.train_*``
on top of ``training``), and its events tagged ``stage="teacher"`` in the same plots.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator

from torch import nn

from kdgui.core.config import ExperimentConfig
from kdgui.core.errors import RunStopped
from kdgui.core.events import Event
from kdgui.engine.session.context import RunContext
from kdgui.engine.train_loop import Phase, hard_label_trainer
from kdgui.engine.training import make_optimizer, make_scheduler

#: Added to ``training.seed`` for the teacher's batch order (distillation uses the seed itself).
TEACHER_SEED_OFFSET = 7


def needs_training(config: ExperimentConfig) -> bool:
    """A teacher given as an architecture only, with ``teacher.train_epochs`` > 0."""
    ref = config.teacher
    return ref.train_epochs > 0 and ref.path is None and not ref.pretrained


def prepare_teacher(ctx: RunContext, teacher: nn.Module) -> Generator[Event, None, None]:
    """Train the teacher (or, when resuming, reload the weights it was trained to)."""
    state = ctx.run_dir.load_checkpoint() if ctx.resume else None
    if state is not None and "teacher" in state:
        teacher.load_state_dict(state["teacher"])
    else:
        yield from train_teacher(ctx, teacher)
    ctx.trained_teacher = True
    teacher.eval()


def train_teacher(ctx: RunContext, teacher: nn.Module) -> Generator[Event, None, None]:
    """``teacher.train_epochs`` epochs of hard-label training, measured on the validation set.

    A stop request ends this phase early; the distillation loop then stops at its first batch,
    so the run still finishes with a summary.
    """
    ref = ctx.config.teacher
    for param in teacher.parameters():
        param.requires_grad_(True)
    trainer = hard_label_trainer(teacher, ctx.device)
    source = ctx.batches(seed_offset=TEACHER_SEED_OFFSET)
    tcfg = ctx.config.training.model_copy(
        update={"optimizer": ref.train_optimizer, "lr": ref.train_lr,
                "schedule": ref.train_schedule}
    )
    optimizer = make_optimizer(trainer.trainable_parameters(), tcfg)
    scheduler = make_scheduler(optimizer, tcfg, ref.train_epochs * len(source))
    phase = Phase(
        stage="teacher", distiller=trainer, source=source, optimizer=optimizer,
        scheduler=scheduler, epochs=ref.train_epochs,
        lr_setting=f"teacher.train_lr = {ref.train_lr:g}", what="the teacher's loss",
        validation=ctx.prepared.val, report_sparsity=False,
    )
    if ctx.world is not None:  # every rank trains the same teacher, under DDP
        ctx.world.wrap(trainer)
    try:
        with contextlib.suppress(RunStopped):  # the distillation loop reports the stop
            yield from ctx.loop.run(phase)
    finally:
        if ctx.world is not None:
            ctx.world.unwrap_all()


__all__ = ["TEACHER_SEED_OFFSET", "needs_training", "prepare_teacher", "train_teacher"]
