"""The training loop's parts: batches, and the optimizer and schedule built from the config.

:mod:`kdgui.engine.train_loop` (the one loop: distillation, teacher pre-training, fine-tuning)
takes its batches from :class:`BatchSource` and its optimizer and schedule only from
:func:`make_optimizer` and :func:`make_scheduler`, so no phase hard-codes its own.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from kdgui.core.config import TrainingConfig


class _Indexed(Dataset):
    """Wraps a dataset so each item also carries its index (for the teacher-output cache)."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        x, y = self.base[i]
        return x, y, i


@dataclass
class BatchSource:
    """Yields ``(x, y, idx)`` batches from a tensor dataset, any dataset, or a user DataLoader.

    A ``TensorDataset`` (what the built-in datasets are) is sliced directly with a permutation:
    no per-sample Python, no collate, which matters for small models on a CPU. ``idx`` is None
    for a user-provided DataLoader, which therefore cannot use the teacher-output cache.
    """

    data: Dataset | DataLoader
    batch_size: int
    shuffle: bool
    seed: int = 0
    #: In a distributed run: this process's rank and the number of processes. Every rank draws
    #: the same order (same seed) and keeps its shard of it (:func:`kdgui.engine.distributed.shard`).
    rank: int = 0
    world_size: int = 1
    #: On a GPU: batches come in pinned (page-locked) memory, so the loop's
    #: ``.to(device, non_blocking=True)`` copies overlap the previous step's kernels.
    pin_memory: bool = False
    #: Loader processes for a dataset read sample by sample (image folders): decoding and
    #: transforms run beside training instead of between its steps. 0: in this process.
    workers: int = 0

    def __post_init__(self) -> None:
        self._generator = torch.Generator().manual_seed(self.seed)

    @property
    def indexable(self) -> bool:
        return not isinstance(self.data, DataLoader)

    @property
    def num_samples(self) -> int:
        if isinstance(self.data, DataLoader):
            return len(self.data.dataset)  # type: ignore[arg-type]
        return len(self.data)  # type: ignore[arg-type]

    def __len__(self) -> int:
        if isinstance(self.data, DataLoader):
            return len(self.data)
        return math.ceil(math.ceil(self.num_samples / self.world_size) / self.batch_size)

    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        if isinstance(self.data, DataLoader):
            for batch in self.data:
                yield batch[0], batch[1], None
            return
        n = self.num_samples
        order = (
            torch.randperm(n, generator=self._generator) if self.shuffle else torch.arange(n)
        )
        if self.world_size > 1:
            from kdgui.engine.distributed import shard

            order = shard(order, self.rank, self.world_size)
            n = len(order)
        tensors = getattr(self.data, "tensors", None)
        if tensors is not None:
            x_all, y_all = tensors[0], tensors[1]
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                x = x_all[idx]
                yield (x.pin_memory() if self.pin_memory and not x.is_cuda else x), y_all[idx], idx
            return
        loader = DataLoader(
            _Indexed(self.data), batch_size=self.batch_size, sampler=order.tolist(),
            num_workers=self.workers, pin_memory=self.pin_memory,
        )
        for x, y, idx in loader:
            yield x, y, idx

    def generator_state(self) -> torch.Tensor:
        return self._generator.get_state()

    def set_generator_state(self, state: torch.Tensor) -> None:
        self._generator.set_state(state)


def loader_settings(data: Dataset | DataLoader, device: torch.device) -> dict[str, Any]:
    """``pin_memory``/``workers`` for a :class:`BatchSource` on ``device``: pinned batches on
    a GPU, and there loader processes for a dataset read sample by sample (not a tensor
    dataset, which is sliced in place; not a user's own DataLoader, which keeps its settings).
    On a CPU the cores train, so batches load in the training process."""
    if device.type != "cuda":
        return {"pin_memory": False, "workers": 0}
    per_sample = not isinstance(data, DataLoader) and getattr(data, "tensors", None) is None
    cores = os.cpu_count() or 1
    return {"pin_memory": True, "workers": min(8, max(cores - 1, 0)) if per_sample else 0}


def make_optimizer(params, cfg: TrainingConfig) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over the parameters that train (frozen ones are left out)."""
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=False
        )
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainingConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-step schedules, so a resumed run continues the same curve."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=max(1, total_steps // 3), gamma=0.1
        )
    if cfg.schedule == "multistep":  # the fractions of the training become step numbers
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=[round(f * total_steps) for f in cfg.lr_milestones],
            gamma=cfg.lr_decay)
    return None


class TeacherCache:
    """Every training sample's teacher logits, filled by the first epoch's own batches.

    Computing the whole cache before training (a full teacher pass over the data) delayed the
    first step by seconds; filling it from the batches the first epoch runs anyway costs the
    same teacher passes but none before step 1. Once every sample was seen, lookups are slices.
    The fill mask lives on the CPU, so no GPU sync happens per step.
    """

    def __init__(self, num_samples: int) -> None:
        self.num_samples = num_samples
        self.values: torch.Tensor | None = None
        self._filled = torch.zeros(num_samples, dtype=torch.bool)
        self.complete = False

    def lookup(self, idx: torch.Tensor, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The logits of samples ``idx``: from the cache once complete, else ``compute()``d
        (the batch's teacher pass) and stored."""
        if self.complete and self.values is not None:
            return self.values[idx.to(self.values.device)]
        logits = compute().detach().float()
        if self.values is None:
            self.values = torch.empty(
                (self.num_samples, *logits.shape[1:]), dtype=torch.float32, device=logits.device
            )
        self.values[idx.to(logits.device)] = logits
        self._filled[idx.cpu()] = True
        self.complete = bool(self._filled.all())
        return logits

    def fill(self, teacher: nn.Module, source: BatchSource, device: torch.device) -> None:
        """Fill what is missing in one pass (:func:`teacher_outputs`' job, for callers that
        need the whole cache before training)."""
        if not self.complete:
            self.values = teacher_outputs(teacher, source, device)
            self._filled[:] = True
            self.complete = True


@torch.inference_mode()
def teacher_outputs(
    teacher: nn.Module, source: BatchSource, device: torch.device, batch_size: int = 512
) -> torch.Tensor:
    """The teacher's logits for every training sample, in index order (the cache)."""
    plain = BatchSource(source.data, batch_size, shuffle=False)
    chunks: list[torch.Tensor] = []
    for x, _, _ in plain.epoch():
        chunks.append(teacher(x.to(device, non_blocking=True)).float())
    return torch.cat(chunks).detach()
