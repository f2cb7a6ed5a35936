"""The one training loop: distillation, teacher pre-training and fine-tuning all run here.

What differs between them is data, not code. A :class:`Phase` says what is trained (a
:class:`~kdgui.engine.distill.Distiller`, whose loss may be the hard term alone), on which batches,
with which optimizer and schedule (always built from the config by
:func:`~kdgui.engine.training.make_optimizer`), and how it is reported (its ``stage`` tag, whether
layer sparsity and agreement with a teacher mean anything). :class:`TrainLoop` holds what the phases
of one run share: the device, mixed precision, the pause/stop control and the global step counter,
so the loss plot's x axis runs on across teacher pre-training, distillation and fine-tuning.

The loop is the hot path of every run, so it stays lean: running sums live on the device as
tensors and are read (a GPU sync) only when an event is sent: every ``log_every`` steps and at
each epoch's first step (so a live plot has a point at once).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from kdgui.core.config import DistillConfig
from kdgui.core.errors import RunStopped, TrainingDiverged
from kdgui.core.events import EpochEvent, Event, LogEvent, RunControl, StateEvent, StepEvent
from kdgui.engine.fast_path import autocast, layout_input
from kdgui.engine.training import BatchSource, TeacherCache

LoopGenerator = Generator[Event, None, None]
#: How a stage is named in a sentence (log lines), where its tag would read oddly.
_WORDS = {"finetune": "fine-tune", "distill": "distillation", "teacher": "teacher training"}


class _NoTeacher(nn.Module):
    """The teacher slot of a hard-label-only :class:`Distiller`: never run (no soft term)."""

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - unreachable by construction
        raise RuntimeError("hard-label training has no teacher to run")


def hard_label_trainer(
    model: nn.Module, device: torch.device | str, label_smoothing: float = 0.0
) -> Any:
    """A Distiller whose loss is the hard (cross-entropy) term alone: plain supervised training.

    Teacher pre-training and ``kdgui compress``'s fine-tuning (which has no teacher) use it, so
    they go through the same loop, loss code and divergence check as distillation.
    """
    from kdgui.engine.distill import Distiller

    cfg = DistillConfig(alpha=0.0, beta=0.0, gamma=0.0, label_smoothing=label_smoothing)
    return Distiller(_NoTeacher(), model, cfg, (1, 1, 1), device=device)


@dataclass
class Phase:
    """One stretch of training (distillation, a teacher's pre-training, a fine-tuning) and how it
    is reported.

    ``distiller`` computes the loss and holds the trained model (``distiller.student``).
    ``validation`` is measured after every epoch into an :class:`EpochEvent`; without it an epoch
    ends with a one-line :class:`LogEvent` instead. ``teacher_eval`` (the teacher's
    :func:`~kdgui.engine.metrics.evaluate` result) gives the epoch events their teacher accuracy
    and agreement; without a teacher the agreement is 1.0 (a teacher agrees with itself).
    ``lr_setting`` names the learning rate's config field and value (``"training.lr = 0.003"``),
    which the divergence message tells the user to lower. ``on_step(t)`` runs after each optimizer step with the phase's own
    step count (pruning masks are re-applied there); ``on_epoch_end(epoch)`` runs before the
    epoch's event is sent (the run's checkpoint is saved there).
    """

    stage: str
    distiller: Any
    source: BatchSource
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    epochs: int
    lr_setting: str
    what: str = "the loss"
    start_epoch: int = 0
    cache: TeacherCache | Tensor | None = None
    validation: Dataset | DataLoader | None = None
    teacher_eval: dict[str, Any] | Callable[[], dict[str, Any]] | None = None
    report_sparsity: bool = True
    on_step: Callable[[int], None] | None = None
    on_epoch_end: Callable[[int], None] | None = None
    #: The student's fast path (see :mod:`kdgui.engine.fast_path`): inputs in channels_last
    #: (the student's weights are put there by the caller) and autocast to this precision.
    channels_last: bool = False
    precision: str = "fp32"


class TrainLoop:
    """Runs :class:`Phase` s batch by batch; yields plain events; raises ``RunStopped`` on stop.

    Between two batches it honours the control: pause blocks here (in the engine's thread) with a
    ``paused``/``resumed`` pair of state events, stop raises :class:`RunStopped`, which the caller
    turns into a stopped (but complete) run.
    """

    def __init__(
        self,
        device: torch.device | str,
        control: RunControl | None = None,
        *,
        log_every: int = 10,
        amp: bool = False,
        augment: Callable[[Tensor], Tensor] | None = None,
        step: int = 0,
    ) -> None:
        self.device = torch.device(device)
        self.control = control or RunControl()
        self.log_every = max(1, int(log_every))
        self.amp = bool(amp and self.device.type == "cuda")
        self.augment = augment
        self.step = step
        #: This process's place in a distributed run (:mod:`kdgui.engine.distributed`), or None.
        #: Set, every batch agrees on stop/pause/divergence and metrics are summed over ranks.
        self.world: Any = None

    def checkpoint(self) -> Iterator[Event]:
        """Between batches: honour pause (blocking) and stop (raises :class:`RunStopped`)."""
        control = self.control
        if self.world is not None:  # the same decision on every rank, at the same batch
            yield from self.world.checkpoint(control)
            return
        if control.paused and not control.stop_requested:
            yield StateEvent(state="paused")
            control.wait_while_paused()
            if not control.stop_requested:
                yield StateEvent(state="resumed")
        if control.stop_requested:
            raise RunStopped("the user asked the run to stop")

    def run(self, phase: Phase) -> LoopGenerator:
        """Train ``phase`` from its ``start_epoch`` to its last epoch."""
        steps_per_epoch = len(phase.source)
        total_steps = phase.epochs * steps_per_epoch
        # The phase's step 0 in the global count, so that progress and ETA continue where a
        # resumed run left off and a fine-tuning's progress runs from 0 to 1 on its own.
        offset = self.step - phase.start_epoch * steps_per_epoch
        # fp16's narrow range needs loss scaling (training.amp is fp16 autocast on CUDA; a
        # student_precision of fp16 too); bf16 has fp32's range and needs none.
        fp16 = phase.precision == "fp16" or (phase.precision == "fp32" and self.amp)
        scaler = torch.amp.GradScaler("cuda") if fp16 and self.device.type == "cuda" else None
        for epoch in range(phase.start_epoch, phase.epochs):
            yield from self._epoch(phase, epoch, scaler, total_steps, offset)

    def _epoch(
        self, phase: Phase, epoch: int, scaler: Any, total_steps: int, offset: int
    ) -> LoopGenerator:
        from kdgui.engine.metrics import layer_sparsity

        device, distiller, optimizer = self.device, phase.distiller, phase.optimizer
        cache, augment, scheduler = phase.cache, self.augment, phase.scheduler
        channels_last = phase.channels_last

        def amp() -> Any:
            if phase.precision != "fp32":
                return autocast(device, phase.precision)
            return torch.autocast(device.type, enabled=self.amp)

        distiller.train()
        distiller.teacher.eval()
        set_epoch = getattr(distiller, "set_epoch", None)
        if set_epoch is not None:  # a loss's schedule over epochs (DKD's warm-up)
            set_epoch(epoch)
        started = time.perf_counter()
        window_start, window_samples = started, 0
        seen = window_steps = 0
        # Running sums stay on the device as tensors: reading them (a sync on a GPU) happens
        # only when an event is sent, not at every step.
        correct = torch.zeros((), dtype=torch.long, device=device)
        # Train accuracy counts labelled samples only: an unlabelled transfer set marks its
        # samples -1, and counting them as wrong made "train acc" meaningless there.
        labelled = torch.zeros((), dtype=torch.long, device=device)
        loss_sum = torch.zeros((), device=device)
        sums: dict[str, Tensor] = {}
        for epoch_steps, (x, y, idx) in enumerate(phase.source.epoch(), start=1):
            yield from self.checkpoint()
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if y.dtype != torch.long:  # labels stored as int32/uint8 (numpy): cross-entropy wants int64
                y = y.long()
            if augment is not None:
                x = augment(x)
            if channels_last:
                x = layout_input(x, True)
            t_logits = None
            if cache is not None and idx is not None:
                if isinstance(cache, TeacherCache):  # filled by the first epoch's own batches
                    t_logits = cache.lookup(idx, lambda x=x: distiller.teacher_logits(x))
                else:
                    t_logits = cache[idx.to(cache.device)]
            with amp():  # a term that keeps state per sample (CRD) reads the batch's indices
                losses, logits = distiller(x, y, t_logits, idx)
            total = losses["total"]
            if (self.world.any_nonfinite(self.control, total) if self.world is not None
                    else not torch.isfinite(total)):
                self._diverged(phase, epoch, losses)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(total).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                total.backward()
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
            self.step += 1
            if phase.on_step is not None:
                phase.on_step(self.step - offset)
            n = int(y.shape[0])
            seen += n
            window_samples += n
            window_steps += 1
            correct += (logits.detach().argmax(1) == y).sum()
            labelled += (y >= 0).sum()
            loss_sum += total.detach().float() * n
            for k, v in losses.items():
                sums[k] = sums[k] + v.detach().float() if k in sums else v.detach().float()
            # Every log_every-th step, and the first step of each epoch: a live plot gets its
            # first point at once, not log_every steps after Run. Per epoch (not per run) so
            # a resumed run, which starts at an epoch, logs the same lines as a clean one.
            send = self.step % self.log_every == 0 or epoch_steps == 1
            if send and self.world is not None:
                sums, window_samples = self._gather(sums, window_samples)
                if not self.world.is_main:  # other ranks only take part in the sums
                    sums, window_steps, window_start = {}, 0, time.perf_counter()
                    window_samples = 0
                    continue
            if send:
                names, sparsity = self._sparsity(phase, layer_sparsity)
                now = time.perf_counter()
                rate = window_samples / max(now - window_start, 1e-9)
                window_start, window_samples = now, 0
                done = self.step - offset
                # The epoch's mean step time, not the last window's: one slow window (an event
                # the front end took long to draw) must not inflate the whole estimate.
                per_step = (now - started) / epoch_steps
                yield StepEvent(
                    step=self.step,
                    epoch=epoch + 1,
                    losses={k: float(v) / window_steps for k, v in sums.items()},
                    lr=float(optimizer.param_groups[0]["lr"]),
                    samples_per_s=rate,
                    progress=min(done / max(total_steps, 1), 1.0),
                    eta_s=max(total_steps - done, 0) * per_step,
                    layer_names=list(names),
                    sparsity=np.asarray(sparsity, dtype=np.float32),
                    stage=phase.stage,
                )
                sums, window_steps = {}, 0
        yield from self._end_epoch(phase, epoch, started, seen, loss_sum, correct, layer_sparsity,
                                   labelled=int(labelled))

    def _end_epoch(
        self, phase: Phase, epoch: int, started: float, seen: int, loss_sum: Tensor,
        correct: Tensor, layer_sparsity: Callable[[nn.Module], Any], *, labelled: int,
    ) -> LoopGenerator:
        from kdgui.engine.metrics import agreement, evaluate

        if self.world is not None:
            loss_sum, seen, correct, labelled = self.world.sum(loss_sum, seen, correct, labelled)
            self.world.share_cache(phase.cache if isinstance(phase.cache, TeacherCache) else None)
            if not self.world.is_main:  # rank 0 validates, saves and reports
                return
        train_loss = float(loss_sum) / max(seen, 1)
        # NaN when no sample had a label (a folder of unlabelled images): not measured, not 0.
        train_accuracy = int(correct) / labelled if labelled else float("nan")
        model = phase.distiller.student
        result = None
        if phase.validation is not None:
            result = evaluate(model, phase.validation, device=self.device)
        names, sparsity = self._sparsity(phase, layer_sparsity)
        if phase.on_epoch_end is not None:
            phase.on_epoch_end(epoch)
        if result is None:
            yield LogEvent(
                level="info",
                message=f"{_WORDS.get(phase.stage, phase.stage)} epoch {epoch + 1}/{phase.epochs}: "
                f"loss {train_loss:.4f}, "
                f"train accuracy {train_accuracy:.2%}",
            )
            return
        teacher = phase.teacher_eval() if callable(phase.teacher_eval) else phase.teacher_eval
        yield EpochEvent(
            epoch=epoch + 1,
            step=self.step,
            train_loss=train_loss,
            train_accuracy=train_accuracy,
            val_accuracy=float(result["accuracy"]),
            teacher_accuracy=None if teacher is None else float(teacher["accuracy"]),
            agreement=1.0 if teacher is None else float(
                agreement(result["predictions"], teacher["predictions"])
            ),
            layer_names=list(names),
            sparsity=np.asarray(sparsity, dtype=np.float32),
            duration_s=time.perf_counter() - started,
            stage=phase.stage,
        )

    def _gather(self, sums: dict[str, Tensor], samples: int) -> tuple[dict[str, Any], int]:
        """A step event's window over all ranks: mean losses, samples of every rank."""
        keys = list(sums)
        *values, total = self.world.sum(*(sums[k] for k in keys), samples)
        size = self.world.size
        return {k: v / size for k, v in zip(keys, values, strict=True)}, int(total)

    @staticmethod
    def _sparsity(phase: Phase, layer_sparsity: Callable[[nn.Module], Any]) -> tuple[list[str], Any]:
        if not phase.report_sparsity:  # a teacher's layers are not the student's heatmap rows
            return [], np.zeros(0, dtype=np.float32)
        return layer_sparsity(phase.distiller.student)

    def _diverged(self, phase: Phase, epoch: int, losses: dict[str, Tensor]) -> None:
        total = losses["total"]
        raise TrainingDiverged(
            f"{phase.what} became {total.item()} at step {self.step + 1} (epoch {epoch + 1}"
            f", {phase.stage}); terms: " + ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items()),
            f"The learning rate is probably too high ({phase.lr_setting}); lower it by "
            "10×, or check the data for NaN values.",
        )


__all__ = ["LoopGenerator", "Phase", "TrainLoop", "hard_label_trainer"]
