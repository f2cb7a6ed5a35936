"""Supervised fine-tuning for when no run provides a teacher (``kdgui compress``, benches, tests).

A run fine-tunes compressed students with its distillation loss (``kdgui.engine.session``);
``kdgui compress`` has no teacher, so it fine-tunes on the labels alone. Both go through the one
training loop (:mod:`kdgui.engine.train_loop`): here with a hard-label-only loss, an optimizer built
by :func:`~kdgui.engine.training.make_optimizer` and no schedule. The callable honours the
pipeline's contract: ``finetune(model, epochs, on_step=None)`` trains in place, yields events
(step events, then per epoch an :class:`EpochEvent` when ``validation`` is given, else a one-line
log) and calls ``on_step(t)`` after each optimizer step, which pruning uses to keep its masks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Literal

from torch import nn
from torch.utils.data import Dataset

from kdgui.core.config import TrainingConfig
from kdgui.core.events import Event
from kdgui.engine.compress.context import FinetuneFn


def steps_per_epoch(data: Dataset, batch_size: int) -> int:
    """Optimizer steps in one pass over ``data`` (a gradual pruning schedule spans them)."""
    return max(1, math.ceil(len(data) / batch_size))  # type: ignore[arg-type]


def make_finetune(
    train: Dataset,
    *,
    batch_size: int = 64,
    lr: float = 1e-3,
    device: str = "cpu",
    seed: int = 0,
    optimizer: Literal["sgd", "adam", "adamw"] = "adam",
    validation: Dataset | None = None,
    log_every: int = 10,
) -> FinetuneFn:
    """``finetune(model, epochs, on_step=None)``: cross-entropy on ``train`` (Adam by default)."""
    from kdgui.engine.train_loop import Phase, TrainLoop, hard_label_trainer
    from kdgui.engine.training import BatchSource, make_optimizer, make_scheduler

    settings = TrainingConfig(
        batch_size=batch_size, lr=lr, optimizer=optimizer, schedule="none", seed=seed
    )

    def finetune(
        model: nn.Module, epochs: int, on_step: Callable[[int], None] | None = None
    ) -> Iterator[Event]:
        trainer = hard_label_trainer(model, device)
        # A new source per call, seeded alike: the same batch order each time it is called, as
        # a caller fine-tuning one model after another would expect.
        source = BatchSource(train, batch_size, shuffle=True, seed=seed)
        opt = make_optimizer(trainer.trainable_parameters(), settings)
        phase = Phase(
            stage="finetune", distiller=trainer, source=source, optimizer=opt,
            scheduler=make_scheduler(opt, settings, epochs * len(source)), epochs=epochs,
            lr_setting=f"the fine-tuning learning rate = {lr:g}", validation=validation,
            on_step=on_step,
        )
        yield from TrainLoop(device, log_every=log_every).run(phase)
        model.eval()

    return finetune


__all__ = ["make_finetune", "steps_per_epoch"]
