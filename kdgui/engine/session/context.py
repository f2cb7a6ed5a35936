"""What the parts of one run share: its inputs, its folder, its training loop, what it measured.

The session's modules (the story, teacher training, compression, finishing, exporting) are
functions of one :class:`RunContext` rather than methods of one large class, so each reads on its
own and none reaches into another's state except through the fields declared here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from kdgui.core.config import ExperimentConfig
from kdgui.core.events import RunControl
from kdgui.engine.device import pick_device
from kdgui.engine.fast_path import FastChoice
from kdgui.engine.rundir import RunDir
from kdgui.engine.session.prepare import Prepared
from kdgui.engine.train_loop import TrainLoop
from kdgui.engine.training import BatchSource, TeacherCache, loader_settings


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
    #: How teacher and student run (:mod:`kdgui.engine.fast_path`), chosen at run start.
    fast: dict[str, FastChoice] = field(default_factory=dict)
    #: The teacher as it runs for distillation and caching (wrapped in its chosen precision and
    #: layout), or None before the choice; measurement and checkpoints use the plain teacher.
    fast_teacher: nn.Module | None = None
    #: Puts the teacher's weight layout back as it came (set by the fast-path choice).
    restore_layout: Callable[[], None] | None = None
    _teacher_logits: TeacherCache | None = None
    #: This process's place in a distributed run (torchrun), or None; see
    #: :mod:`kdgui.engine.distributed`. Cleared once training is over (rank 0 finishes alone).
    world: Any = None

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
        world = self.world
        loading = loader_settings(self.prepared.train, self.device)  # pinned, workers on a GPU
        if world is not None:  # training.batch_size is the global batch: a shard per rank
            return BatchSource(self.prepared.train, world.per_rank_batch(tcfg.batch_size),
                               shuffle=shuffle, seed=tcfg.seed + seed_offset, rank=world.rank,
                               world_size=world.size, **loading)
        return BatchSource(
            self.prepared.train, tcfg.batch_size, shuffle=shuffle, seed=tcfg.seed + seed_offset,
            **loading,
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

    def teacher_cache(self, source: BatchSource) -> TeacherCache:
        """Every training sample's teacher logits, once per run (distillation and each
        compression step's fine-tuning share them: same teacher, same samples). Filled by the
        first epoch's batches through the fast teacher, so no teacher pass delays step 1."""
        if self._teacher_logits is None:
            self._teacher_logits = TeacherCache(source.num_samples)
        return self._teacher_logits

    def evaluate_teacher(self) -> dict[str, Any]:
        """The teacher's validation result (accuracy, predictions), measured on first use: at
        the end of the first epoch rather than before step 1."""
        if self.teacher_eval is None:
            from kdgui.engine.metrics import evaluate

            teacher = self.fast_teacher if self.fast_teacher is not None else self.prepared.teacher
            self.teacher_eval = evaluate(teacher, self.prepared.val, device=self.device)
        return self.teacher_eval


__all__ = ["RunContext"]
