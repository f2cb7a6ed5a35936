"""A plain supervised fine-tuning loop, for when no session provides one (CLI, bench, tests).

The session fine-tunes compressed students with its distillation loss; ``kdgui compress`` has no
teacher, so it fine-tunes on the labels with cross-entropy. It honours the same contract as the
session's: ``finetune(model, epochs, on_step=None)`` yields events and calls ``on_step(t)`` after
each optimizer step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from kdgui.core.events import Event, LogEvent
from kdgui.engine.compress.context import FinetuneFn


def steps_per_epoch(data: Dataset, batch_size: int) -> int:
    return max(1, math.ceil(len(data) / batch_size))  # type: ignore[arg-type]


def _batches(data: Dataset, batch_size: int, gen: torch.Generator) -> Iterator[tuple]:
    if isinstance(data, TensorDataset):  # slice whole batches: no per-sample __getitem__
        x, y = data.tensors[0], data.tensors[1]
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            yield x[idx], y[idx]
    else:
        yield from DataLoader(data, batch_size=batch_size, shuffle=True, generator=gen)


def make_finetune(
    train: Dataset, *, batch_size: int = 64, lr: float = 1e-3, device: str = "cpu", seed: int = 0,
) -> FinetuneFn:
    """``finetune(model, epochs, on_step=None)``: Adam on cross-entropy over ``train``."""

    def finetune(
        model: nn.Module, epochs: int, on_step: Callable[[int], None] | None = None
    ) -> Iterator[Event]:
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=lr)
        loss_fn = nn.CrossEntropyLoss()
        gen = torch.Generator().manual_seed(seed)
        step = 0
        model.train()
        for epoch in range(epochs):
            total = correct = 0
            loss_sum = 0.0
            for x, y in _batches(train, batch_size, gen):
                x, y = x.to(device), y.to(device).long()
                out = model(x)
                loss = loss_fn(out, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                if on_step is not None:
                    on_step(step)
                loss_sum += loss.item() * len(x)
                correct += int((out.detach().argmax(1) == y).sum())
                total += len(x)
            yield LogEvent(
                level="info",
                message=f"fine-tune epoch {epoch + 1}/{epochs}: loss {loss_sum / max(1, total):.4f}"
                f", train accuracy {correct / max(1, total):.2%}",
            )
        model.eval()

    return finetune
