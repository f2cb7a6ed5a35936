"""The story of one run: (teacher pre-training), distillation epoch by epoch, then the finish.

:func:`tell` only yields events; logging them and applying the commands sent into the run
happen in one place, :func:`kdgui.engine.session.runner.run_prepared`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import torch
from torch import nn

from kdgui.core.errors import RunStopped
from kdgui.core.events import Event, LogEvent, RunStarted, StateEvent
from kdgui.engine import distributed
from kdgui.engine.device import seed_everything
from kdgui.engine.distributed import session_hooks as hooks
from kdgui.engine.fast_path import set_channels_last
from kdgui.engine.session import fast
from kdgui.engine.session.context import RunContext
from kdgui.engine.session.finish import finish
from kdgui.engine.session.teacher import needs_training, prepare_teacher
from kdgui.engine.train_loop import Phase
from kdgui.engine.training import BatchSource, make_optimizer, make_scheduler


def tell(ctx: RunContext) -> Generator[Event, None, dict[str, Any]]:
    """Distill the prepared student from the prepared teacher; return the run's summary."""
    from kdgui.engine.distill import Distiller

    tcfg = ctx.config.training
    seed_everything(tcfg.seed)
    if tcfg.num_threads:
        # Process-wide in torch: remembered so the run can put it back when it ends.
        ctx.previous_threads = torch.get_num_threads()
        torch.set_num_threads(tcfg.num_threads)
    device = ctx.device
    teacher = ctx.prepared.teacher.to(device).eval()
    if needs_training(ctx.config):
        yield from prepare_teacher(ctx, teacher)
    for param in teacher.parameters():
        param.requires_grad_(False)
    student = ctx.prepared.student.to(device)
    # The teacher as it runs (its measured precision/layout); ``teacher`` stays the plain module
    # for measurement and checkpoints.
    runner, fast_log = fast.choose(ctx, teacher, student)
    source = ctx.batches()
    distiller = Distiller(
        runner, student, ctx.config.distill, ctx.prepared.input_shape, device=device,
        num_samples=source.num_samples,
    ).to(device)

    use_cache = ctx.use_teacher_cache(distiller, source)
    epochs = tcfg.epochs
    optimizer = make_optimizer(distiller.trainable_parameters(), tcfg)
    scheduler = make_scheduler(optimizer, tcfg, epochs * len(source))
    start_epoch = _restore(ctx, distiller, optimizer, scheduler, source) if ctx.resume else 0
    world = ctx.world
    if world is not None:  # DDP over the student and adapters; rank 0's weights everywhere
        world.wrap(distiller)
        if not world.is_main:  # dropout and augmentation differ per rank
            torch.manual_seed(tcfg.seed + world.rank)

    # The teacher's validation accuracy is measured at the end of the first epoch (see
    # RunContext.evaluate_teacher) and its cache filled by the first epoch's batches: neither
    # delays step 1.
    cache = ctx.teacher_cache(source) if use_cache else None
    yield RunStarted(
        run_dir=str(ctx.run_dir.path),
        config=ctx.config.model_dump(mode="json"),
        data=ctx.prepared.data_info,
        teacher={**ctx.prepared.teacher_info, "params": _count(teacher)},
        student={**ctx.prepared.student_info, "params": _count(student)},
        pairs={k: [list(p) for p in v] for k, v in distiller.pairs.items()},
        epochs=epochs,
        steps_per_epoch=len(source),
        device=str(device),
        teacher_cached=cache is not None,
        resumed_from_epoch=start_epoch,
        fast_path=fast.plain_data(ctx),
    )
    yield from fast_log
    if tcfg.cache_teacher == "on" and cache is None and distiller.needs_teacher_features:
        readers = ", ".join(k for k, v in distiller.pairs.items() if v)
        yield LogEvent(level="info", message="training.cache_teacher is 'on', but the teacher "
                       f"runs every step: the terms {readers} read its feature maps, which "
                       "the cache (logits only) does not hold")
    if world is not None:
        yield hooks.describe(world, tcfg.batch_size)
    if start_epoch >= epochs:
        yield LogEvent(level="info", message="all epochs already done")

    def save(epoch: int) -> None:
        # Saved before the epoch's event is yielded: an epoch a front end has seen is an epoch
        # a resumed run will not repeat.
        ctx.run_dir.save_checkpoint({
            "distiller": distiller.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else {},
            "batch_rng": source.generator_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,
            "step": ctx.step,
            **({"teacher": teacher.state_dict()} if ctx.trained_teacher else {}),
            **({"world_size": world.size} if world is not None else {}),
        })

    phase = Phase(
        stage="distill", distiller=distiller, source=source, optimizer=optimizer,
        scheduler=scheduler, epochs=epochs, lr_setting=f"training.lr = {tcfg.lr:g}",
        start_epoch=start_epoch, cache=cache, validation=ctx.prepared.val,
        teacher_eval=ctx.evaluate_teacher, on_epoch_end=save,
        channels_last=ctx.fast["student"].variant.channels_last,
        precision=ctx.fast["student"].variant.precision,
    )
    try:
        yield from ctx.loop.run(phase)
    except RunStopped:
        ctx.stopped = True
        yield StateEvent(state="stopped")
    finally:  # compression, saving and export see the usual contiguous, eager student
        set_channels_last(student, False)
        student._compiled_call_impl = None
    if world is not None:  # training is over: rank 0 measures, compresses and exports alone
        world.barrier()
        distributed.teardown(world)
        ctx.world = ctx.loop.world = None
        if not world.is_main:
            return {}
    return (yield from finish(ctx, teacher, student, ctx.evaluate_teacher(), distiller))


def _restore(
    ctx: RunContext, distiller: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
    source: BatchSource,
) -> int:
    """Load the last checkpoint into the run's objects; return the epoch to continue from."""
    state = ctx.run_dir.load_checkpoint()
    distributed.check_resume(state, ctx.world)
    if state is None:
        return 0
    distiller.load_state_dict(state["distiller"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler"):
        scheduler.load_state_dict(state["scheduler"])
    source.set_generator_state(state["batch_rng"])
    torch.set_rng_state(state["torch_rng"])
    ctx.loop.step = int(state["step"])
    return int(state["epoch"]) + 1


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["tell"]
