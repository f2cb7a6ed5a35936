"""What the parts of one run share: its inputs, its folder, its training loop, what it measured.

The session's modules (the story, teacher training, compression, finishing, exporting) are
functions of one :class:`RunContext` rather than methods of one large class, so each reads on its
own and none reaches into another's state except through the fields declared here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from kdgui.core.config import ExperimentConfig
from kdgui.core.events import RunControl
from kdgui.engine.device import pick_device
from kdgui.engine.rundir import RunDir
from kdgui.engine.session.prepare import Prepared
from kdgui.engine.train_loop import TrainLoop
from kdgui.engine.training import BatchSource, teacher_outputs


@dataclass
class RunContext:
    """The state of one run. ``stopped`` is set once the user's stop request was honoured; the
    run then finishes quickly but completely (measured, saved, summarised)."""

    prepared: Prepared
    config: ExperimentConfig
    run_dir: RunDir
    loop: TrainLoop
    resume: bool = False
    stopped: bool = False
    trained_teacher: bool = False
    teacher_eval: dict[str, Any] | None = None
    previous_threads: int | None = None
    _teacher_logits: torch.Tensor | None = None

    @classmethod
    def create(
        cls,
        prepared: Prepared,
        config: ExperimentConfig,
        run_dir: RunDir,
        control: RunControl,
        resume: bool,
    ) -> RunContext:
        tcfg = config.training
        device = pick_device(tcfg.device)
        loop = TrainLoop(
            device, control, log_every=tcfg.log_every,
            amp=bool(tcfg.amp and device.type == "cuda"), augment=prepared.augment,
        )
        return cls(prepared=prepared, config=config, run_dir=run_dir, loop=loop, resume=resume)

    @property
    def device(self) -> torch.device:
        return self.loop.device

    @property
    def step(self) -> int:
        """Optimizer steps taken so far in this run (teacher, distillation and fine-tuning)."""
        return self.loop.step

    def batches(self, seed_offset: int = 0, shuffle: bool = True) -> BatchSource:
        """The training data in batches of ``training.batch_size``; each phase shuffles with its
        own seed (``training.seed + seed_offset``), so adding one does not shift another's order."""
        tcfg = self.config.training
        return BatchSource(
            self.prepared.train, tcfg.batch_size, shuffle=shuffle, seed=tcfg.seed + seed_offset
        )

    def use_teacher_cache(self, distiller: Any, source: BatchSource) -> bool:
        """Whether caching the teacher's logits is correct: "on" and "auto" both cache when no
        augmentation changes the inputs, the data is indexable, and no loss needs feature maps."""
        return (
            self.config.training.cache_teacher != "off"
            and source.indexable
            and not distiller.needs_teacher_features
            and not self.config.data.augment
        )

    def teacher_cache(self, teacher: nn.Module, source: BatchSource) -> torch.Tensor:
        """Every training sample's teacher logits, computed once per run (distillation and
        each compression step's fine-tuning share them: same teacher, same samples)."""
        if self._teacher_logits is None:
            self._teacher_logits = teacher_outputs(teacher, source, self.device)
        return self._teacher_logits


__all__ = ["RunContext"]
