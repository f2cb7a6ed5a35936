"""Train/validation split indices, deterministic for a given config."""

from __future__ import annotations

import torch
from torch import Tensor

from kdgui.core.config import DataConfig
from kdgui.core.errors import DataError


def split_indices(n: int, cfg: DataConfig) -> tuple[Tensor, Tensor]:
    """Indices of the training and validation samples among ``n`` (after ``cfg.limit``).

    ``"ordered"`` keeps the last ``val_fraction`` of the samples, in file order, for
    validation (so "the first 8,000 images train, the last 2,000 validate" is expressible);
    ``"random"`` shuffles with its own generator seeded by ``split_seed``, so the split never
    depends on, nor disturbs, the global random state.
    """
    if n < 2:
        raise DataError(
            f"The dataset has {n} sample(s); at least 2 are needed for a train/validation split",
            "Use more data (raise data.limit or add images).",
            source="data",
        )
    n_val = min(max(1, round(n * cfg.val_fraction)), n - 1)
    if cfg.split == "ordered":
        order = torch.arange(n)
    else:
        gen = torch.Generator().manual_seed(cfg.split_seed)
        order = torch.randperm(n, generator=gen)
    train, val = order[: n - n_val], order[n - n_val :]
    if cfg.split == "random":
        # Keep each part in file order: reproducible, and friendlier to lazy readers.
        train, val = train.sort().values, val.sort().values
    return train, val
