"""Compression after distillation: the run's pipeline, and fine-tuning with the run's own loss.

The pipeline (:mod:`kdgui.engine.compress.pipeline`) knows nothing of sessions; it receives a
``finetune(model, epochs, on_step=None)`` callable. Here that callable is the run's one training
loop with the run's soft+hard distillation loss, its cached teacher logits and its optimizer
settings, tagged ``stage="finetune"``; ``on_step`` is how pruning keeps its masks applied.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from torch import nn

from kdgui.core.errors import RunStopped
from kdgui.core.events import Event, StageEvent, StateEvent
from kdgui.core.run_folders import stages_dir
from kdgui.engine.session.context import RunContext
from kdgui.engine.session.exporting import example_batch
from kdgui.engine.train_loop import Phase
from kdgui.engine.training import make_optimizer, make_scheduler

#: Fine-tuning a compressed student starts from ``training.lr`` times this: the student is
#: already trained, and a full learning rate would undo much of what distillation taught it.
FINETUNE_LR_SCALE = 0.3
#: Added to ``training.seed`` for the fine-tuning's batch order.
FINETUNE_SEED_OFFSET = 1


def compress(
    ctx: RunContext, student: nn.Module, teacher: nn.Module
) -> Generator[Event, None, tuple[nn.Module, list[dict[str, Any]]]]:
    """Run ``compression.steps`` on a copy of ``student``; return ``(final model, stages)``.

    A stop request during a step's fine-tuning ends the pipeline: the run keeps the stages
    measured so far, marks itself stopped, and finishes with the distilled student.
    """
    from kdgui.engine.compress import CompressionContext
    from kdgui.engine.compress.pipeline import run_pipeline

    def finetune(
        model: nn.Module, epochs: int, on_step: Callable[[int], None] | None = None
    ) -> Generator[Event, None, None]:
        yield from finetune_student(ctx, model, teacher, epochs, on_step)

    cctx = CompressionContext(
        input_shape=ctx.prepared.input_shape,
        example_input=example_batch(ctx.prepared.val, ctx.device),
        calibration=ctx.prepared.train,
        validation=ctx.prepared.val,
        device=str(ctx.device),
        finetune=finetune,
        steps_per_epoch=len(ctx.batches(shuffle=False)),
    )
    pipeline = run_pipeline(student, ctx.config.compression.steps, cctx, stages_dir(ctx.run_dir.path))
    # The pipeline's stages are the metrics of the StageEvents it yields; kept as they pass so
    # that a stopped pipeline still reports what it measured.
    seen: list[dict[str, Any]] = []
    try:
        while True:
            try:
                event = next(pipeline)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            if isinstance(event, StageEvent):
                seen.append(event.metrics)
            yield event
    except RunStopped:
        pipeline.close()
        ctx.stopped = True
        yield StateEvent(state="stopped")
        return student, seen


def finetune_student(
    ctx: RunContext,
    model: nn.Module,
    teacher: nn.Module,
    epochs: int,
    on_step: Callable[[int], None] | None = None,
) -> Generator[Event, None, None]:
    """Fine-tune a compressed student with the run's soft+hard distillation loss."""
    from kdgui.engine.distill import Distiller

    dcfg = ctx.config.distill
    loss = dcfg.finetune_loss()  # the run's logit terms (or its soft + hard shorthand)
    # The teacher in the precision/layout chosen at run start (its soft targets, as distilled).
    runner = ctx.fast_teacher if ctx.fast_teacher is not None else teacher
    distiller = Distiller(runner, model, loss, ctx.prepared.input_shape, device=ctx.device)
    source = ctx.batches(seed_offset=FINETUNE_SEED_OFFSET)
    cache = ctx.teacher_cache(source) if ctx.use_teacher_cache(distiller, source) else None
    base = ctx.config.training
    tcfg = base.model_copy(update={"lr": base.lr * FINETUNE_LR_SCALE})
    optimizer = make_optimizer(distiller.trainable_parameters(), tcfg)
    scheduler = make_scheduler(optimizer, tcfg, epochs * len(source))
    phase = Phase(
        stage="finetune", distiller=distiller, source=source, optimizer=optimizer,
        scheduler=scheduler, epochs=epochs,
        lr_setting=f"training.lr = {base.lr:g}, × {FINETUNE_LR_SCALE} when fine-tuning",
        cache=cache, validation=ctx.prepared.val, teacher_eval=ctx.evaluate_teacher, on_step=on_step,
    )
    yield from ctx.loop.run(phase)


__all__ = ["FINETUNE_LR_SCALE", "compress", "finetune_student"]
